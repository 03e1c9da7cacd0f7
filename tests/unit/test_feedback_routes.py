"""The feedback routes: per-label answers, per-item results, and the optional guards."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

import modelmon
from modelmon import Monitor
from modelmon.errors import ConfigurationError
from modelmon.integrations._http import handle_feedback
from modelmon.integrations.fastapi import feedback_router
from modelmon.integrations.flask import feedback_blueprint

TOKEN = "t0ken-0123456789abcdef"


def _predictions(mon: Monitor, n: int) -> list[str]:
    ids = []
    for i in range(n):
        mon.observe({"x": float(i)}, i % 2)
        ids.append(modelmon.last_prediction_id())
    return [i for i in ids if i is not None]


def _json(response: Any) -> Any:
    """The JSON body of a Starlette or a Werkzeug test response."""
    return response.get_json() if hasattr(response, "get_json") else response.json()


def _fastapi(mon: Monitor, **options: Any) -> TestClient:
    app = FastAPI()
    app.include_router(feedback_router(mon, **options))
    return TestClient(app)


def _flask(mon: Monitor, **options: Any) -> Any:
    app = Flask("fb")
    app.register_blueprint(feedback_blueprint(mon, **options))
    return app.test_client()


@pytest.mark.parametrize("make", [_fastapi, _flask])
def test_each_label_gets_its_own_answer(make: Any) -> None:
    mon = Monitor("fb", "1", registry=False, id_key="k" * 32)
    client = make(mon)
    ids = _predictions(mon, 4)
    ok = client.post("/feedback", json={"prediction_id": ids[0], "actual": 0})
    assert (ok.status_code, _json(ok)) == (202, {"accepted": 1})
    again = client.post("/feedback", json={"prediction_id": ids[0], "actual": 0})
    assert (again.status_code, _json(again)["error"]) == (409, "duplicate")
    forged = ids[1][:-2] + ("AA" if ids[1][-2:] != "AA" else "BB")
    bad = client.post("/feedback", json={"prediction_id": forged, "actual": 1})
    assert bad.status_code == 422
    mixed = client.post(
        "/feedback",
        json=[
            {"prediction_id": ids[1], "actual": 1},
            {"prediction_id": forged, "actual": 1},
            {"prediction_id": ids[2], "actual": "not-a-class"},
            {"prediction_id": "never-issued", "actual": 1},
        ],
    )
    body = _json(mixed)
    assert mixed.status_code == 207 and body["accepted"] == 1
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["matched", "invalid_id", "invalid", "unknown"]
    assert all("detail" in r for r in body["results"][1:])
    none = client.post("/feedback", json=[{"prediction_id": forged, "actual": 1}])
    assert none.status_code == 422
    assert client.post("/feedback", json={"actual": 1}).status_code == 422
    assert mon.outcomes.unmatched["invalid_id"] == 3


@pytest.mark.parametrize("make", [_fastapi, _flask])
def test_a_token_guards_the_route(make: Any) -> None:
    mon = Monitor("fb", "1", registry=False)
    client = make(mon, token=TOKEN)
    (pid,) = _predictions(mon, 1)
    body = {"prediction_id": pid, "actual": 0}
    assert client.post("/feedback", json=body).status_code == 401
    wrong = {"Authorization": "Bearer x"}
    assert client.post("/feedback", json=body, headers=wrong).status_code == 401
    assert mon.outcomes.labels_received == 0  # refused before any label was looked at
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/feedback", json=body, headers=right).status_code == 202


def test_short_tokens_are_refused_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="16 characters"):
        feedback_router(Monitor("fb", "1", registry=False), token="short")


def test_user_guards_run_before_the_labels() -> None:
    mon = Monitor("fb", "1", registry=False)

    def api_key(request: Request) -> None:
        if request.headers.get("X-Api-Key") != "yes":
            raise HTTPException(403)

    client = _fastapi(mon, dependencies=[Depends(api_key)])
    (pid,) = _predictions(mon, 1)
    body = {"prediction_id": pid, "actual": 0}
    assert client.post("/feedback", json=body).status_code == 403
    assert client.post("/feedback", json=body, headers={"X-Api-Key": "yes"}).status_code == 202

    flask_client = _flask(mon, guard=lambda: ("no", 403))
    assert flask_client.post("/feedback", json=body).status_code == 403
    assert mon.outcomes.labels_received == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"prediction_id": JSON, "actual": JSON}),
        st.lists(st.fixed_dictionaries({"prediction_id": JSON, "actual": JSON}), max_size=5),
    )
)
def test_any_json_body_gets_an_answer_never_an_exception(body: Any) -> None:
    mon = Monitor("fbh", "1", registry=False, strict=True)  # the route never raises
    status, content = handle_feedback(mon, body)
    assert status in {202, 207, 404, 409, 410, 413, 422}
    assert isinstance(content, dict)
