"""The cross-CNI matrix from results documents: one column per run, verdicts and counts per row."""
import json

import pytest

from netconform.report import matrix, results
from netconform.report.results import ItemRecord


def run_document(cni: str, outcomes: dict[str, list[str]]) -> dict:
    records = [ItemRecord(id=f"{req}[{n}]", nodeid=f"x::{req}{n}", requirement=req, level="MUST",
                          protocol="tcp", source={"name": "a"}, destination=None, outcome=outcome)
               for req, found in outcomes.items() for n, outcome in enumerate(found)]
    return results.build({"cni": cni, "backend": "kube"}, records)


@pytest.fixture
def runs(tmp_path):
    paths = []
    for cni, outcomes in [
        ("calico", {"POD-POD-CROSS": ["passed"] * 4, "SVC-HAIRPIN": ["passed"] * 2}),
        ("kube-router", {"POD-POD-CROSS": ["passed"] * 4, "SVC-HAIRPIN": ["xfailed", "xfailed"]}),
        ("broken", {"POD-POD-CROSS": ["passed", "failed", "failed", "passed"]}),
    ]:
        folder = tmp_path / f"results-{cni}"
        results.write(folder / "results.json", run_document(cni, outcomes))
        (folder / "report.html").write_text("<html></html>")
        paths.append(folder / "results.json")
    return paths


def cells(page: dict, requirement: str) -> list[tuple[str, str]]:
    row = next(r for g in page["groups"] for r in g["rows"] if r["id"] == requirement)
    return [(c["text"], c["counts"]) for c in row["cells"]]


def test_one_column_per_run_one_cell_per_requirement(runs, tmp_path):
    page = matrix.build(runs, tmp_path / "index.html")
    assert [c["name"] for c in page["columns"]] == ["calico", "kube-router", "broken"]
    assert [c["link"] for c in page["columns"]] == [f"results-{n}/report.html"
                                                   for n in ("calico", "kube-router", "broken")]
    assert cells(page, "POD-POD-CROSS") == [("pass", "4/4"), ("pass", "4/4"), ("fail", "2/4")]
    assert cells(page, "SVC-HAIRPIN") == [("pass", "2/2"), ("known deviation", "0/2, 2 known"),
                                          ("not run", "")]
    # every MUST row it has not run keeps each verdict from CONFORMANT; a MUST failure decides it
    assert [c["verdict"] for c in page["columns"]] == ["INCOMPLETE", "INCOMPLETE", "NOT CONFORMANT"]
    assert [c["css"] for c in page["columns"]] == ["incomplete", "incomplete", "fail"]
    assert [g["level"] for g in page["groups"]] == ["MUST", "SHOULD", "MAY"]


def test_two_runs_of_one_cni_are_told_apart(runs, tmp_path):
    page = matrix.build([runs[0], runs[0]], tmp_path / "index.html")
    assert [c["name"] for c in page["columns"]] == ["calico", "calico (2)"]


@pytest.mark.parametrize("families, name", [(None, "kindnet"), (["ipv4"], "kindnet"),
                                            (["ipv4", "ipv6"], "kindnet-dual"), (["ipv6", "ipv4"], "kindnet-dual"),
                                            (["ipv6"], "kindnet-ipv6")])
def test_one_cni_on_clusters_of_each_ip_family_is_a_column_each(tmp_path, families, name):
    document = run_document("kindnet", {"POD-POD-CROSS": ["passed"]})
    if families is not None:
        document["meta"]["cluster_ip_families"] = families
    results.write(tmp_path / "results.json", document)
    page = matrix.build([tmp_path / "results.json"], tmp_path / "index.html",
                        expect=["kindnet", "kindnet-dual", "kindnet-ipv6"])
    assert [c["name"] for c in page["columns"] if c["verdict"] != "not run"] == [name]


def test_a_file_that_is_not_a_results_document_is_refused(tmp_path):
    bogus = tmp_path / "results.json"
    bogus.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a netconform results file"):
        matrix.build([bogus], tmp_path / "index.html")


def test_an_expected_cni_without_results_is_a_not_run_column_in_the_expected_order(runs, tmp_path):
    expect = ["kindnet", "calico", "cilium", "kube-router"]
    page = matrix.build(runs, tmp_path / "index.html", expect=expect)
    # expected columns first, in the order given; a run nobody expected ("broken") keeps its column
    assert [c["name"] for c in page["columns"]] == ["kindnet", "calico", "cilium", "kube-router", "broken"]
    assert [c["verdict"] for c in page["columns"]] == ["not run", "INCOMPLETE", "not run", "INCOMPLETE",
                                                       "NOT CONFORMANT"]
    assert [c["link"] for c in page["columns"]][:3] == [None, "results-calico/report.html", None]
    assert cells(page, "POD-POD-CROSS") == [("not run", ""), ("pass", "4/4"), ("not run", ""),
                                            ("pass", "4/4"), ("fail", "2/4")]


def test_the_page_of_no_results_at_all_still_shows_every_expected_cni(tmp_path):
    output = tmp_path / "site" / "index.html"
    assert matrix.main(["--expect", "kindnet", "flannel", "--output", str(output)]) == 0
    html = output.read_text()
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert "kindnet" in header and "flannel" in header
    verdicts = html[html.index('<tr class="conformance">'):]
    assert verdicts.count(">not run</td>") == 2


def test_the_command_takes_results_and_the_expected_columns(runs, tmp_path, capsys):
    output = tmp_path / "index.html"
    assert matrix.main([*map(str, runs[:2]), "--expect", "calico", "flannel", "kube-router",
                        "--output", str(output)]) == 0
    assert "(not run: flannel)" in capsys.readouterr().out
    html = output.read_text()
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert header.index("calico") < header.index("flannel") < header.index("kube-router")
    assert '<a href="results-calico/report.html">calico</a>' in header
    with pytest.raises(SystemExit):  # neither results nor expected columns: nothing to show
        matrix.main(["--output", str(output)])


def test_a_conflist_named_for_its_family_is_not_named_twice_and_odd_family_lists_still_name_it(tmp_path):
    for cni, families, name in (("bridge-dual", ["ipv4", "ipv6"], "bridge-dual"), ("bridge", "ipv6", "bridge-ipv6")):
        document = run_document(cni, {"POD-POD-CROSS": ["passed"]})
        document["meta"]["cluster_ip_families"] = families
        assert matrix.column_name(document["meta"], "x") == name


def test_results_files_after_expect_and_a_list_for_a_document_are_clear_errors(tmp_path, capsys):
    (tmp_path / "list.json").write_text("[]")
    assert matrix.main([str(tmp_path / "list.json"), "--output", str(tmp_path / "i.html")]) == 2
    assert "is not a netconform results file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        matrix.main(["--expect", "bridge", str(tmp_path / "list.json")])
    assert "give the results files before --expect" in capsys.readouterr().err
