"""The JSON Schema of results.json (netconform/report/results.schema.json): every results file a
test makes, on the lab or in memory, is checked against it, so the schema and the writer cannot
drift apart unnoticed."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "netconform" / "report" / "results.schema.json"


@cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(document: dict) -> list[str]:
    """Where the document breaks the schema (a path and a message each); none when it holds."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}"
            for e in sorted(validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def assert_valid_file(path: Path) -> None:
    found = problems(json.loads(Path(path).read_text()))
    assert not found, f"{path} breaks results.schema.json: " + "; ".join(found[:5])
