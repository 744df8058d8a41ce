"""Every error body of drcn-serve is one JSON line: a failure nothing foresaw (a backend's RuntimeError) is a 500
whose body carries the id it was logged under; memory running out is 503 (not now), never 413 (never); a
working-memory shortfall of the moment is 503 with Retry-After, a request over the budget 413. The replica's own
handler is called here without Ray (the whole server is exercised in test_serve.py)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

pytest.importorskip("ray")
pytest.importorskip("fastapi")

from starlette.requests import Request  # noqa: E402

from drcn.errors import OverLimit, ShortNow  # noqa: E402
from drcn.runtime.serve import http  # noqa: E402


def request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/upscale", "headers": [], "query_string": b""})


def answer(exc: BaseException) -> tuple[int, dict, dict]:
    async def handler(_request):
        raise exc

    response = asyncio.run(http.answer(request(), handler))
    return response.status_code, json.loads(response.body), dict(response.headers)


def test_an_unexpected_exception_is_a_json_500_with_the_id_it_was_logged_under(caplog):
    with caplog.at_level(logging.ERROR, logger="drcn.serve"):
        status, body, _ = answer(RuntimeError("/opt/models/secret/path.onnx: device lost\nsecond line"))
    assert status == 500 and body["request_id"] and set(body) == {"error", "request_id"}
    assert "RuntimeError: path.onnx: device lost" in body["error"] and "/opt" not in body["error"]
    assert body["request_id"] in caplog.text and "Traceback" in caplog.text


def test_memory_running_out_is_503_not_now():
    status, body, headers = answer(MemoryError())
    assert status == 503 and headers["retry-after"] and body["request_id"]
    status, body, headers = answer(ShortNow("image: needs 3.0 GiB and 1.0 GiB is available now"))
    assert status == 503 and headers["retry-after"] and "available now" in body["error"]
    status, body, headers = answer(OverLimit("image: over the limit"))
    assert status == 413 and "retry-after" not in headers


def test_a_shortfall_of_free_memory_now_is_short_now_and_over_the_budget_is_over_limit(monkeypatch):
    from drcn import limits, memory

    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 30)
    monkeypatch.setattr(memory, "budget", lambda: 64 << 30)
    with pytest.raises(ShortNow, match="available now"):
        limits.check_memory(8000, 8000, "big.png")
    monkeypatch.setattr(memory, "budget", lambda: 1 << 30)
    with pytest.raises(OverLimit, match="memory budget"):
        limits.check_memory(8000, 8000, "big.png")


def test_a_metric_not_wired_to_the_replica_fails_the_scrape():
    """Each gauge and counter reads a value of the replica's state: one left out is an error, not a silent 0."""
    from drcn.runtime.serve.metrics import COUNTERS, GAUGES, ReplicaMetrics

    state = {**{name: 3 for name in GAUGES}, **{name + "_total": 5 for name in COUNTERS}, "batch_sizes": {2: 1},
             "drcn_jobs": {"queued": 2, "done": 7}}
    text = ReplicaMetrics(lambda: state).render().decode()
    assert 'drcn_jobs{replica="' in text and 'state="queued"} 2.0' in text and 'state="done"} 7.0' in text
    for name in GAUGES:
        assert f"{name}{{" in text and text.split(f"{name}{{", 1)[1].split("\n", 1)[0].endswith(" 3.0")
    for name in COUNTERS:
        assert text.split(f"{name}_total{{", 1)[1].split("\n", 1)[0].endswith(" 5.0")
    for left_out in [*GAUGES, *(name + "_total" for name in COUNTERS), "drcn_jobs"]:
        partial = {k: v for k, v in state.items() if k != left_out}
        with pytest.raises(KeyError, match=left_out):
            ReplicaMetrics(lambda partial=partial: partial).render()
