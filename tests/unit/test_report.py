"""results.json and report.html: verdicts per requirement, node matrices, evidence of failures."""
import json

from netconform.report import html, results
from netconform.report.results import ItemRecord


def record(req="POD-POD-CROSS", src="node-1", dst="node-2", outcome="passed", **extra):
    return ItemRecord(id=f"{req}[tcp/ipv4:{src}/probe-a->{dst}/probe-a]", nodeid="n", requirement=req,
                      level="SHOULD" if req.startswith("SVC") else "MUST", protocol="tcp",
                      source={"name": f"{src}/probe-a", "node": src, "ip": "10.244.1.2"},
                      destination={"name": f"{dst}/probe-a", "node": dst, "ip": "10.244.2.2"},
                      outcome=outcome, **extra)


def summary_of(records):
    return {row["id"]: row for row in results.requirement_summary(records)}


def test_requirement_verdicts():
    rows = summary_of([
        record("POD-POD-CROSS"), record("POD-POD-CROSS", outcome="failed", kind="nat"),
        record("POD-POD-SAME", outcome="xfailed"),
        record("NODE-POD", flaky=True, kind="flaky"),
        record("HOSTNET-POD"), record("SVC-HAIRPIN", outcome="failed")])
    assert rows["POD-POD-CROSS"]["verdict"] == "fail"
    assert rows["POD-POD-SAME"]["verdict"] == "known deviation"
    assert rows["NODE-POD"]["verdict"] == "flaky" and rows["NODE-POD"]["flaky"] == 1
    assert rows["HOSTNET-POD"]["verdict"] == "pass"
    assert rows["LOCALHOST"]["verdict"] == "not run"
    assert (rows["POD-POD-CROSS"]["passed"], rows["POD-POD-CROSS"]["failed"]) == (1, 1)


def test_only_a_must_failure_makes_a_cluster_non_conformant():
    should_failed = results.build({}, [record(), record("SVC-HAIRPIN", outcome="failed")])
    assert should_failed["verdict"] == "INCOMPLETE" and not should_failed["conformant"]
    must_failed = results.build({}, [record(outcome="failed")])
    assert must_failed["verdict"] == "NOT CONFORMANT" and must_failed["exit_code"] == 1


def test_results_round_trip(tmp_path):
    doc = results.build({"backend": "lab", "cni": "bridge"}, [record()])
    results.write(tmp_path / "results.json", doc)
    assert results.read(tmp_path / "results.json") == json.loads(json.dumps(doc))


def test_items_are_written_compact_and_read_back_whole(tmp_path):
    def item(req, params, function, **extra):
        return ItemRecord(id=f"{req}[{params}]", nodeid=f"suites/{function}[{params}]", requirement=req,
                          level="MUST", protocol="tcp", source={"name": "node-1/probe-a", "node": "node-1"},
                          destination=None, **{"outcome": "passed", **extra})
    items = [item("POD-POD-CROSS", f"tcp/ipv4:node-1/probe-a->node-{n}/probe-a",
                  "test_pod_network.py::test_pod_pod_cross", observed={"seen": "10.244.1.2"}) for n in range(2, 5)]
    items += [item("DNS-SRV", "tcp/ipv4:node-1/probe-a->svc/web-headless", "test_dns.py::test_dns_srv",
                   outcome="failed", flaky=True, reason="no answer", deviation="known", kind="timeout"),
              ItemRecord(id="LOCALHOST[odd]", nodeid="suites/test_other.py::test_x[else]", requirement="LOCALHOST",
                         level="MUST", protocol="tcp", source={}, destination=None, outcome="passed")]
    document = results.build({"backend": "lab"}, items)
    results.write(tmp_path / "results.json", document)
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema"] == "netconform/results/v4"
    assert raw["tests"] == ["suites/test_dns.py::test_dns_srv", "suites/test_pod_network.py::test_pod_pod_cross"]
    by_id = {i["id"]: i for i in raw["items"]}
    plain = by_id["POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-a]"]
    assert plain["test"] == 1 and not {"nodeid", "flaky", "reason", "deviation", "evidence"} & set(plain)
    said = by_id["DNS-SRV[tcp/ipv4:node-1/probe-a->svc/web-headless]"]  # what differs from the default is said
    assert (said["flaky"], said["reason"], said["deviation"], "observed" in said) == (True, "no answer", "known", False)
    assert by_id["LOCALHOST[odd]"]["nodeid"] == "suites/test_other.py::test_x[else]"  # not its own: kept as it is
    assert results.read(tmp_path / "results.json") == json.loads(json.dumps(document))
    written = (tmp_path / "results.json").read_text().split('"items": [', 1)[1]
    assert len(written) < 0.8 * len(json.dumps(document["items"], separators=(",", ":")))


def test_matrix_counts_pairs_of_nodes():
    doc = results.build({}, [record(), record(outcome="failed", kind="timeout"),
                             record(src="node-2", dst="node-1")])
    (matrix,) = html.matrices(doc["items"])
    assert matrix["nodes"] == ["node-1", "node-2"]
    row1, row2 = matrix["rows"]
    assert row1["cells"][1] == {"text": "1/2", "css": "fail", "title": "1/2 passed: timeout"}
    assert row2["cells"][0]["text"] == "1/1" and row1["cells"][0]["css"] == "none"


def test_html_has_the_summary_and_the_failure_evidence():
    failing = record(outcome="failed", kind="nat", reason="NAT: saw 172.18.0.2",
                     evidence={"node-1": {"interfaces": [], "routes": [
                         {"dst": "10.244.2.0/24", "gateway": "172.18.0.3", "dev": "eth0"}]}})
    page = html.render(results.build({"backend": "lab", "cni": "bridge"}, [failing]))
    assert 'id="summary"' in page and 'data-verdict="NOT CONFORMANT"' in page
    assert "failed: POD-POD-CROSS" in page
    assert "NAT: saw 172.18.0.2" in page and "10.244.2.0/24 via 172.18.0.3 dev eth0" in page


def test_a_failed_run_on_a_real_cni_links_its_daemons_logs_and_a_passing_one_only_lists_them():
    logs = ["logs/kube-flannel_kube-flannel-ds-abcde_kube-flannel.log"]
    meta = {"backend": "lab", "cni": "flannel", "lab_cni_logs": logs}
    failed = html.render(results.build(meta, [record(outcome="failed", kind="timeout", reason="no answer")]))
    assert 'id="cni-logs"' in failed and f'<a href="{logs[0]}">' in failed
    passed = html.render(results.build(meta, [record()]))
    assert 'id="cni-logs"' not in passed and f'<a href="{logs[0]}">' in passed  # the meta table's row
    assert "['logs/" not in passed  # a list, not its Python repr


def test_each_family_has_its_own_matrix_and_its_count_in_the_summary(tmp_path):
    six = dict(family="ipv6", outcome="failed", kind="nat")
    doc = results.build({}, [record(), record(**six), record(src="node-2", dst="node-1", **six)])
    four, v6 = html.matrices(doc["items"])
    assert (four["family"], v6["family"]) == ("ipv4", "ipv6")
    assert four["rows"][0]["cells"][1]["text"] == "1/1" and v6["rows"][0]["cells"][1]["text"] == "0/1"
    row = next(r for r in doc["summary"] if r["id"] == "POD-POD-CROSS")
    assert row["families"] == {"ipv4": {"total": 1, "passed": 1}, "ipv6": {"total": 2, "passed": 0}}
    page = html.render(doc)
    assert "ipv4 1/1, ipv6 0/2" in page and 'id="matrix-POD-POD-CROSS-ipv6"' in page


def test_the_run_metadata_reads_as_words_and_tables_never_as_python_reprs():
    meta = {"cni_plugins": ["bridge", "portmap"], "lab_faults": [], "lab_timings": {"lab_up": 9.59},
            "node_info": {"node-1": {"kernel": "6.18"}}, "keep": False, "cni_daemonset": None,
            "phases": {"setup": 9.5}}
    page = html.render(results.build(meta, [record()]))
    table = page[page.index('<table id="meta">'):page.index("</table>\n", page.index('<table id="meta">'))]
    for repr_mark in ("['", "{'", "[]", "None", "False"):
        assert repr_mark not in table, (repr_mark, table)
    assert "<th>cni plugins</th><td>bridge, portmap</td>" in table
    assert "<th>lab faults</th><td>none</td>" in table and "<th>keep</th><td>no</td>" in table
    assert "<th>lab up</th><td>9.59</td>" in table and "<th>kernel</th><td>6.18</td>" in table


def test_the_results_and_the_page_state_the_pairs_tested_out_of_the_pairs_that_exist():
    coverage = {"pairs": "sample", "seed": 3, "peers_per_node": None, "description": "a sample (seed 3)",
                "tested": 132, "exist": 528, "requirements": {"POD-POD-CROSS": {"tested": 132, "exist": 528}}}
    document = results.build({"backend": "lab", "cni": "bridge"}, [record()], coverage=coverage)
    rows = {row["id"]: row for row in document["summary"]}
    assert document["coverage"]["tested"] == 132
    assert rows["POD-POD-CROSS"]["pairs"] == {"tested": 132, "exist": 528} and rows["LOCALHOST"]["pairs"] is None
    page = html.render(document)
    assert 'id="coverage"' in page and "a sample (seed 3): 132 of\n  528 pairs tested" in page
    assert "132 of 528" in page


def test_a_nodes_tables_are_written_once_however_many_failures_name_it(tmp_path):
    tables = {"interfaces": [{"name": "eth0", "mac": "aa", "mtu": 1500, "state": "UP", "addresses": []}],
              "routes": [{"dst": "10.244.9.0/24", "gateway": "172.18.0.9", "dev": "eth0"}]}
    failing = [record(src="node-1", dst=f"node-{n}", outcome="failed", kind="timeout",
                      evidence={"node-1": tables, f"node-{n}": tables}) for n in range(2, 40)]
    document = results.build({"backend": "lab", "cni": "bridge"}, failing)
    results.write(tmp_path / "results.json", document)
    text = (tmp_path / "results.json").read_text()
    assert text.count("10.244.9.0/24") == 39  # node-1 and each of the 38 others, once each
    again = results.read(tmp_path / "results.json")
    assert again == json.loads(json.dumps(document))
    assert again["items"][0]["evidence"] == ["node-1", "node-10"] and set(again["evidence"]) >= {"node-1", "node-39"}
    page = html.render(again)
    assert page.count("10.244.9.0/24 via 172.18.0.9") == 39 and 'href="#evidence-node-1"' in page


def test_two_different_tables_of_one_node_are_both_kept():
    one = {"interfaces": [], "routes": [{"dst": "a"}]}
    other = {"interfaces": [], "routes": [{"dst": "b"}]}
    document = results.build({}, [record(outcome="failed", evidence={"node-1": one}),
                                  record(src="node-3", outcome="failed", evidence={"node-1": other})])
    assert sorted(document["evidence"]) == ["node-1", "node-1#2"]


def test_a_large_clusters_matrices_are_heatmaps_that_still_show_a_failing_pair():
    nodes = [f"node-{n}" for n in range(1, 41)]
    items = [record(src=a, dst=b, outcome="failed" if (a, b) == ("node-1", "node-40") else "passed",
                    kind="timeout" if (a, b) == ("node-1", "node-40") else "pass")
             for a in nodes for b in nodes if a != b]
    page = html.render(results.build({"backend": "lab", "cni": "bridge"}, items))
    matrix = page[page.index('id="matrix-POD-POD-CROSS-ipv4"'):]
    matrix = matrix[:matrix.index("</table>")]
    assert "heatmap" in page and matrix.count("<td class=pass></td>") == 40 * 39 - 1
    assert matrix.count("<td class=fail") == 1 and 'title="node-40: 0/1 passed: timeout"' in matrix
    assert len(matrix) < 40 * 40 * 25  # bytes per cell, where a worded matrix takes about 60
