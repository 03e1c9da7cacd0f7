"""Authenticated prediction ids: what they carry, and that only intact ids of our key score."""

from __future__ import annotations

import base64
import string
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

import modelmon
from modelmon import Monitor
from modelmon._internal.ids import IdCodec, PredictionKey, fingerprint, resolve_key
from modelmon.errors import ConfigurationError

KEY = "k" * 32
URL_SAFE = set(string.ascii_letters + string.digits + "-_")
CODEC = IdCodec(KEY.encode(), fingerprint(("modelmon", "m", "1"), None))


def test_every_kind_fits_in_64_url_safe_characters_and_round_trips() -> None:
    key = PredictionKey(0xFFFFFFFF, 2**32 - 1, 2**32 - 1)
    tokens = {
        "call": CODEC.mint(key, 1.7e9, n_rows=5),
        "class": CODEC.mint(key, 1.7e9, code=3),
        "binary": CODEC.mint(key, 1.7e9, code=1, proba=0.8125),
        "value": CODEC.mint(key, 1.7e9, value=-3.25),
        "local": CODEC.mint(key, 1.7e9, code=7, local=True),
    }
    for token in tokens.values():
        assert token.startswith("~") and len(token) <= 64
        assert set(token[1:]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
    assert CODEC.verify(tokens["call"]).n_rows == 5
    assert CODEC.verify(tokens["class"]).code == 3
    binary = CODEC.verify(tokens["binary"])
    assert (binary.code, binary.proba) == (1, 0.8125)
    assert CODEC.verify(tokens["value"]).value == -3.25
    decoded = CODEC.verify(tokens["local"])
    assert decoded.key == key and decoded.predicted_at == 1.7e9


def test_bit_flips_other_key_truncation_and_other_model_are_refused() -> None:
    token = CODEC.mint(PredictionKey(1, 2, 0), 1.7e9, code=1, proba=0.25)
    raw = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4))
    for byte in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[byte] ^= 1 << bit
            forged = "~" + base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
            assert CODEC.verify(forged).reason == "invalid_id", (byte, bit)
    for cut in range(1, len(token)):
        assert CODEC.verify(token[:cut]).reason == "invalid_id"
    other_key = IdCodec(b"x" * 32, fingerprint(("modelmon", "m", "1"), None))
    assert other_key.verify(token).reason == "invalid_id"
    other_model = IdCodec(KEY.encode(), fingerprint(("modelmon", "m", "2"), None))
    assert other_model.verify(token).reason == "other_model"
    assert CODEC.verify(token + "A").reason == "invalid_id"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=90), st.text(alphabet="~ABCxyz019-_=.", max_size=90)))
def test_the_parser_never_raises_and_never_accepts_garbage(text: str) -> None:
    assert CODEC.verify(text).reason is not None
    mon = _monitor("garbage")
    assert mon.record_outcome(text, 1) in {"invalid_id", "unknown", "invalid"}
    mon.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=60))
def test_random_bytes_after_the_mark_never_verify(data: bytes) -> None:
    token = "~" + base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert CODEC.verify(token).reason == "invalid_id"


def test_short_keys_are_a_configuration_error(monkeypatch: Any) -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        resolve_key("short")
    monkeypatch.setenv("MODELMON_ID_KEY", "tiny")
    with pytest.raises(ConfigurationError, match="MODELMON_ID_KEY"):
        Monitor("m", "1", registry=False)


def _monitor(model: str, **options: Any) -> Monitor:
    return Monitor(model, "1", registry=False, id_key=KEY, strict=False, **options)


def test_another_process_with_the_key_scores_classification_like_sklearn() -> None:
    """Two monitors stand for two replicas: one predicts, the other scores the labels."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(X[::2], y[::2])
    serving = _monitor("iris")
    scoring = _monitor("iris")
    predict = serving.wrap(lambda rows: model.predict(rows))
    ids: list[str] = []
    predicted: list[int] = []
    for start in range(0, 150, 10):
        predicted += predict(X[start : start + 10]).tolist()
        ids += modelmon.last_prediction_ids()
    assert scoring.record_outcomes(ids, y.tolist()) == ["matched"] * 150
    perf = scoring.outcomes.performance(time.time())
    assert perf["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert perf["f1"] == pytest.approx(f1_score(y, predicted, average="macro"), abs=1e-12)
    assert scoring.record_outcomes(ids[:3], y[:3].tolist()) == ["duplicate"] * 3
    serving.close()
    scoring.close()


def test_another_process_scores_regression_binary_losses_and_delay() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    serving, scoring = _monitor("diabetes"), _monitor("diabetes")
    predict = serving.wrap(lambda rows: model.predict(rows))
    predicted = predict(X[:60])
    ids = modelmon.last_prediction_ids()
    assert scoring.record_outcomes(ids, y[:60].tolist()) == ["matched"] * 60
    out = scoring.outcomes
    assert out.regression_count == 60
    assert out.regression_squared / 60 == pytest.approx(mean_squared_error(y[:60], predicted))
    assert out.regression_absolute / 60 == pytest.approx(mean_absolute_error(y[:60], predicted))
    assert out.delay.counts.sum() == 60
    serving.close()
    scoring.close()


def test_without_the_same_key_another_process_refuses_with_invalid_id() -> None:
    serving = Monitor("nokey", "1", registry=False, id_key="a" * 32)
    other = Monitor("nokey", "1", registry=False, id_key="b" * 32)
    serving.observe({"x": 1.0}, 1)
    token = modelmon.last_prediction_id()
    assert token is not None
    assert other.record_outcome(token, 1) == "invalid_id"
    assert other.outcomes.unmatched["invalid_id"] == 1
    assert serving.record_outcome(token, 1) == "matched"


def test_expired_ids_are_refused_by_their_own_time() -> None:
    mon = _monitor("ttl", outcome_ttl_seconds=60.0)
    token = mon.ids.codec.mint(PredictionKey(mon.ids.prefix, 1, 0), 1000.0, value=1.0)
    assert mon.outcomes.record_detailed([token], [1.0], now=1061.0) == ["expired"]
    assert mon.outcomes.record_detailed([token], [1.0], now=1059.0) == ["matched"]


def test_string_classes_travel_when_configured_and_stay_local_otherwise() -> None:
    configured = [_monitor("s", classes=["cat", "dog"]), _monitor("s", classes=["cat", "dog"])]
    configured[0].observe({"x": 1.0}, "dog")
    token = modelmon.last_prediction_id()
    assert configured[1].record_outcome(token, "dog") == "matched"  # type: ignore[arg-type]
    local = [_monitor("t"), _monitor("t")]
    local[0].observe({"x": 1.0}, "dog")
    token = modelmon.last_prediction_id()
    assert local[1].record_outcome(token, "dog") == "unknown"  # type: ignore[arg-type]
    assert local[0].record_outcome(token, "dog") == "matched"  # type: ignore[arg-type]


def test_multiclass_log_loss_is_scored_where_the_probabilities_were_kept() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(X, y)
    mon = _monitor("proba")
    predict = mon.wrap(lambda rows: model.predict_proba(rows))
    proba = predict(X[:30])
    ids = modelmon.last_prediction_ids()
    mon.fold()
    assert mon.record_outcomes(ids, [str(v) for v in y[:30]]) == ["matched"] * 30
    slot = next(iter(mon.outcomes.window.values()))
    from sklearn.metrics import log_loss

    assert slot.proba_n == 30
    assert slot.log_loss / 30 == pytest.approx(log_loss(y[:30], proba, labels=[0, 1, 2]))
    assert np.isfinite(slot.brier)


@pytest.mark.parametrize(
    ("task", "output", "actual", "cell"),
    [
        ("classification", 1.0, 1, ("1", "1")),
        ("classification", True, 0, ("0", "1")),
        ("classification", "dog", "dog", ("dog", "dog")),
        (None, 3, 3, ("3", "3")),
    ],
)
def test_scalar_outputs_label_like_batches(task: Any, output: Any, actual: Any, cell: Any) -> None:
    serving, scoring = _monitor("scalar", task=task), _monitor("scalar", task=task)
    serving.observe({"x": 1.0}, output)
    token = modelmon.last_prediction_id()
    assert token is not None
    where = scoring if not isinstance(output, str) else serving  # string labels: local
    assert where.record_outcome(token, actual) == "matched"
    assert dict(where.outcomes.confusion) == {cell: 1}


def test_regression_scalar_and_float_class_outputs() -> None:
    serving, scoring = _monitor("reg", task="regression"), _monitor("reg", task="regression")
    serving.observe({"x": 1.0}, 2)  # an int predicted value
    token = modelmon.last_prediction_id()
    assert scoring.record_outcome(token, 3.5) == "matched"  # type: ignore[arg-type]
    assert scoring.outcomes.regression_absolute == 1.5


def test_the_reference_profile_fixes_the_class_set() -> None:
    from modelmon import ReferenceProfile

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 2))
    labels = np.where(X[:, 0] > 0, "cat", "dog")
    profile = ReferenceProfile.from_data(X, feature_names=["a", "b"], predictions=labels)
    serving = _monitor("ref", reference=profile)
    scoring = _monitor("ref", reference=profile)
    serving.observe({"a": 1.0, "b": 0.0}, "cat")
    token = modelmon.last_prediction_id()
    assert token is not None
    assert scoring.record_outcome(token, "parrot") == "invalid"  # not a class of the model
    assert scoring.record_outcome(token, "dog") == "matched"  # string classes travel
    assert dict(scoring.outcomes.confusion) == {("dog", "cat"): 1}


@pytest.mark.parametrize("key", [b"k" * 16, b"z" * 64, b"q" * 100])
def test_the_tag_is_hmac_sha256(key: bytes) -> None:
    import hashlib
    import hmac

    codec = IdCodec(key, b"abcd")
    for body in (b"", b"x" * 37, b"y" * 200):
        assert codec._tag(body) == hmac.new(key, body, hashlib.sha256).digest()[:12]


def _predict_in_child(mon: Monitor, conn: Any) -> None:
    mon.observe({"x": 1.0}, 1)
    conn.send(modelmon.last_prediction_id())


def _score_in_child(mon: Monitor, token: str, conn: Any) -> None:
    conn.send(mon.record_outcome(token, 1))


def test_without_a_key_workers_forked_after_import_still_join() -> None:
    """Like gunicorn --preload: the process key is inherited by every forked worker."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    mon = Monitor("forked", "1", registry=False)
    parent, child = ctx.Pipe()
    worker = ctx.Process(target=_predict_in_child, args=(mon, child))
    worker.start()
    token = parent.recv()
    worker.join(30)
    other = ctx.Process(target=_score_in_child, args=(mon, token, child))
    other.start()
    assert parent.recv() == "matched"
    other.join(30)
    assert Monitor("forked", "1", registry=False, id_key=KEY).record_outcome(token, 1) == (
        "invalid_id"  # a process with another key (here: the configured one) refuses it
    )
