"""--baseline: a run compared with an earlier one, item by item (report/baseline.py)."""
import json

import pytest

from netconform.report import baseline, html, results

from .test_report import record


def document(*records, started="2026-11-28T01:00:00Z"):
    """A results document as a run writes it, read back as --baseline reads it."""
    return results.build({"started": started, "cni": "bridge", "backend": "lab", "netconform": "0.1.0",
                          "nodes": ["node-1", "node-2", "node-3"], "ip_families": ["ipv4"]}, list(records))


def written(tmp_path, doc, name="old.json"):
    results.write(tmp_path / name, doc)
    return tmp_path / name


def test_a_failure_introduced_between_two_runs_is_new_a_mended_one_fixed_and_the_rest_unchanged(tmp_path):
    before = document(record(src="node-1", dst="node-2"), record(src="node-1", dst="node-3", outcome="failed"),
                      record(src="node-2", dst="node-3", outcome="failed"), record(src="node-3", dst="node-1"),
                      record(src="node-9", dst="node-1", outcome="failed"))
    now = document(record(src="node-1", dst="node-2", outcome="failed"), record(src="node-1", dst="node-3"),
                   record(src="node-2", dst="node-3", outcome="error"), record(src="node-3", dst="node-1", outcome="error"),
                   record(src="node-4", dst="node-1", outcome="failed"))
    found = baseline.compare(baseline.load(written(tmp_path, before)), now, "old.json")
    assert found["new_failures"] == ["POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-a]"]
    assert found["fixed"] == ["POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-3/probe-a]"]
    assert found["unchanged"] == ["POD-POD-CROSS[tcp/ipv4:node-2/probe-a->node-3/probe-a]"]  # failed, now error
    assert found["new_errors"] == ["POD-POD-CROSS[tcp/ipv4:node-3/probe-a->node-1/probe-a]"]  # the harness's
    # an item one run has and the other has not is never called new or fixed
    assert found["failing_not_in_baseline"] == ["POD-POD-CROSS[tcp/ipv4:node-4/probe-a->node-1/probe-a]"]
    assert (found["compared"], found["only_in_baseline"], found["only_now"]) == (4, 1, 1)
    assert (found["verdict"], found["started"]) == ("NOT CONFORMANT", "2026-11-28T01:00:00Z")


def test_two_identical_runs_compare_with_nothing_new_and_the_terminal_says_so():
    same = document(record(), record(src="node-2", dst="node-1", outcome="failed"))
    found = baseline.compare(same, same, "old.json")
    assert found["new_failures"] == found["fixed"] == [] and len(found["unchanged"]) == 1
    (line,) = baseline.lines(found)
    assert "2 item(s) in both; 0 new failure(s), 0 fixed, 1 still failing" in line


def test_the_terminal_names_new_failures_up_to_a_bound_and_counts_the_rest():
    before = document(*(record(src=f"node-{i}") for i in range(30)))
    now = document(*(record(src=f"node-{i}", outcome="failed") for i in range(30)))
    said = baseline.lines(baseline.compare(before, now, "old.json"))
    assert said[0].startswith("compared with /") and f"/old.json ({before['verdict']}, " in said[0]
    assert "30 new failure(s)" in said[0]
    assert len([line for line in said if line.startswith("  new failure: ")]) == baseline.SHOWN
    assert said[-1] == f"  … and {30 - baseline.SHOWN} more new failure item(s) (results.json: baseline)"


def test_the_report_lists_the_new_failures_linked_to_their_evidence_and_results_json_keeps_them(tmp_path):
    before = document(record(), record(src="node-3"))
    now = document(record(outcome="failed", kind="timeout", reason="timed out"), record(src="node-3"))
    now["baseline"] = baseline.compare(before, now, "old.json")
    page = html.render(now)
    new_id = "POD-POD-CROSS[tcp/ipv4:node-1/probe-a-&gt;node-2/probe-a]"
    assert 'id="baseline"' in page and "New failures: passed in the earlier run, fail now (1)" in page
    assert f'<a href="#{new_id}">{new_id}</a>' in page and f'id="{new_id}"' in page
    assert "Fixed:" not in page  # an empty list is left out
    kept = results.read(written(tmp_path, now, "results.json"))
    assert kept["baseline"]["new_failures"] == ["POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-a]"]


@pytest.mark.parametrize("content, said", [
    (None, "No such file or directory"),
    ("{not json", "is not a netconform results file (JSONDecodeError)"),
    (json.dumps({"schema": "something/else"}), "is not a netconform results file (netconform/results/v4)"),
    (json.dumps([1, 2]), "is not a netconform results file"),
    (json.dumps({"schema": results.SCHEMA, "items": [{"no": "id"}]}), "is not a netconform results file"),
    # found by a hostile trial: each of these once ended in a traceback (or crashed the run's end)
    ("[" * 100000 + "]" * 100000, "is not a netconform results file (RecursionError)"),
    (json.dumps({"schema": results.SCHEMA, "tests": ["a"], "items": [{"id": "X[y]", "outcome": "passed",
                                                                     "requirement": "X", "test": 5}]}),
     "is not a netconform results file (IndexError)"),
    (json.dumps({"schema": results.SCHEMA, "items": [], "meta": "str"}), "its meta is not a mapping"),
])
def test_a_baseline_that_is_not_a_results_file_is_one_line(tmp_path, content, said):
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as caught:
        baseline.compare(baseline.load(path), document(record()), path)
    assert said in str(caught.value) and str(caught.value).startswith("--baseline")
    assert "\n" not in str(caught.value)


def test_results_files_hold_to_the_json_schema_and_the_schema_can_refuse_one(tmp_path):
    """netconform/report/results.schema.json describes what results.write writes: passes, failures
    with evidence, flaky items, deviations and the baseline; a file that strays is refused."""
    from ..results_schema import assert_valid_file, problems
    before = document(record(), record(src="node-3"))
    now = document(record(outcome="failed", kind="timeout", reason="timed out", observed={"error": "timeout"},
                          evidence={"node-1": {"routes": [], "interfaces": []}}),
                   record(src="node-3", flaky=True, kind="flaky"),
                   record("SVC-HAIRPIN", outcome="xfailed", deviation="no hairpin on this CNI"))
    now["baseline"] = baseline.compare(before, now, "old.json")
    assert_valid_file(written(tmp_path, now, "results.json"))
    wrong = json.loads((tmp_path / "results.json").read_text())
    wrong["items"][0]["outcome"] = "maybe"
    wrong["surprise"] = 1
    wrong["items"][1].pop("test", None), wrong["items"][1].pop("nodeid", None)  # names no test
    found = problems(wrong)
    assert any(p.startswith("items/0/outcome:") for p in found), found
    assert any("surprise" in p for p in found) and any(p.startswith("items/1") for p in found), found


def test_skipped_items_and_known_deviations_are_neither_fixed_nor_new_and_the_terminal_says_what_differs():
    """Found by a hostile trial: a rerun whose items were all declared not applicable (skipped)
    called 24 failing items "fixed". Fixed means it passes now; new means it passed then."""
    before = document(record(outcome="failed"), record(src="node-2", outcome="skipped"),
                      record(src="node-3", outcome="failed"))
    now = document(record(outcome="skipped"), record(src="node-2", outcome="failed"),
                   record(src="node-3", outcome="xfailed"), record("LOCALHOST"))
    found = baseline.compare(before, now, "old.json")
    assert found["fixed"] == found["new_failures"] == found["unchanged"] == [] and found["not_judged"] == 3
    assert found["path"].startswith("/") and found["path"].endswith("/old.json")  # resolved: results.json says where
    said = baseline.lines(found)
    assert "3 skipped or a known deviation in one of them; 1 item(s) only in this run, 0 only in the baseline" in said[0]
    apart = baseline.lines(baseline.compare(document(record("LOCALHOST")), document(record()), "old.json"))
    assert apart[-1] == "  the two runs have no item in common: another selection, size or family"
