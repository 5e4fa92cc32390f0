"""Verdicts of the DNS rows (and of the rows that change a Service and ask its name): every
question answered as it expects, and the name connects.

A question that got no answer (a timeout, every nameserver failing) fails as the network's doing:
cluster DNS is part of the network the rows judge. What a question expects was written when it
was made (netconform/dns.py); here the answers are only compared, so a reader sees the name asked,
the transport, the answer and the expectation side by side.
"""
from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase

from .runner import Observation
from .service_verdicts import may_answer
from .verdicts import Verdict, harness_error

NXDOMAIN = "NXDOMAIN"


def _answers(result: dict) -> list[str]:
    if result.get("rcode") not in (None, "NOERROR"):
        return [result["rcode"]]
    if result["query"]["type"] == "SRV":  # "priority weight port target": the rows judge port and target
        return sorted(" ".join(a.split()[2:]).lower() for a in result.get("answers", []))
    return sorted(a.lower() for a in result.get("answers", []))  # names are case-insensitive


def _matches(expect: tuple[str, ...], got: list[str]) -> bool:
    if NXDOMAIN in expect:  # either answer is right (pods verified / pods insecure)
        return got == [NXDOMAIN] or got == sorted(e for e in expect if e != NXDOMAIN)
    if len(got) != len(expect):
        return False
    left = [e.lower() for e in expect]
    for answer in got:
        match = next((e for e in left if fnmatchcase(answer, e)), None)
        if match is None:
            return False
        left.remove(match)
    return True


def _asked(obs: Observation, r: dict) -> str:
    q = r["query"]
    how = "with the search list" if q["search"] else "as an absolute name"
    return f"{q['type']} {q['name']} ({how}) over {obs.case.protocol} from {obs.source.name}"


def _connection_failed(obs: Observation, r: dict) -> Verdict | None:
    c = r["connection"]
    where = r["id"].split("@", 1)[-1].rpartition("/")[0]  # the round: "initial", or the change's label
    target = f"{obs.case.protocol} from {obs.source.name} to {c['ip']}:{c['port']} ({c['label']}" \
             f"{f', round {where}' if where else ''})"
    if not c.get("answered", True):  # a port the change removed: a reject or a timeout is right
        if r["ok"]:
            return Verdict(False, "still-answered", f"{target} was answered by {r.get('responder')}, "
                           f"but {c.get('why_unanswered') or 'the Service no longer has that port over ' + obs.case.protocol}"
                           f"{_how_it_settled(r, 'answered')}",
                           {"connection": c, "responder": r.get("responder"), **_settling(r, where)})
        return None
    if not r["ok"]:
        return Verdict(False, r["error"].split(":")[0], f"{target}: {r['error']} after "
                       f"{r.get('attempts', 0)} attempt(s) [{', '.join(r.get('errors', []))}]"
                       f"{_how_it_settled(r, 'unanswered')}",
                       {"connection": c, "error": r["error"], **_settling(r, where)})
    allowed = _control_backends(obs, c["ip"]) if c.get("control") else may_answer(obs)
    if r.get("responder") not in allowed:
        return Verdict(False, "wrong-responder", f"{target} was answered by {r.get('responder')}, "
                       f"not by a backend of {'the Service at ' + c['ip'] if c.get('control') else obs.destination.name}",
                       {"connection": c, "responder": r.get("responder")})
    return None


def _how_it_settled(r: dict, wrong: str) -> str:
    """What the tries before the counted attempts showed, after a change (netprobe: settled,
    flapped, steady), so that a failure says whether the cluster never followed the change or
    followed it and then went back on it (a flap), and whether it ever held still."""
    said = ""
    if r.get("settled"):
        said = f"; before them, {r['settled']} tries while the cluster had time to follow the change went {wrong}"
    if r.get("flapped"):
        said += (f"; it flapped: {r['flapped']} time(s) a try that behaved was followed by one that did not"
                 + ("" if r.get("steady") else ", and it never behaved on every try for two sync periods on end"))
    return said


def _settling(r: dict, where: str) -> dict:
    return {**({"round": where} if where else {}),
            **{k: r[k] for k in ("settled", "flapped", "steady") if k in r and (r.get("settled") or r.get("flapped"))}}


def _control_backends(obs: Observation, ip: str) -> set[str]:
    """Who may answer a positive control: the backends of the Service at its ClusterIP."""
    topology = obs.topology
    return {b for s in topology.services.values() if s.cluster_ip == ip for b in s.backends}


def _affinity_groups(obs: Observation) -> dict[tuple, dict[str, int]]:
    """(round, ip, port, sticky) -> how many of that round's connections each backend answered,
    for the connections to one address with an affinity expectation."""
    groups: dict[tuple, Counter] = {}
    for r in obs.results:
        c = r.get("connection")
        if c and c.get("sticky") is not None:
            round_name = r["id"].split("@", 1)[1].rsplit("/", 1)[0]
            groups.setdefault((round_name, c["ip"], c["port"], c["sticky"]), Counter())[r.get("responder")] += 1
    return {key: dict(counted) for key, counted in groups.items()}


def _affinity_failed(obs: Observation, groups: dict[tuple, dict[str, int]]) -> Verdict | None:
    """Each group answered by one backend (sticky), or by more than one (the affinity off)."""
    for (round_name, ip, port, sticky), counted in groups.items():
        where = (f"{sum(counted.values())} {obs.case.protocol} connections from {obs.source.name} to "
                 f"{ip}:{port} ({round_name})")
        if sticky and len(counted) > 1:
            return Verdict(False, "affinity", f"{where} landed on {len(counted)} backends with "
                           f"sessionAffinity ClientIP: {counted}", {"round": round_name, "answered_by": counted})
        if not sticky and len(counted) < 2:
            return Verdict(False, "still-sticky", f"{where} all landed on {next(iter(counted))} with "
                           "sessionAffinity None", {"round": round_name, "answered_by": counted})
    return None


def answered_as_expected(obs: Observation) -> Verdict:
    """Every DNS question of the item: answered, with exactly the expected records; where it
    connects, a probe the name leads to answered; every connection of a round (to a NodePort
    the change gave) answered by a probe the Service leads to."""
    observed, control, said = {}, None, {}
    for r in obs.results:
        if r.get("error") == "harness":  # no names to ask, or a Service it could not change
            return Verdict(False, "harness", r.get("harness_error", ""), harness=True)
        harness = harness_error(obs, r)
        if harness:
            return harness
        if "connection" in r:  # a round's connection to an address the change gave (a NodePort)
            failed = _connection_failed(obs, r)
            if failed and r["connection"].get("control"):
                control = control or failed
            elif failed:
                return failed
            continue
        if not r["ok"]:  # "…resolved to 10.96.0.7, but tcp to it failed: timeout" is a timeout
            kind = r["error"].rsplit("failed: ", 1)[-1] if "but " in r["error"] else r["error"]
            return Verdict(False, kind.split(":")[0],
                           f"{_asked(obs, r)}: {r['error']} after {r.get('attempts', 0)} attempt(s) "
                           f"[{', '.join(r.get('errors', []))}]",
                           {"query": r["query"]["name"], "error": r["error"]})
        q, got = r["query"], _answers(r)
        expect = tuple(q["expect"])
        label = r["id"].split("@", 1)[-1]  # the question's label, after its round if any
        # several records already seen as an earlier question's answers are written as that one's:
        # a headless Service's SRV records, asked three ways, were a sixth of a 50-node results.json
        observed[label] = f"as {said[tuple(got)]}" if len(got) > 1 and tuple(got) in said else got
        said.setdefault(tuple(got), label)
        if not _matches(expect, got):
            wanted = " or ".join(expect) if NXDOMAIN in expect else list(expect)
            return Verdict(False, "wrong-answer", f"{_asked(obs, r)} answered {got or 'no records'} "
                           f"(as {r.get('qname')}), expected {wanted}",
                           {"query": q["name"], "answers": got, "expected": list(expect)})
        if q["connect"] and r.get("responder") not in may_answer(obs):
            return Verdict(False, "wrong-responder", f"{q['name']} connected to {r.get('connected_to')}, "
                           f"answered by {r.get('responder')}, not by a backend of "
                           f"{obs.destination.name}", {"query": q["name"], "responder": r.get("responder")})
    if control:  # a silence proves nothing when the control went unanswered too
        return Verdict(False, "control failed", f"the positive control failed, so no answer where "
                       f"none was due proves nothing: {control.reason}", control.observed, harness=True)
    groups = _affinity_groups(obs)
    affinity = _affinity_failed(obs, groups)
    if affinity:
        return affinity
    observed.update({f"{round_name}/{ip}:{port}": counted for (round_name, ip, port, _), counted in groups.items()})
    # a removed port's attempts all go unanswered by design: that is no retry
    retried = [r for r in obs.results if r.get("attempts", 1) > 1 and r.get("connection", {}).get("answered", True)]
    if retried:
        return Verdict(True, "flaky", f"{len(retried)} question(s) answered only on a retry "
                       f"(earlier: {', '.join(retried[0].get('errors', []))})", observed)
    mode = {"pods verified" if observed.get("unknown") == [NXDOMAIN] else "pods insecure"} \
        if "unknown" in observed else set()
    return Verdict(True, "pass", f"cluster DNS answers unknown pod IPs as {mode.pop()}" if mode else "",
                   observed)
