"""modelmon._setup: configuration errors name the argument and the value."""

from __future__ import annotations

import pytest

from modelmon import _setup
from modelmon._internal import registry
from modelmon.errors import ConfigurationError


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _setup.check_label_value("model", " "), "model must be a non-empty string"),
        (lambda: _setup.check_namespace("9bad"), "namespace must match"),
        (lambda: _setup.check_buckets("duration_buckets", [1.0, 0.5]), "strictly increasing"),
        (lambda: _setup.check_buckets("duration_buckets", [0.0]), "positive finite"),
        (lambda: _setup.check_positive_int("buffer_size", 0), "buffer_size must be a positive"),
        (lambda: _setup.load_reference(3), "reference must be a ReferenceProfile"),
        (lambda: _setup.load_reference("/nonexistent/ref.json"), "cannot read reference"),
    ],
)
def test_bad_values_raise_with_a_precise_message(call: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        call()  # type: ignore[operator]


def test_good_values_pass_through() -> None:
    assert _setup.check_buckets("b", [0.1, 1]) == (0.1, 1.0)
    assert _setup.check_namespace("ok_ns") == "ok_ns"
    assert _setup.load_reference("warmup") == "warmup" and _setup.load_reference(None) is None


def test_mlflow_uris_go_to_the_provided_resolver_other_strings_do_not() -> None:
    resolver = registry.provided(_setup.RESOLVE_MLFLOW_REFERENCE)
    assert resolver.__module__ == "modelmon._extensions"  # wired by the package
    assert _setup.resolve_mlflow("ref.json") is None
    assert _setup.resolve_mlflow(None) is None
