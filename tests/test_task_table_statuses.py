"""``GET /yolo/tasks`` serves the job statuses by meaning, and its schema documents every key.

The front ends (the JupyterLab sidebar) read which statuses are live from here instead of
hard-coding them; the OpenAPI TaskTable schema must name every key the table has.
"""

from __future__ import annotations

import json

import jsonschema

from jupyter_yolo.contract.status import ACTIVE, STATUSES, TERMINAL, UNFINISHED
from jupyter_yolo.contract.table import task_table
from jupyter_yolo.openapi import build_spec


def test_the_task_table_serves_the_status_sets_of_the_contract() -> None:
    statuses = task_table()["statuses"]
    assert statuses["all"] == list(STATUSES)
    assert set(statuses["terminal"]) == TERMINAL
    assert set(statuses["active"]) == ACTIVE
    assert set(statuses["unfinished"]) == UNFINISHED
    assert set(statuses["unfinished"]) | set(statuses["terminal"]) == set(STATUSES)
    assert not set(statuses["unfinished"]) & set(statuses["terminal"])


def test_the_task_table_schema_documents_every_key_and_validates_the_table() -> None:
    spec = build_spec()
    schema = spec["components"]["schemas"]["TaskTable"]
    table = json.loads(json.dumps(task_table()))  # as served
    assert set(table) <= set(schema["properties"]), set(table) - set(schema["properties"])
    jsonschema.validate(table, schema)
    task_item = schema["properties"]["tasks"]["items"]["properties"]
    for row in table["tasks"]:
        assert set(row) <= set(task_item), set(row) - set(task_item)
    arch_item = schema["properties"]["architectures"]["items"]["properties"]
    assert set(table["architectures"][0]) <= set(arch_item)
    labels = schema["properties"]["metric_labels"]
    jsonschema.validate({"metrics/mAP50-95(M)": "mask mAP50-95"}, labels)
    groups = schema["properties"]["statuses"]
    bad = {**table["statuses"], "terminal": ["finished"]}  # not a status
    try:
        jsonschema.validate(bad, groups)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an unknown status passed the TaskTable schema")
