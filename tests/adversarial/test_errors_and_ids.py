"""Errors that mean the model, and response headers a caller cannot break or bloat."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from flask import Flask
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.integrations.asgi import MetricsMiddleware
from modelmon.integrations.flask import instrument as instrument_flask

LABELS = {"model": "m", "version": "1"}


def _errors(reg: CollectorRegistry) -> float:
    total = 0.0
    for metric in reg.collect():
        for s in metric.samples:
            if s.name == "modelmon_request_errors_total" and s.labels.get("model") == "m":
                total += s.value
    return total


def _aborted(reg: CollectorRegistry, reason: str) -> float | None:
    return reg.get_sample_value("modelmon_requests_aborted_total", {**LABELS, "reason": reason})


def _fastapi_app(reg: CollectorRegistry) -> FastAPI:
    mon = modelmon.Monitor("m", "1", registry=reg)

    @mon
    def predict(row: dict[str, float]) -> float:
        if "x" not in row:
            raise KeyError("x")  # the client's input is wrong
        if row["x"] < 0:
            raise RuntimeError("model broke")  # the model's own failure
        return row["x"] * 2

    app = FastAPI()

    @app.post("/predict")
    def endpoint(row: dict[str, float]) -> dict[str, float]:
        try:
            return {"y": predict(row)}
        except KeyError as exc:
            raise HTTPException(status_code=400, detail="missing x") from exc

    app.add_middleware(MetricsMiddleware, registry=reg)
    return app


def test_client_4xx_errors_are_not_model_errors_asgi() -> None:
    reg = CollectorRegistry()
    client = TestClient(_fastapi_app(reg), raise_server_exceptions=False)
    for _ in range(5):
        assert client.post("/predict", json={"y": 1.0}).status_code == 400
    assert client.post("/predict", json={"x": 1.0}).status_code == 200
    assert client.post("/predict", json={"x": -1.0}).status_code == 500
    assert _errors(reg) == 1  # only the model's own failure pages anyone
    assert _aborted(reg, "client_error") == 5
    assert reg.get_sample_value("modelmon_requests_total", LABELS) == 7


def test_client_4xx_errors_are_not_model_errors_wsgi() -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)

    @mon
    def predict(x: float) -> float:
        if x > 100:
            raise ValueError("out of range")
        return x

    app = Flask("t")

    @app.post("/predict")
    def endpoint() -> tuple[str, int]:
        from flask import request

        try:
            return str(predict(float(request.json["x"]))), 200  # type: ignore[index]
        except ValueError:
            return "bad input", 422

    instrument_flask(app, registry=reg, metrics_path=None)
    client = app.test_client()
    assert client.post("/predict", json={"x": 1000}).status_code == 422
    assert client.post("/predict", json={"x": 1}).status_code == 200
    assert _errors(reg) == 0
    assert _aborted(reg, "client_error") == 1


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupts_are_cancellations_not_model_errors(exc: type[BaseException]) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)

    @mon
    def predict(x: float) -> float:
        raise exc()

    with pytest.raises(exc):
        predict(1.0)
    assert _errors(reg) == 0
    assert _aborted(reg, "cancelled") == 1


def test_cancelled_coroutines_are_not_model_errors() -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)

    @mon
    async def predict(x: float) -> float:
        await asyncio.sleep(10)
        return x

    async def main() -> None:
        tasks = [asyncio.ensure_future(predict(float(i))) for i in range(20)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert _errors(reg) == 0
    assert _aborted(reg, "cancelled") == 20


def _id_app(reg: CollectorRegistry, ids: list[str]) -> FastAPI:
    mon = modelmon.Monitor("m", "1", registry=reg)
    app = FastAPI()

    @app.post("/predict")
    def endpoint() -> dict[str, int]:
        for i in ids:
            mon.observe({"x": 1.0}, 0.5, prediction_id=i)
        return {"n": len(ids)}

    app.add_middleware(MetricsMiddleware, registry=reg)
    return app


@pytest.mark.parametrize("bad", ["caf\u00e9-\u4e2d", "id\r\nSet-Cookie: pwned=1", "x" * 10_000])
def test_caller_ids_never_break_the_response(bad: str) -> None:
    reg = CollectorRegistry()
    client = TestClient(_id_app(reg, ["good-1", bad]), raise_server_exceptions=False)
    r = client.post("/predict")
    assert r.status_code == 200
    assert r.headers["x-prediction-id"] == "good-1"
    assert "set-cookie" not in r.headers


def test_many_ids_make_a_bounded_header() -> None:
    reg = CollectorRegistry()
    ids = [f"call-{i:06d}" for i in range(5000)]
    client = TestClient(_id_app(reg, ids))
    r = client.post("/predict")
    assert r.status_code == 200
    assert r.headers["x-prediction-id"] == "call-000000..call-004999"
    assert r.headers["x-prediction-count"] == "5000"
    assert sum(len(k) + len(v) for k, v in r.headers.items()) < 1024
