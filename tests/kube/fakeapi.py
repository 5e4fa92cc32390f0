"""A fake Kubernetes API server: real HTTP, the URL layout, auth, status codes and object shapes of
kube-apiserver (v1.37), with an in-memory store and a pluggable "world" that plays the kubelets
and the scheduler (which pods become Ready, which cannot pull their image) and the pod proxy.

Only what netconform uses is served; everything it creates is validated against the Kubernetes
schema (kubernetes-validate), as the API server's own validation would reject a bad object.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import kubernetes_validate
import kubernetes_validate.utils

# kubernetes_validate reads and parses the schema files (_definitions.json: megabytes) on every
# validate(), 0.1-0.3 s an object; a run on thousands of nodes creates thousands. The files never
# change: read each once. What is validated, and how, is the same.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents)

TOKEN = "fake-token-for-tests"
VERSION = "1.37.0"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
RESOURCES = {  # plural -> (kind, group/version)
    "namespaces": ("Namespace", "v1"), "nodes": ("Node", "v1"), "pods": ("Pod", "v1"),
    "services": ("Service", "v1"), "events": ("Event", "v1"), "secrets": ("Secret", "v1"),
    "daemonsets": ("DaemonSet", "apps/v1"), "configmaps": ("ConfigMap", "v1"),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1"),
    "networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1"),
    "leases": ("Lease", "coordination.k8s.io/v1"),
}
# served only where the world installs their CRDs (World.crds): the policy kinds of the admin
# tiers and of CNIs (backends/kube/policies.py)
CRD_RESOURCES = {
    "adminnetworkpolicies": ("AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1"),
    "baselineadminnetworkpolicies": ("BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1"),
    "globalnetworkpolicies": ("GlobalNetworkPolicy", "crd.projectcalico.org/v1"),
    "ciliumclusterwidenetworkpolicies": ("CiliumClusterwideNetworkPolicy", "cilium.io/v2"),
    "ciliumnetworkpolicies": ("CiliumNetworkPolicy", "cilium.io/v2"),
}


def node(name: str, ip: str, ready: bool = True, labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False) -> dict:
    """A Node as kubectl get -o json shows it (the fields netconform reads, and their neighbours)."""
    return {
        "metadata": {"name": name, "uid": _uid(), "resourceVersion": "100", "creationTimestamp": NOW,
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", **(labels or {})}},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "taints": taints or None,
                 **({"unschedulable": True} if unschedulable else {})},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": NOW, "lastTransitionTime": NOW, "message": "ok"},
                {"type": "Ready", "status": "True" if ready else "False",
                 "reason": "KubeletReady" if ready else "KubeletNotReady",
                 "message": "kubelet is posting ready status" if ready else
                 "container runtime network not ready: NetworkReady=false",
                 "lastHeartbeatTime": NOW, "lastTransitionTime": NOW}],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": f"v{VERSION}", "containerRuntimeVersion": "containerd://2.1.0",
                         "kernelVersion": "6.12.0", "osImage": "Debian GNU/Linux 13", "operatingSystem":
                         "linux", "architecture": "amd64", "machineID": "m", "systemUUID": "s",
                         "bootID": "b", "kubeProxyVersion": "", "containerRuntime": "containerd"}}}


def cni_daemonset(namespace: str, name: str, image: str, labels: dict[str, str]) -> tuple:
    """A CNI's node agent as installed in the cluster, e.g. kind's kindnet in kube-system."""
    return ("daemonsets", namespace, {
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "labels": labels},
        "spec": {"selector": {"matchLabels": labels}, "revisionHistoryLimit": 10,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "hostNetwork": True, "serviceAccountName": name, "restartPolicy": "Always",
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                                     "securityContext": {"capabilities": {
                                         "add": ["NET_RAW", "NET_ADMIN"]}}}]}}},
        "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 3,
                   "numberMisscheduled": 0, "numberReady": 3, "observedGeneration": 1,
                   "updatedNumberScheduled": 3}})


KINDNET = cni_daemonset("kube-system", "kindnet", "docker.io/kindest/kindnetd:v20250512-df8de77b",
                        {"app": "kindnet", "k8s-app": "kindnet", "tier": "node"})
KUBE_PROXY_CONFIG = ("configmaps", "kube-system", {  # as kubeadm writes it
    "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
    "data": {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                            "mode: nftables\nclusterCIDR: 10.244.0.0/16\n"}})
CILIUM = cni_daemonset("kube-system", "cilium", "quay.io/cilium/cilium:v1.18.2", {"k8s-app": "cilium"})


@dataclass
class PodFate:
    """What the kubelet and scheduler make of one DaemonSet pod."""
    state: str = "ready"  # ready | pending | creating | image-pull | crash | unschedulable
    ip: str | None = None


@dataclass
class World:
    """The cluster behind the API: its nodes, pre-existing objects, pod fates, the pod proxy."""
    nodes: list[dict]
    existing: list[tuple[str, str | None, dict]] = field(default_factory=list)  # (plural, ns, obj)
    fate: Callable[[str, str], PodFate] = lambda role, node: PodFate()
    cluster_ip: Callable[[str], str] | None = None  # name -> address; None: a free one, as the allocator
    proxy: Callable[[dict, int, str, str, dict | None], tuple[int, bytes]] | None = None
    # the EndpointSlice controller's slices of a namespace (None: from the Services and pods)
    endpoint_slices: Callable[["FakeApiServer", str], list[dict]] | None = None
    # the cluster's IP families, the primary's first: a pod gets a podIP in each, a Service that
    # asks for PreferDualStack or RequireDualStack a ClusterIP in each (the nodes say theirs)
    families: tuple[str, ...] = ("ipv4",)
    crds: tuple[str, ...] = ()  # plurals of CRD_RESOURCES the API server serves
    # objects made as a namespace is created (as a Kyverno generate rule makes a default-deny):
    # namespace name -> objects, each (plural, obj) with its namespace filled in
    on_namespace: Callable[[str], list[tuple[str, dict]]] | None = None
    # an admission policy: a pod -> the API server's refusal message, or None (admitted). A pod the
    # run creates is refused with 403; a DaemonSet's, in a FailedCreate event on the DaemonSet
    admit: Callable[[dict], str | None] | None = None
    # the kubelets' exec: (pod, container, command, stdin) -> (stdout, stderr, status); None: the API
    # server cannot reach a kubelet (500 "error dialing backend", as a real one says). relaying()
    # makes one of world.proxy: the agent's relay, as a container would run it
    exec: Callable[[dict, str, list[str], bytes], tuple[bytes, bytes, dict]] | None = None


class FakeApiServer:
    def __init__(self, world: World) -> None:
        self.world = world
        self.store: dict[tuple[str, str | None], dict[str, dict]] = {}
        self.requests: Counter[str] = Counter()  # "GET /api/v1/nodes" -> count
        self.log: list[tuple[str, str]] = []
        self.created: dict[str, list[str]] = defaultdict(list)  # plural -> names, in order
        self.lock = threading.RLock()
        self._ip = 0
        for n in world.nodes:
            self._put("nodes", None, n)
        for plural, ns, obj in world.existing:
            self._put(plural, ns, obj)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- lifecycle ---

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path, token: str = TOKEN):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}]}))
        return path

    # --- store ---

    def objects(self, plural: str, ns: str | None = None) -> list[dict]:
        with self.lock:
            if ns is None and plural not in ("nodes", "namespaces"):
                return [o for (p, _), objs in self.store.items() if p == plural for o in objs.values()]
            return list(self.store.get((plural, ns), {}).values())

    def _put(self, plural: str, ns: str | None, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", _uid())
        meta.setdefault("creationTimestamp", NOW)
        meta["resourceVersion"] = str(100 + sum(len(v) for v in self.store.values()))
        if ns:
            meta["namespace"] = ns
        self.store.setdefault((plural, ns), {})[meta["name"]] = obj
        return obj

    # --- behaviour of the cluster on create ---

    def _create(self, plural: str, ns: str | None, obj: dict) -> tuple[int, dict]:
        kind, version = RESOURCES[plural]
        obj = {**obj, "kind": kind, "apiVersion": version}
        try:
            kubernetes_validate.validate(obj, VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return 422, _status(422, "Invalid", f"{kind} \"{obj['metadata'].get('name')}\" is invalid: "
                                                f"{exc.message}")
        name = obj["metadata"]["name"]
        if ns and ("namespaces", None) in self.store and ns not in self.store[("namespaces", None)]:
            return 404, _status(404, "NotFound", f"namespaces \"{ns}\" not found")
        if name in self.store.get((plural, ns), {}):
            return 409, _status(409, "AlreadyExists", f"{plural} \"{name}\" already exists")
        if plural == "services":
            problem = self._allocate_service(obj)
            if problem:
                return 422, _status(422, "Invalid", problem)
        if plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        refusal = self.world.admit(obj) if plural == "pods" and self.world.admit else None
        if refusal:
            return 403, _status(403, "Forbidden", refusal)
        if plural == "pods":  # a standalone pod, bound to its node: that node's kubelet runs it
            obj["status"] = self._run_pod(obj)
        stored = self._put(plural, ns, obj)
        self.created[plural].append(name)
        if plural == "daemonsets":
            self._schedule(ns, stored)
        if plural == "namespaces" and self.world.on_namespace:
            for made_plural, made in self.world.on_namespace(name):
                self._put(made_plural, name, {**made, "metadata": {**made["metadata"], "namespace": name}})
        return 201, stored

    def _free_cluster_ip(self) -> str:
        """A ClusterIP no Service has, picked at random as the API server's allocator does (two
        Services never share one: a random pick that could collide once failed a test)."""
        taken = {ip for s in self.objects("services") for ip in s["spec"].get("clusterIPs") or [s["spec"].get("clusterIP")]}
        return secrets.choice([ip for ip in (f"10.96.0.{n}" for n in range(2, 252)) if ip not in taken])

    def _free_cluster_ip6(self) -> str:
        taken = {ip for s in self.objects("services") for ip in s["spec"].get("clusterIPs") or []}
        return secrets.choice([ip for ip in (f"fd00:10:96::{n:x}" for n in range(2, 252)) if ip not in taken])

    def _pod_ips(self, fixed: str | None) -> list[str]:
        """A new pod's podIPs, one per family of the world (``fixed``: the primary's, as a fate says)."""
        self._ip += 1
        four = fixed or f"10.244.{self._ip // 250}.{self._ip % 250 + 2}"
        six = f"fd00:10:244::{self._ip:x}"
        return [four if family == "ipv4" else (fixed if fixed and ":" in fixed else six)
                for family in self.world.families]

    def _allocate_service(self, svc: dict) -> str | None:
        spec = svc["spec"]
        if spec.get("type") == "ExternalName":  # no address, no ports
            return None
        families = self.world.families if spec.get("ipFamilyPolicy") in ("PreferDualStack", "RequireDualStack") \
            else self.world.families[:1]
        if spec.get("clusterIP") != "None":  # a headless Service keeps None
            primary = self.world.cluster_ip(svc["metadata"]["name"]) if self.world.cluster_ip \
                else self._free_cluster_ip() if families[0] == "ipv4" else self._free_cluster_ip6()
            spec["clusterIPs"] = [primary, *(self._free_cluster_ip6() for f in families[1:])]
            spec["clusterIP"] = primary
        else:
            spec["clusterIPs"] = ["None"]
        spec["ipFamilies"] = ["IPv4" if f == "ipv4" else "IPv6" for f in families]
        used = {p.get("nodePort") for s in self.objects("services") for p in s["spec"].get("ports", [])}
        for port in spec["ports"]:
            if spec.get("type") == "NodePort":
                if port.get("nodePort") in used:
                    return f"Service \"{svc['metadata']['name']}\" is invalid: spec.ports[0].nodePort: " \
                           f"Invalid value: {port['nodePort']}: provided port is already allocated"
                port.setdefault("nodePort", 30000 + secrets.randbelow(2767))
        spec.setdefault("sessionAffinity", "None")
        return None

    def _run_pod(self, pod: dict) -> dict:
        """The status the node's kubelet gives a pod created with its nodeName, as world.fate says."""
        node_name = pod["spec"].get("nodeName")
        n = next((n for n in self.world.nodes if n["metadata"]["name"] == node_name), None)
        if n is None:
            return {"phase": "Pending"}
        fate = self.world.fate(pod["metadata"]["labels"].get("netconform.io/role"), node_name)
        host_ip = n["status"]["addresses"][0]["address"]
        ip = self._pod_ips(fate.ip)
        as_workload = {"metadata": {"name": pod["metadata"]["name"], "uid": _uid()},
                       "spec": {"template": {"metadata": pod["metadata"], "spec": pod["spec"]}}}
        return daemonset_pod(as_workload, node_name, host_ip, ip, fate.state)["status"]

    def _schedule(self, ns: str, ds: dict) -> None:
        """The DaemonSet controller and the scheduler: one pod per node the template fits."""
        template = ds["spec"]["template"]
        role = template["metadata"]["labels"]["netconform.io/role"]
        for n in self.world.nodes:
            node_name = n["metadata"]["name"]
            selector = template["spec"].get("nodeSelector") or {}
            if any(n["metadata"]["labels"].get(k) != v for k, v in selector.items()):
                continue
            taints = [t for t in n["spec"].get("taints") or [] if t["effect"] in ("NoSchedule", "NoExecute")]
            # the DaemonSet controller adds its own tolerations, the cordon's among them
            tolerated = [*(template["spec"].get("tolerations") or []),
                         {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
            if any(not any(_tolerates(tol, t) for tol in tolerated) for t in taints):
                continue
            if not _affinity_allows(template["spec"].get("affinity"), node_name):
                continue
            fate = self.world.fate(role, node_name)
            internal = [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
            ip = internal if template["spec"].get("hostNetwork") else self._pod_ips(fate.ip)
            pod = daemonset_pod(ds, node_name, internal, ip, fate.state)
            taken = self.store.get(("pods", ns), {})
            while pod["metadata"]["name"] in taken:  # a generated name already in use: the API server
                # refuses it and the controller asks again (5 random characters: on 1,000 nodes, a
                # clash is likely; before, the second pod silently replaced the first)
                pod["metadata"]["name"] = f"{ds['metadata']['name']}-{secrets.token_hex(3)[:5]}"
            refusal = self.world.admit(pod) if self.world.admit else None
            if refusal:  # the DaemonSet controller's event (its reason and "Error creating: %v")
                self._put("events", ns, {
                    "metadata": {"name": f"{ds['metadata']['name']}.{secrets.token_hex(8)}"},
                    "involvedObject": {"kind": "DaemonSet", "name": ds["metadata"]["name"], "apiVersion": "apps/v1",
                                       "namespace": ns, "uid": ds["metadata"]["uid"]},
                    "reason": "FailedCreate", "message": f"Error creating: {refusal}", "type": "Warning",
                    "source": {"component": "daemonset-controller"}, "firstTimestamp": NOW,
                    "lastTimestamp": NOW, "count": 1})
                continue
            self._put("pods", ns, pod)
            if fate.state == "unschedulable":
                self._put("events", ns, scheduling_event(pod))

    # --- HTTP ---

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code: int, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data) + (100 if isinstance(body, BrokenOff) else 0)))
                self.end_headers()
                self.wfile.write(data)
                if isinstance(body, BrokenOff):  # the rest never comes: the connection ends here
                    self.close_connection = True

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _serve(self, method: str):
                url = urlsplit(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                body = self._body() if method in ("POST", "PUT", "PATCH") else None
                shape = re.sub(r"/pods/[^/]+/proxy/", "/pods/{pod}/proxy/", path)
                server.requests[f"{method} {shape}"] += 1
                server.log.append((method, path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                with server.lock:
                    code, answer = server.route(method, path, query, body)
                if isinstance(answer, bytes):
                    return self._send(code, answer)
                return self._send(code, answer)

            def do_GET(self):
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return self._websocket()
                self._serve("GET")

            def _websocket(self):
                """The exec subresource over WebSocket (v4.channel.k8s.io): stdin from channel 0
                up to its first newline, then stdout (1), stderr (2), the status (3), close."""
                url = urlsplit(self.path)
                found = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec", unquote(url.path))
                query = parse_qs(url.query)
                server.requests["GET /api/v1/namespaces/{ns}/pods/{pod}/exec"] += 1
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                with server.lock:
                    pod = server.store.get(("pods", found.group(1)), {}).get(found.group(2)) if found else None
                if pod is None:
                    return self._send(404, _status(404, "NotFound", "pods not found"))
                if server.world.exec is None:
                    return self._send(500, _status(500, "InternalError", "error dialing backend: dial tcp "
                                                   f"{pod['status'].get('hostIP')}:10250: connect: connection refused"))
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
                self.send_response(101)
                for name, value in (("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                    ("Sec-WebSocket-Accept", accept), ("Sec-WebSocket-Protocol", "v4.channel.k8s.io")):
                    self.send_header(name, value)
                self.end_headers()
                stdin = b""
                while b"\n" not in stdin:
                    opcode, payload = _read_frame(self.rfile)
                    if opcode is None or opcode == 8:
                        break
                    if payload[:1] == b"\x00":
                        stdin += payload[1:]
                out, err, status = server.world.exec(pod, query.get("container", [""])[0], query.get("command", []), stdin)
                for channel, data in ((1, out), (2, err), (3, json.dumps(status).encode())):
                    if data:
                        self.wfile.write(_frame(2, bytes([channel]) + data))
                self.wfile.write(_frame(8, b""))
                self.wfile.flush()
                self.close_connection = True

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

            def do_PATCH(self):
                self._serve("PATCH")

        return Handler

    def route(self, method: str, path: str, query: dict, body: dict | None):
        if path == "/version":
            return 200, {"major": "1", "minor": "37", "gitVersion": f"v{VERSION}", "platform": "linux/amd64"}
        proxy = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/(.*)", path)
        if proxy:
            return self._proxy(method, *proxy.groups(), body)
        found = re.fullmatch(r"/apis?/(?:([a-z0-9.]+)/)?(v[0-9a-z]+)(?:/namespaces/([^/]+))?/([a-z]+)(?:/([^/]+))?",
                             path)
        served = {**RESOURCES, **{p: CRD_RESOURCES[p] for p in self.world.crds}}
        if not found or found.group(4) not in served or \
                "/".join(g for g in found.group(1, 2) if g) != served[found.group(4)][1]:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        ns, plural, name = found.group(3, 4, 5)
        if plural == "namespaces" and ns is None and name is not None:
            ns, name = None, name
        if method == "GET" and name is None:
            items = self.objects(plural, ns)
            if plural == "endpointslices" and ns is not None:
                items = items + self._controller_slices(ns)
            selector = query.get("labelSelector", [""])[0]
            items = [o for o in items if _matches(o, selector)]
            kind, version = served[plural]
            return 200, {"kind": f"{kind}List", "apiVersion": version,
                         "metadata": {"resourceVersion": "999"}, "items": items}
        if method == "POST" and name is None:
            return self._create(plural, ns, body)
        objects = self.store.get((plural, ns), {})
        if name not in objects:
            return 404, _status(404, "NotFound", f"{plural} \"{name}\" not found")
        if method == "GET":
            return 200, objects[name]
        if method == "PATCH":  # a merge patch (a strategic one is the same for maps such as labels)
            objects[name] = _merged(objects[name], body or {})
            return 200, objects[name]
        if method == "DELETE":
            obj = objects.pop(name)
            if plural == "namespaces":  # the namespace controller removes what it held
                for key in [k for k in self.store if k[1] == name]:
                    del self.store[key]
                obj["status"] = {"phase": "Terminating"}
                obj["metadata"]["deletionTimestamp"] = NOW
            return 200, obj
        return 405, _status(405, "MethodNotAllowed", "the server does not allow this method")

    def _controller_slices(self, ns: str) -> list[dict]:
        """The EndpointSlice controller: one slice per Service with a selector, listing the pods
        it selects, ready as their Ready condition says (the world's slices when it has its own)."""
        if self.world.endpoint_slices is not None:
            return self.world.endpoint_slices(self, ns)
        return self.selector_slices(ns)

    def selector_slices(self, ns: str) -> list[dict]:
        """The slices the EndpointSlice controller makes from the namespace's Services and pods."""
        slices = []
        for svc in self.objects("services", ns):
            selector = svc["spec"].get("selector")
            if not selector:
                continue
            pods = [p for p in self.objects("pods", ns) if p["status"].get("podIP") and
                    all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            slices.append({
                "metadata": {"name": f"{svc['metadata']['name']}-fake", "namespace": ns,
                             "labels": {"kubernetes.io/service-name": svc["metadata"]["name"]}},
                "addressType": "IPv4",
                "ports": [{"name": p.get("name"), "port": p.get("targetPort"), "protocol": p.get("protocol")}
                          for p in svc["spec"].get("ports", [])],
                "endpoints": [{"addresses": [p["status"]["podIP"]], "nodeName": p["spec"].get("nodeName"),
                               "conditions": {"ready": any(c["type"] == "Ready" and c["status"] == "True"
                                                           for c in p["status"].get("conditions", []))}}
                              for p in pods]})
        return slices

    def _proxy(self, method, ns, pod_name, port, rest, body):
        pod = self.store.get(("pods", ns), {}).get(pod_name)
        if pod is None:
            return 404, _status(404, "NotFound", f"pods \"{pod_name}\" not found")
        if self.world.proxy is None:
            return 503, _status(503, "ServiceUnavailable", "error trying to reach service: no route")
        return self.world.proxy(pod, int(port), method, rest, body)


class BrokenOff(bytes):
    """A proxied answer the API server aborts part-way (as kube-apiserver does when its copy of the
    pod's answer fails): sent with a Content-Length 100 bytes longer than it, then the connection
    closes."""


def _affinity_allows(affinity: dict | None, node_name: str) -> bool:
    """The scheduler's required node affinity, for the one kind of term netconform writes:
    matchFields on metadata.name (terms are ORed, their expressions ANDed)."""
    required = ((affinity or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True
    for term in required["nodeSelectorTerms"]:
        fields = term.get("matchFields") or []
        if term.get("matchExpressions"):
            raise NotImplementedError("the fake scheduler reads matchFields on metadata.name only")
        if any(len(f["values"]) != 1 for f in fields):  # as the API server's validation
            raise ValueError("must be only one value when `operator` is 'In' or 'NotIn' for node field selector")
        if all(f["key"] == "metadata.name" and (node_name in f["values"]) == (f["operator"] == "In")
               for f in fields):
            return True
    return False


def daemonset_pod(ds: dict, node_name: str, host_ip: str | list[str], ip: str | list[str], state: str) -> dict:
    template = ds["spec"]["template"]
    hosts = [host_ip] if isinstance(host_ip, str) else host_ip  # the node's InternalIPs
    name = f"{ds['metadata']['name']}-{secrets.token_hex(3)[:5]}"
    spec = {**template["spec"], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}}
    pod = {"metadata": {"name": name, "generateName": f"{ds['metadata']['name']}-",
                        "labels": {**template["metadata"]["labels"], "controller-revision-hash": "7d9f",
                                   "pod-template-generation": "1"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                             "name": ds["metadata"]["name"], "uid": ds["metadata"]["uid"],
                                             "controller": True, "blockOwnerDeletion": True}]},
           "spec": spec, "status": {"phase": "Pending", "qosClass": "Burstable"}}
    if state == "unschedulable":
        pod["status"]["conditions"] = [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastProbeTime": None,
            "lastTransitionTime": NOW, "message": "0/3 nodes are available: 1 Insufficient memory. "
            "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."}]
        return pod
    spec["nodeName"] = node_name
    ready = state == "ready"
    pod["status"].update({
        "phase": "Running" if state in ("ready", "crash") else "Pending",
        "hostIP": hosts[0], "hostIPs": [{"ip": one} for one in hosts], "startTime": NOW,
        "conditions": [{"type": t, "status": "True" if ok else "False", "lastProbeTime": None,
                        "lastTransitionTime": NOW, **({} if ok else {"reason": "ContainersNotReady"})}
                       for t, ok in (("PodReadyToStartContainers", True), ("Initialized", True),
                                     ("Ready", ready), ("ContainersReady", ready), ("PodScheduled", True))],
        "containerStatuses": [container_status(c, state) for c in template["spec"]["containers"]]})
    if state != "image-pull":
        ips = [ip] if isinstance(ip, str) else ip  # one per family, the primary's first
        pod["status"].update({"podIP": ips[0], "podIPs": [{"ip": one} for one in ips]})
    return pod


def container_status(container: dict, state: str) -> dict:
    status = {"name": container["name"], "image": container["image"], "imageID": "",
              "ready": state == "ready",
              "started": state == "ready", "restartCount": 0, "lastState": {}}
    if state in ("ready", "pending"):
        status["state"] = {"running": {"startedAt": NOW}}
        status["containerID"] = f"containerd://{secrets.token_hex(32)}"
        status["imageID"] = f"{container['image']}@sha256:{'0' * 64}"
    elif state == "creating":  # kubelet could not set up its sandbox (the CNI failed), and retries
        status["state"] = {"waiting": {"reason": "ContainerCreating", "message":
                                       "failed to setup network for sandbox: plugin type=\"bridge\" failed (add)"}}
    elif state == "image-pull":
        status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message":
                                       f"Back-off pulling image \"{container['image']}\": ErrImagePull: "
                                       "failed to pull and unpack image: not found"}}
    elif state == "crash":
        status.update(restartCount=4, state={"waiting": {
            "reason": "CrashLoopBackOff", "message": f"back-off 1m20s restarting failed container="
                                                     f"{container['name']}"}},
                      lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": NOW,
                                                "finishedAt": NOW}})
    return status


def scheduling_event(pod: dict) -> dict:
    return {"metadata": {"name": f"{pod['metadata']['name']}.{secrets.token_hex(8)}"},
            "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "apiVersion": "v1",
                               "namespace": pod["metadata"].get("namespace"), "uid": pod["metadata"]["uid"]},
            "reason": "FailedScheduling", "message": pod["status"]["conditions"][0]["message"],
            "source": {"component": "default-scheduler"}, "firstTimestamp": NOW, "lastTimestamp": NOW,
            "count": 1, "type": "Warning", "eventTime": None, "reportingComponent": "default-scheduler",
            "reportingInstance": ""}


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


def _read_frame(stream) -> tuple[int | None, bytes]:
    """One client frame (masked, as clients send them): (opcode, payload); (None, b"") at the end."""
    head = stream.read(2)
    if len(head) < 2:
        return None, b""
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(stream.read(2), "big")
    elif length == 127:
        length = int.from_bytes(stream.read(8), "big")
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(length)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _frame(opcode: int, payload: bytes) -> bytes:
    """One server frame (unmasked, final)."""
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 65536:
        head += bytes([126]) + size.to_bytes(2, "big")
    else:
        head += bytes([127]) + size.to_bytes(8, "big")
    return head + payload


def relaying(proxy: Callable) -> Callable[[dict, str, list[str], bytes], tuple[bytes, bytes, dict]]:
    """The exec a kubelet would run of the agent's relay (probes/netprobe.py), answered as
    ``proxy`` answers the pod proxy: one request line in, one answer line out."""
    def run(pod: dict, container: str, command: list[str], stdin: bytes):
        if "relay" not in command:
            return b"", b"not the relay", {"status": "Failure", "message": "command terminated with exit code 2"}
        port = int(command[command.index("--port") + 1])
        request = json.loads(stdin)
        code, answer = proxy(pod, port, request["method"], request["endpoint"], request.get("body"))
        answer = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        line = json.dumps({"status": code, "body": base64.b64encode(answer).decode()}).encode() + b"\n"
        return line, b"", {"metadata": {}, "status": "Success"}
    return run


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _merged(obj: dict, patch: dict) -> dict:
    """RFC 7386: a key set to null goes, a map merges key by key, anything else replaces."""
    out = dict(obj)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _matches(obj: dict, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if tol.get("operator") == "Exists":
        return not tol.get("key") or tol["key"] == taint["key"]
    return tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", "")


def _uid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
