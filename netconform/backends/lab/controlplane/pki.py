"""The lab control plane's certificates: one certificate authority per run, and what it signs.

Kubernetes authenticates every component and user by a client certificate's subject (CN is the
user, each O a group) and every component checks the API server against the CA, as kubeadm sets it
up. One CA serves all: it signs the API server's serving certificate, each component's client
certificate, the users the tests mint, and (through the controller manager's cluster signing
flags) the CSRs of later lab kubelets. Keys are ECDSA P-256, which take milliseconds to make; the
service-account signing key is RSA, as kubeadm's default, so any token consumer can verify it.

The CA and keys live in the run's state directory (mode 0600) and go with it; they are valid for
30 days, enough for a lab that stays up, and mean nothing outside the run.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)  # valid from a little before now, as kubeadm does
CA_NAME = "netconform-lab-ca"


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.crt`` and ``stem.key`` (0600); return their paths."""
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert)
        _write_secret(key, self.key)
        return cert, key


class Authority:
    """The run's CA: it issues certificates for the API server, the components and users."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cert, self._key = cert, key

    @classmethod
    def create(cls) -> "Authority":
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(CA_NAME)
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(_key_usage(cert_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @property
    def credential(self) -> Credential:
        return Credential(self._cert.public_bytes(serialization.Encoding.PEM), _pem(self._key))

    def client(self, user: str, groups: Sequence[str] = ()) -> Credential:
        """A client certificate: the API server sees user ``user`` in ``groups``."""
        return self._issue(_name(user, groups), [ExtendedKeyUsageOID.CLIENT_AUTH], ())

    def server(self, common_name: str, names: Sequence[str]) -> Credential:
        """A serving certificate for ``names``: IP addresses and DNS names."""
        return self._issue(_name(common_name), [ExtendedKeyUsageOID.SERVER_AUTH], names)

    def _issue(self, subject: x509.Name, usages: list, names: Sequence[str]) -> Credential:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self._cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(cert_sign=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self._key.public_key()), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [_alt_name(n) for n in names]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Credential(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


def service_account_keys(directory: Path) -> tuple[Path, Path]:
    """The key pair that signs (private, the API server and controller manager) and verifies
    (public, the API server) service-account tokens; returns (private, public) paths."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    _write_secret(private, _pem(key))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                         key_agreement=False, encipher_only=False, decipher_only=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_secret(path: Path, data: bytes) -> None:
    """Written with mode 0600 from the start, not chmod-ed after: a key is never readable by others."""
    with open(path, "wb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        out.write(data)
