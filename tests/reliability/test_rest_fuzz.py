"""Schemathesis over every operation of /openapi.json, on the live server over real HTTP, counted.

``tests/backend/test_fuzz_api.py`` checks the documented statuses and schemas in process; this
run goes over loopback sockets (werkzeug, as the devices see it) and adds schemathesis's
negative mode (bodies, parameters and headers that break the schema), and counts each input.
Checked for every answer: no 5xx (the only documented one, 503, needs a database or signing
key outage, neither of which is set up here).
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from ..sync.conftest import ADMIN, Backend
from ..sync.test_model_updates import release
from .conftest import Figures

EXAMPLES = 15  # per operation and mode


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_live_server_answer_5xx(
    mode: GenerationMode, backend: Backend, figures: Figures
) -> None:
    release(backend, 2)
    schema = schemathesis.openapi.from_url(f"{backend.url}/openapi.json")
    statuses: Counter[int] = Counter()

    def device() -> dict[str, str]:
        with httpx.Client(base_url=backend.url) as client:
            token = client.post("/v1/devices").json()["token"]
        return {"Authorization": f"Bearer {token}"}

    shared = device()
    tried = 0
    errors: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema was readable
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Case) -> None:
            nonlocal tried
            tried += 1
            if case.path.startswith("/v1/admin/") or case.path == "/dashboard":
                headers = ADMIN
            elif case.method.upper() == "DELETE":
                headers = device()  # erasing the shared device would end its fuzzing
            else:
                headers = shared
            # Negative cases may break the credentials too: keep what the case generated.
            response = case.call(
                base_url=backend.url, headers={**headers, **dict(case.headers or {})}
            )
            statuses[response.status_code] += 1
            if response.status_code >= 500:  # counted for the report, asserted at the end
                errors.append(f"{case.method} {case.path}: {response.text[:300]}")

        try:
            fuzz()
        except Unsatisfiable:  # e.g. GET /healthz: nothing in it can break its schema
            assert mode is GenerationMode.NEGATIVE
    figures.add("rest_fuzz", "rest_inputs_tried", tried)
    figures.add("rest_fuzz", "server_errors", len(errors))
    assert errors == []
    assert tried >= EXAMPLES
    assert len(statuses) > 3, statuses  # the inputs reached more than one kind of answer
