"""Kubeconfig files for the lab's API server: one per component and per user.

The certificates are embedded (``*-data``), so a kubeconfig stands on its own: it can be copied,
handed to kubectl or to another test suite, and still work while the control plane runs. JSON is
written, which is YAML too.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from .pki import Credential

CLUSTER = "netconform-lab"


def write(path: Path, server: str, ca: bytes, user: str, credential: Credential) -> Path:
    """Write a kubeconfig for ``user`` (its client certificate and key) at ``server``, 0600."""
    document = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": CLUSTER, "cluster": {"server": server,
                                                   "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(credential.cert),
                                          "client-key-data": _b64(credential.key)}}],
        "contexts": [{"name": f"{user}@{CLUSTER}", "context": {"cluster": CLUSTER, "user": user}}],
        "current-context": f"{user}@{CLUSTER}",
    }
    with open(path, "w", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        json.dump(document, out, indent=1)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
