"""ASGI middleware and FastAPI integration, on tiny real apps (TestClient, no mocks)."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.websockets import WebSocket

import modelmon
from modelmon import names
from modelmon.errors import ConfigurationError, MissingExtraError
from modelmon.integrations import HttpMetrics, http_metrics_for
from modelmon.integrations.asgi import MetricsMiddleware
from modelmon.integrations.fastapi import feedback_router, instrument

from ..conftest import scrape
from ._http_samples import DURATION, REQUESTS, requests_of, routes_of

REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="")
ENDPOINT_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("endpoint_var", default="")


class ContextProbe:
    """Outer pure ASGI wrapper: sets a context variable, reads what the endpoint set."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = REQUEST_VAR.set("outer-value")
        try:
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                self.seen.append(ENDPOINT_VAR.get())
        finally:
            REQUEST_VAR.reset(token)


def build_app(registry: CollectorRegistry) -> tuple[FastAPI, Any, Any]:
    @modelmon.monitored(model="m", version="1", registry=registry, task="classification")
    def predict(x: Any) -> Any:
        return np.ones(len(x), dtype=int) if isinstance(x, np.ndarray) else 1

    @modelmon.monitored(model="am", version="1", registry=registry, task="classification")
    async def apredict(x: Any) -> int:
        return 0

    started = threading.Event()

    @contextlib_lifespan
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.set()
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.started = started

    @app.get("/predict/{model_id}")
    def sync_predict(model_id: str) -> dict[str, Any]:
        predict({"a": 1.0})
        return {"id": modelmon.last_prediction_id(), "thread": threading.get_ident()}

    @app.post("/apredict")
    async def async_predict() -> dict[str, Any]:
        await apredict({"a": 1.0})
        first = modelmon.last_prediction_id()
        await apredict({"a": 2.0})
        return {"ids": [first, modelmon.last_prediction_id()]}

    @app.get("/batch")
    def batch_predict() -> dict[str, Any]:
        predict(np.zeros((3, 2)))
        return {"id": modelmon.last_prediction_id(), "rows": modelmon.last_prediction_ids()}

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("model exploded")

    @app.get("/stream")
    def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i}\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/ctx")
    async def ctx() -> dict[str, str]:
        ENDPOINT_VAR.set("set-in-endpoint")
        return {"outer": REQUEST_VAR.get()}

    @app.get("/ctx-sync")
    def ctx_sync() -> dict[str, str]:
        return {"outer": REQUEST_VAR.get()}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello " + await websocket.receive_text())
        await websocket.close()

    items = APIRouter(prefix="/api")

    @items.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.include_router(items)
    sub = FastAPI()

    @sub.get("/x/{y}")
    def sub_x(y: str) -> dict[str, str]:
        return {"y": y}

    app.mount("/sub/{tenant}", sub)
    app.mount("/raw", PlainTextResponse("raw app"))
    app.include_router(feedback_router(predict))
    instrument(app, registry=registry)
    return app, predict, apredict


def contextlib_lifespan(fn: Any) -> Any:
    import contextlib

    return contextlib.asynccontextmanager(fn)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def app_and_models(registry: CollectorRegistry) -> tuple[FastAPI, Any, Any]:
    return build_app(registry)


@pytest.fixture
def client(app_and_models: tuple[FastAPI, Any, Any]) -> Iterator[TestClient]:
    with TestClient(app_and_models[0], raise_server_exceptions=False) as c:
        yield c


# --- a minimal in-process ASGI driver (no network, no TestClient) ------------------------


async def call(app: Any, path: str, method: str = "GET") -> tuple[int, list[Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], sent


# --- routes -------------------------------------------------------------------------------


def test_route_templates_label_requests(client: TestClient, registry: CollectorRegistry) -> None:
    for path in ("/predict/a", "/predict/b", "/predict/c"):
        assert client.get(path).status_code == 200
    assert client.get("/api/items/7").status_code == 200
    assert client.get("/api/items/not-an-int").status_code == 422
    assert client.get("/sub/acme/x/1").status_code == 200
    assert client.get("/raw/anything/here").text == "raw app"
    assert client.get("/nowhere").status_code == 404
    assert client.post("/predict/a").status_code == 405

    s = scrape(registry)
    assert requests_of(s, method="GET", route="/predict/{model_id}", status="200") == 3
    assert requests_of(s, route="/api/items/{item_id}", status="200") == 1
    assert requests_of(s, route="/api/items/{item_id}", status="422") == 1
    assert requests_of(s, route="/sub/{tenant}/x/{y}", status="200") == 1
    assert requests_of(s, route="/raw/{path}", status="200") == 1
    assert requests_of(s, route=names.UNMATCHED_ROUTE, status="404") == 1
    assert requests_of(s, method="POST", route="/predict/{model_id}", status="405") == 1
    labels = (("method", "GET"), ("route", "/predict/{model_id}"))
    assert s[(DURATION + "_count", labels)] == 3
    assert s[(DURATION + "_bucket", (("le", "+Inf"), *labels))] == 3


def test_random_unmatched_paths_add_no_series(
    app_and_models: tuple[FastAPI, Any, Any], registry: CollectorRegistry
) -> None:
    rng = np.random.default_rng(7)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789-_."))

    def random_path() -> str:
        depth = int(rng.integers(1, 5))
        parts = ("".join(rng.choice(alphabet, int(rng.integers(1, 12)))) for _ in range(depth))
        return "/zz" + "/".join(parts)

    paths = [random_path() for _ in range(10_000)]

    async def scan() -> list[int]:
        return [(await call(app_and_models[0], p))[0] for p in paths]

    assert set(asyncio.run(scan())) == {404}
    s = scrape(registry)
    assert routes_of(s) == {names.UNMATCHED_ROUTE}
    assert requests_of(s) == 10_000
    http_series = [k for k in s if k[0].startswith("modelmon_http_")]
    assert len(http_series) == 1 + len(names.DURATION_BUCKETS) + 1 + 2  # counter + histogram


def test_methods_outside_the_standard_set_are_other(registry: CollectorRegistry) -> None:
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("x")(scope, receive, send)

    app = MetricsMiddleware(ok, registry=registry)
    for method in ("GET", "get", "BREW", "PROPFIND", "PATCH"):
        asyncio.run(call(app, "/", method))
    s = scrape(registry)
    assert requests_of(s, method="GET") == 2
    assert requests_of(s, method="PATCH") == 1
    assert requests_of(s, method="other") == 2


# --- failures and timing --------------------------------------------------------------------


def test_exceptions_count_as_500(client: TestClient, registry: CollectorRegistry) -> None:
    assert client.get("/boom").status_code == 500
    assert requests_of(scrape(registry), route="/boom", status="500") == 1


def test_exceptions_are_reraised(registry: CollectorRegistry) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("inner")

    app = MetricsMiddleware(failing, registry=registry)
    with pytest.raises(KeyError, match="inner"):
        asyncio.run(call(app, "/anything"))
    assert requests_of(scrape(registry), route=names.UNMATCHED_ROUTE, status="500") == 1

    starlette_app, _, _ = build_app(CollectorRegistry())
    with TestClient(starlette_app) as strict, pytest.raises(RuntimeError, match="exploded"):
        strict.get("/boom")


def test_streaming_is_timed_to_the_last_byte(
    client: TestClient, registry: CollectorRegistry
) -> None:
    response = client.get("/stream")
    assert response.text == "chunk0\nchunk1\nchunk2\n"
    labels = (("method", "GET"), ("route", "/stream"))
    s = scrape(registry)
    assert s[(DURATION + "_count", labels)] == 1
    # Three chunks with 0.05 s sleeps after each: the last byte leaves after >= 0.1 s.
    assert s[(DURATION + "_sum", labels)] >= 0.1
    assert s[(DURATION + "_bucket", (("le", "0.1"), *labels))] == 0


def test_headers_of_the_response_object_are_not_mutated(registry: CollectorRegistry) -> None:
    shared = PlainTextResponse("same object every time")

    @modelmon.monitored(model="h", version="1", registry=registry)
    def predict(x: Any) -> float:
        return 0.5

    async def app(scope: Any, receive: Any, send: Any) -> None:
        predict({"a": 1.0})
        await shared(scope, receive, send)

    wrapped = MetricsMiddleware(app, registry=registry)
    first = asyncio.run(call(wrapped, "/"))[1][0]["headers"]
    second = asyncio.run(call(wrapped, "/"))[1][0]["headers"]
    assert sum(k == b"x-prediction-id" for k, _ in first) == 1
    assert sum(k == b"x-prediction-id" for k, _ in second) == 1
    assert all(k != b"x-prediction-id" for k, _ in shared.raw_headers)


# --- pass-through and exclusions ---------------------------------------------------------


def test_websocket_and_lifespan_pass_through(
    app_and_models: tuple[FastAPI, Any, Any], registry: CollectorRegistry
) -> None:
    app = app_and_models[0]
    with TestClient(app) as c:
        assert app.state.started.is_set()  # lifespan reached the app through the middleware
        with c.websocket_connect("/ws") as ws:
            ws.send_text("there")
            assert ws.receive_text() == "hello there"
    assert requests_of(scrape(registry)) == 0


def test_metrics_path_is_excluded_and_negotiates_openmetrics(
    client: TestClient, registry: CollectorRegistry
) -> None:
    client.get("/plain")
    for _ in range(3):
        text = client.get("/metrics").text
    assert 'route="/plain"' in text
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    only = client.get("/metrics", params={"name[]": REQUESTS}).text
    assert REQUESTS in only and DURATION not in only
    assert routes_of(scrape(registry)) == {"/plain"}


def test_excluded_routes_by_template(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/health/{probe}")
    def health(probe: str) -> str:
        return probe

    @app.get("/kept")
    def kept() -> str:
        return "kept"

    instrument(app, registry=registry, excluded_routes=["/health/{probe}"])
    with TestClient(app) as c:
        c.get("/health/live")
        c.get("/kept")
        c.get("/metrics")  # explicit exclusions replace the default
    assert routes_of(scrape(registry)) == {"/kept", "/metrics"}


def test_a_misspelt_option_fails_at_instrument_not_at_app_start(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    with pytest.raises(ConfigurationError, match=r"'namespce'.*namespace"):
        instrument(app, registry=registry, namespce="svc")  # type: ignore[call-arg]
    assert not app.user_middleware  # nothing half-installed


# --- prediction ids and context variables ------------------------------------------------


def test_prediction_id_header_from_sync_endpoint(client: TestClient) -> None:
    response = client.get("/predict/x")
    body = response.json()
    assert body["thread"] != threading.get_ident()  # ran in the thread pool
    assert response.headers["X-Prediction-Id"] == body["id"]
    assert client.get("/plain").headers.get("X-Prediction-Id") is None


def test_prediction_id_header_from_async_endpoint(client: TestClient) -> None:
    response = client.post("/apredict")
    first, second = response.json()["ids"]
    assert first != second
    assert response.headers["X-Prediction-Id"] == f"{first},{second}"


def test_prediction_id_header_of_a_batch_is_the_call_id(client: TestClient) -> None:
    response = client.get("/batch")
    body = response.json()
    assert len(body["rows"]) == 3 and len(set(body["rows"])) == 3
    assert body["id"] not in body["rows"]  # the call's id names the batch, not a row
    assert response.headers["X-Prediction-Id"] == body["id"]


def test_context_variables_cross_the_middleware(registry: CollectorRegistry) -> None:
    app, _, _ = build_app(registry)
    probe = ContextProbe(app)
    with TestClient(probe) as c:
        assert c.get("/ctx").json() == {"outer": "outer-value"}
        assert c.get("/ctx-sync").json() == {"outer": "outer-value"}
    # The async endpoint ran in the request's own task: what it set is seen outside.
    assert probe.seen == ["set-in-endpoint", ""]


# --- feedback -----------------------------------------------------------------------------


def test_feedback_router_records_outcomes(
    client: TestClient, app_and_models: tuple[FastAPI, Any, Any], registry: CollectorRegistry
) -> None:
    ids = [client.get(f"/predict/{i}").json()["id"] for i in range(3)]
    one = client.post("/feedback", json={"prediction_id": ids[0], "actual": 1})
    assert one.status_code == 202 and one.json() == {"accepted": 1}
    many = client.post(
        "/feedback",
        json=[{"prediction_id": ids[1], "actual": 0}, {"prediction_id": ids[2], "actual": 1}],
    )
    assert many.status_code == 202 and many.json()["accepted"] == 2
    assert [r["status"] for r in many.json()["results"]] == ["matched", "matched"]
    assert client.post("/feedback", json={"actual": 1}).status_code == 422
    s = scrape(registry)
    base = (("model", "m"), ("version", "1"))

    def outcomes(actual: str, predicted: str) -> float:
        key = tuple(sorted((*base, ("actual", actual), ("predicted", predicted))))
        return s[("modelmon_outcomes_total", key)]

    assert outcomes("1", "1") == 2
    assert outcomes("0", "1") == 1
    assert requests_of(s, method="POST", route="/feedback", status="202") == 2


# --- the aggregate --------------------------------------------------------------------------

series = st.tuples(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["/a", "/b/{x}", names.UNMATCHED_ROUTE]),
    st.sampled_from(["200", "404", "500"]),
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(series, max_size=60), st.lists(series, max_size=60))
def test_merge_equals_recording_everything_in_one(
    left: list[tuple[str, str, str, float]], right: list[tuple[str, str, str, float]]
) -> None:
    a, b, both = HttpMetrics(), HttpMetrics(), HttpMetrics()
    for target, items in ((a, left), (b, right), (both, left + right)):
        for item in items:
            target.record(*item)
    restored = HttpMetrics()
    restored.load_state(a.state())
    restored.merge(b)
    assert _as_dict(restored) == _as_dict(both)
    assert _exact(restored) == _exact_from(left + right)


def _as_dict(m: HttpMetrics) -> dict[Any, Any]:
    requests, durations = m.collect()
    out: dict[Any, Any] = {tuple(p.labels.items()): p.value for p in requests.points}
    for p in durations.points:
        out[tuple(p.labels.items())] = (p.counts, round(p.sum, 6))  # type: ignore[union-attr]
    return out


def _exact(m: HttpMetrics) -> dict[Any, Any]:
    out = {}
    for p in m.collect()[1].points:
        out[tuple(p.labels.values())] = p.counts  # type: ignore[union-attr]
    return out


def _exact_from(items: list[tuple[str, str, str, float]]) -> dict[Any, Any]:
    bounds = np.array(names.DURATION_BUCKETS)
    out = {}
    for key in {(m, r) for m, r, _, _ in items}:
        values = np.array([s for m, r, _, s in items if (m, r) == key])
        # le semantics: a value's bucket is the number of bounds strictly below it.
        bucket = (values[:, None] > bounds[None, :]).sum(axis=1)
        counts = np.bincount(bucket, minlength=len(bounds) + 1)
        out[key] = tuple(int(c) for c in counts)
    return out


def test_threads_count_exactly() -> None:
    m = HttpMetrics()
    n_threads, per_thread = 8, 5_000

    def work(k: int) -> None:
        for i in range(per_thread):
            m.record("GET", f"/r{k % 2}", "200", 0.001 * (i % 7))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests, durations = m.collect()
    assert sorted(p.value for p in requests.points) == [20_000, 20_000]
    assert [p.count for p in durations.points] == [20_000, 20_000]  # type: ignore[union-attr]


def test_merge_refuses_other_buckets() -> None:
    a, b = HttpMetrics(), HttpMetrics(buckets=(0.1, 1.0))
    b.record("GET", "/", "200", 0.5)
    with pytest.raises(ValueError, match="buckets"):
        a.merge(b)


def test_state_is_plain_types_and_arrays() -> None:
    m = HttpMetrics()
    m.record("GET", "/a", "200", 0.2)
    state = m.state()
    assert state["series"] == [["GET", "/a", "200"]]
    assert state["routes"] == [["GET", "/a"]]
    assert state["counts"].tolist() == [1]
    assert state["buckets"].shape == (1, len(names.DURATION_BUCKETS) + 1)
    assert state["sums"].tolist() == [0.2]
    m.record("GET", "/a", "500", 0.1)
    assert m.recorded == 2
    m.reset()
    assert m.recorded == 0 and m.state()["series"] == []


def test_one_metrics_object_per_registry_and_namespace(registry: CollectorRegistry) -> None:
    assert http_metrics_for(registry) is http_metrics_for(registry)
    assert http_metrics_for(registry, "other") is not http_metrics_for(registry)
    assert http_metrics_for(False) is not http_metrics_for(False)
    with pytest.raises(ValueError, match="buckets"):
        http_metrics_for(registry, buckets=(1.0, 2.0))
    with pytest.raises(ValueError, match="namespace"):
        HttpMetrics("bad-namespace")


def test_missing_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "modelmon.integrations.fastapi")
    with pytest.raises(MissingExtraError, match=r"modelmon\[fastapi\]") as info:
        importlib.import_module("modelmon.integrations.fastapi")
    assert info.value.extra == "fastapi"
