"""Property-based fuzzing of the REST API against the OpenAPI document the server serves.

schemathesis reads ``GET /yolo/openapi.json`` from a real ``jupyter server`` (a subprocess with the
extension, token authentication) and sends every operation a bounded, derandomized number of
generated requests: positive ones (fitting the document) and negative ones (breaking it in one
place). Every answer must be a documented status code (never a 5xx), of a documented content
type, and fit the documented schema; requests that break the document must be refused.

Nothing heavy can start: the workspace has no datasets (the built-in one is off), no weights and
no jobs, so no job request can name anything to train on, and the hardware probe (also the
jobs' interpreter) is a shell script that prints a recorded CPU-only report, so even
``/yolo/accelerators?refresh=1`` costs a few milliseconds and never imports torch. A positive case
of ``POST /yolo/datasets`` may generate a small synthetic dataset (which cases hypothesis draws
depends on what ran before in the session): the fuzzer records each dataset it created, and the
final check allows exactly those, still no job and no weights.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis  # pinned in the test extra: a missing install fails, never skips
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from .server_process import ServerProcess

FIXTURES = Path(__file__).parent / "fixtures" / "accelerators"
# Examples per operation and generation mode: about 1800 requests in all, under a minute here.
EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server on an empty workspace whose hardware probe is a recorded CPU report."""
    root = tmp_path_factory.mktemp("fuzz")
    workspace = root / "workspace"
    workspace.mkdir()
    probe = root / "probe.sh"
    probe.write_text(f"#!/bin/sh\ncat {FIXTURES / 'cpu_openvino.json'}\n")
    probe.chmod(0o755)
    process = ServerProcess(
        root,
        workspace,
        extra_args=(
            "--YoloApp.builtin_dataset=False",
            f"--YoloApp.probe_python={probe}",
            "--YoloApp.probe_timeout=10",
            "--YoloApp.max_upload_bytes=65536",
        ),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _nothing_to_run(server: ServerProcess, created: frozenset[str] = frozenset()) -> None:
    """No job or weights file exists, and no dataset but the ``created`` ones the fuzzer made."""
    names = {dataset["name"] for dataset in server.request("GET", "/yolo/datasets")["datasets"]}
    assert names == created
    assert server.request("GET", "/yolo/jobs")["jobs"] == []
    assert server.request("GET", "/yolo/models")["weights"] == []
    jobs = server.workspace / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def _short(message: str) -> str:
    """A failure report with its generated giant values cut down to readable lines."""
    lines = [line if len(line) <= 400 else line[:400] + " ..." for line in message.splitlines()]
    return "\n".join(lines).strip()


class Fuzzer:
    """Sends generated requests and keeps the counts and the first failure per operation."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = server.url
        self.auth = {"Authorization": f"token {server.token}"}
        self.session = requests.Session()
        # jupyter_server answers a token with a login cookie, which would authenticate the
        # generated requests that leave the token out: keep none
        self.session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.statuses: Counter[int] = Counter()
        self.failures: dict[str, str] = {}
        # names of the datasets a positive POST /yolo/datasets case created (201)
        self.created: set[str] = set()

    def run(self, operation: Any, mode: GenerationMode) -> None:
        """Send ``EXAMPLES`` generated requests to one operation and check every answer."""
        label = f"{operation.label} [{mode.value}]"

        @given(case=operation.as_strategy(generation_mode=mode, headers=self.auth))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def send(case: Any) -> None:
            response = case.call(base_url=self.url, session=self.session)
            self.statuses[response.status_code] += 1
            created = response.status_code == 201 and case.method.upper() == "POST"
            if created and case.path == "/yolo/datasets":
                self.created.add(response.json()["name"])
            try:
                case.validate_response(response, checks=CHECKS, headers=self.auth)
            except (Failure, FailureGroup) as exc:
                self.failures.setdefault(label, _short(str(exc)))

        send()


def test_fuzz_every_operation(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    _nothing_to_run(server)
    fuzzer = Fuzzer(server)
    schema = schemathesis.openapi.from_url(f"{server.url}/yolo/openapi.json", headers=fuzzer.auth)
    # a body over its documented limit is refused with 413 (before it is read)
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    started = time.monotonic()
    for operation in operations:
        fuzzer.run(operation, GenerationMode.POSITIVE)
        # the token is fixed, so an operation without parameters or body has nothing to break
        if any(len(part) for part in (operation.path_parameters, operation.query, operation.body)):
            fuzzer.run(operation, GenerationMode.NEGATIVE)
    elapsed = time.monotonic() - started

    statuses, failures = fuzzer.statuses, fuzzer.failures
    total = sum(statuses.values())
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    summary = (
        f"\nAPI fuzz: {total} cases on {len(operations)} operations in {elapsed:.1f} s; "
        f"{server_errors} 5xx; statuses {dict(sorted(statuses.items()))}; "
        f"{len(failures)} operation(s) with spec violations"
    )
    with capsys.disabled():
        print(summary)
        for label, message in failures.items():
            print(f"\n--- {label}\n{message}")
    _nothing_to_run(server, frozenset(fuzzer.created))
    assert server_errors == 0, summary
    assert not failures, summary + "\n" + json.dumps(failures, indent=1)


def test_every_operation_refuses_a_request_without_the_token(server: ServerProcess) -> None:
    """Each documented operation answers 403 with the error shape when the token is missing."""
    spec = server.request("GET", "/yolo/openapi.json")
    samples = {"{job_id}": "0123456789ab", "{name}": "quickstart", "{path}": "a.txt"}
    for template, operations in spec["paths"].items():
        path = template
        for placeholder, value in samples.items():
            path = path.replace(placeholder, value)
        for method in operations:
            response = requests.request(method.upper(), server.url + path, timeout=30)
            assert response.status_code == 403, (method, path)
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            assert body["message"] and isinstance(body["reason"], str), (method, path, body)
