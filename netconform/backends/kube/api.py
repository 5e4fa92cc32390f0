"""The Kubernetes API, through the official client: one client per run, every call bounded in time,
counted, and its failures turned into one-line reasons."""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ..base import BackendError
from .admission import naming

REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read: seconds
FIRST_CONTACT = urllib3.Timeout(connect=5.0, read=10.0)  # GET /version, once, without retry
VERSION_MAX_BYTES = 64 * 1024  # a real /version answer is a few hundred bytes


def kubeconfig_files(kubeconfig: Path | None = None) -> tuple[list[Path], str]:
    """The kubeconfig files to merge, as kubectl: --kubeconfig alone; else every file of
    $KUBECONFIG that exists (missing ones are skipped); else ~/.kube/config. Also returns what was
    asked for, for the message when none exists."""
    if kubeconfig:
        named = [Path(kubeconfig).expanduser()]
    else:
        named = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        named = named or [Path("~/.kube/config").expanduser()]
    return [p for p in named if p.is_file()], os.pathsep.join(str(p) for p in named)


class KubeApi:
    def __init__(self, kubeconfig: Path | None = None, context: str | None = None) -> None:
        files, asked = kubeconfig_files(kubeconfig)
        if not files:
            raise BackendError(f"no kubeconfig at {asked} (set --kubeconfig or $KUBECONFIG)")
        source = os.pathsep.join(str(p) for p in files)
        configuration = client.Configuration()
        try:  # a pathsep-separated list is merged by the client's KubeConfigMerger, as kubectl does
            config.load_kube_config(source, context=context, client_configuration=configuration,
                                    persist_config=False)
        except (ConfigException, ValueError, TypeError, KeyError, OSError) as exc:
            raise BackendError(f"kubeconfig {source}: {exc}") from None
        except Exception as exc:  # a file that is not YAML at all
            raise BackendError(f"kubeconfig {source}: cannot read it: {exc}") from None
        configuration.retries = 1  # bounded: one more try on a dropped connection, then a clear error
        self.host = configuration.host
        self.client = client.ApiClient(configuration)
        self.requests: Counter[str] = Counter()  # "GET /api/v1/nodes" -> count, for the report
        self._count_requests()
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)
        self.discovery = client.DiscoveryV1Api(self.client)
        self.coordination = client.CoordinationV1Api(self.client)
        self.rbac = client.RbacAuthorizationV1Api(self.client)
        self.custom = client.CustomObjectsApi(self.client)  # any group's list: the policy kinds (policies.py)
        try:
            self._first_contact()
        except BackendError:
            self.close()
            raise

    def _first_contact(self) -> None:
        """GET /version once, with a short bound and no retry, before any typed call: a server that
        accepts and never answers costs seconds, not a minute, and one that is not Kubernetes is
        named as such instead of failing deep inside the client."""
        status, body = self._get_version()
        problem = version_problem(status, body)
        if problem:
            raise BackendError(f"{self.host} does not answer as a Kubernetes API server "
                               f"(GET /version: {problem})")
        self.server_version = json.loads(body).get("gitVersion") if status == 200 else None

    def _get_version(self) -> tuple[int, bytes]:
        """The status and (at most VERSION_MAX_BYTES of the) body of GET /version, authenticated as
        every other call; a server that cannot be reached or does not answer is a BackendError."""
        self.requests["GET /version"] += 1
        _, url, headers, _, _ = self.client.param_serialize(
            method="GET", resource_path="/version", header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        started = time.monotonic()
        try:
            response = self.client.rest_client.pool_manager.request(
                "GET", url, headers=headers, timeout=FIRST_CONTACT, retries=False,
                preload_content=False)
            try:
                return response.status, response.read(VERSION_MAX_BYTES)
            finally:
                response.release_conn()
        except urllib3.exceptions.ReadTimeoutError:  # a stalled TLS handshake too, after 5s
            raise BackendError(f"the API server at {self.host} accepted the connection but did not "
                               f"answer within {int(time.monotonic() - started)}s") from None
        except urllib3.exceptions.NewConnectionError as exc:
            # refused, or no such host: caught first, as urllib3 makes it a ConnectTimeoutError too
            raise BackendError(f"cannot reach the API server at {self.host}: "
                               f"{str(exc).split('): ', 1)[-1]}") from None
        except urllib3.exceptions.ConnectTimeoutError:
            raise BackendError(f"cannot reach the API server at {self.host}: no connection within "
                               f"{FIRST_CONTACT.connect_timeout:.0f}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendError(f"cannot reach the API server at {self.host}: {reason}") from None

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
            answer = method(*args, **kwargs)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise BackendError(f"the API server at {self.host} refused to {what}: "  # an admission
                                   f"{naming(status_message(exc))}") from None  # policy's: named
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendError(f"cannot reach the API server at {self.host} to {what}: {reason}") from None
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise BackendError(f"{self.host} does not answer as a Kubernetes API server ({what}: "
                               f"{_malformed(exc)})") from None
        if answer is None and not method.__name__.startswith("delete"):
            raise BackendError(f"{self.host} does not answer as a Kubernetes API server ({what}: "
                               "an empty answer)")
        return answer

    def service_spec(self, namespace: str, name: str, patch: dict | None = None) -> dict:
        """A Service's spec as the API server has it (camelCase keys), after ``patch`` (a merge
        patch; None: only read). API errors other than call()'s are the caller's."""
        if patch is None:
            found = self.call(f"read Service {namespace}/{name}", self.core.read_namespaced_service,
                              name, namespace)
        else:
            # a JSON merge patch (RFC 7386): a list in it replaces the Service's (its ports), where
            # the client's default, a strategic merge, would merge them by port number
            found = self.call(f"patch Service {namespace}/{name}", self.core.patch_namespaced_service,
                              name, namespace, patch, _content_type="application/merge-patch+json")
        return self.client.sanitize_for_serialization(found.spec)

    def raw(self, method: str, path: str, body: dict | None = None,
            timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A request the typed API has no method for (the pod proxy with a body), authenticated
        as every other call, with ``headers`` besides (the pod proxy passes them on); returns
        (status, body) without raising on HTTP errors."""
        headers = {"Accept": "application/json", "Content-Type": "application/json", **(headers or {})}
        _, url, headers, body, _ = self.client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, body=body,
                                        _request_timeout=timeout)
        return response.status, response.read()

    def server_time(self):
        """The API server's clock (its answer's Date header, to the second), or None: what a run
        compares the server's own timestamps with, so that neither machine's clock matters."""
        from email.utils import parsedate_to_datetime
        try:
            _, url, headers, _, _ = self.client.param_serialize(
                method="GET", resource_path="/version", header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"])
            response = self.client.call_api("GET", url, header_params=headers, _request_timeout=(3.0, 5.0))
            response.read()
            return parsedate_to_datetime(response.headers.get("Date"))
        except Exception:  # noqa: BLE001 - no Date, or no answer: the caller uses its own clock
            return None

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


def version_problem(status: int, body: bytes) -> str | None:
    """Why an answer to GET /version is not a Kubernetes API server's; None when it is one: a version
    document, or a Kubernetes Status refusing us (the typed call after it says what was refused)."""
    try:
        document = json.loads(body)
    except ValueError:  # UnicodeDecodeError is one too
        return f"HTTP {status}, not JSON"
    if not isinstance(document, dict):
        return f"HTTP {status}, JSON but not an object"
    if document.get("kind") == "Status" and status >= 400:
        return None
    if status != 200:
        return f"HTTP {status}, not a Kubernetes Status"
    if not isinstance(document.get("gitVersion"), str):
        return "HTTP 200, JSON without gitVersion"
    return None


def _malformed(exc: Exception) -> str:
    """What was wrong with an answer the client could not turn into its object, in a few words:
    pydantic names the model it expected; other errors get their first line."""
    title = getattr(exc, "title", None)
    if title:
        return f"the answer is not a valid {title}"
    return f"an answer of the wrong shape ({(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"


def _shape(url: str) -> str:
    """/api/v1/namespaces/x/pods/p:9000/proxy/probe?a=b -> the path without query and host."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/"):] if "/" in path else "/"
    return path.split("?", 1)[0]
