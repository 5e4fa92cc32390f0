"""The Kubernetes API, through the official client: one client per run, every call bounded in time,
counted, and its failures turned into one-line reasons."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ..base import BackendError

REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read: seconds


def default_kubeconfig() -> Path:
    """As kubectl: the first file of $KUBECONFIG, else ~/.kube/config."""
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return Path(paths[0] if paths else "~/.kube/config").expanduser()


class KubeApi:
    def __init__(self, kubeconfig: Path | None = None, context: str | None = None) -> None:
        path = Path(kubeconfig).expanduser() if kubeconfig else default_kubeconfig()
        if not path.is_file():
            raise BackendError(f"no kubeconfig at {path} (set --kubeconfig or $KUBECONFIG)")
        configuration = client.Configuration()
        try:
            config.load_kube_config(str(path), context=context, client_configuration=configuration,
                                    persist_config=False)
        except (ConfigException, ValueError, TypeError, KeyError, OSError) as exc:
            raise BackendError(f"kubeconfig {path}: {exc}") from None
        except Exception as exc:  # a file that is not YAML at all
            raise BackendError(f"kubeconfig {path}: cannot read it: {exc}") from None
        configuration.retries = 1  # bounded: one more try on a dropped connection, then a clear error
        self.host = configuration.host
        self.client = client.ApiClient(configuration)
        self.requests: Counter[str] = Counter()  # "GET /api/v1/nodes" -> count, for the report
        self._count_requests()
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)

    def _count_requests(self) -> None:
        rest, request = self.client.rest_client, self.client.rest_client.request

        def counted(method, url, *args, **kwargs):
            self.requests[f"{method} {_shape(url)}"] += 1
            kwargs["_request_timeout"] = kwargs.get("_request_timeout") or REQUEST_TIMEOUT
            return request(method, url, *args, **kwargs)

        rest.request = counted

    def call(self, what: str, method, *args, **kwargs):
        """Call one client method; a server that cannot be reached or refuses us is a BackendError.
        Other API errors (404, 409, 422…) are the caller's to handle."""
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise BackendError(f"the API server at {self.host} refused to {what}: "
                                   f"{status_message(exc)}") from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendError(f"cannot reach the API server at {self.host} to {what}: {reason}") from None

    def raw(self, method: str, path: str, body: dict | None = None,
            timeout: float | tuple[float, float] = REQUEST_TIMEOUT) -> tuple[int, bytes]:
        """A request the typed API has no method for (the pod proxy with a body), authenticated
        as every other call; returns (status, body) without raising on HTTP errors."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        _, url, headers, body, _ = self.client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, body=body,
                                        _request_timeout=timeout)
        return response.status, response.read()

    def close(self) -> None:
        """Release the connection pool (closing twice is harmless)."""
        self.client.close()

    def __enter__(self) -> "KubeApi":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def status_message(exc: ApiException) -> str:
    """The message of a metav1.Status body, or the HTTP reason."""
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {exc.status} {exc.reason}"


def _shape(url: str) -> str:
    """/api/v1/namespaces/x/pods/p:9000/proxy/probe?a=b -> the path without query and host."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/"):] if "/" in path else "/"
    return path.split("?", 1)[0]
