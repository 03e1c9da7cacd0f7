"""Configuration checks and reference loading for :class:`~modelmon.Monitor` (raise early).

Every check raises :class:`~modelmon.errors.ConfigurationError` with the argument's name
and the value given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import names
from ._internal import registry
from .errors import ConfigurationError
from .profile import ReferenceProfile

NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# ``registry.provided`` name of the MLflow URI resolver (``runs:/``, ``models:/``).
RESOLVE_MLFLOW_REFERENCE = "mlflow.resolve_reference"


def check_label_value(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise ConfigurationError(f"namespace must match {NAMESPACE_RE.pattern}, got {namespace!r}")
    return namespace


def check_buckets(name: str, buckets: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(b) for b in buckets)
    if not values or any(b <= 0 or not np.isfinite(b) for b in values):
        raise ConfigurationError(f"{name} must be positive finite numbers, got {buckets!r}")
    if list(values) != sorted(set(values)):
        raise ConfigurationError(f"{name} must be strictly increasing, got {buckets!r}")
    return values


def check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
    return value


def resolve_mlflow(reference: Any) -> Any:
    """A ``ResolvedReference`` for ``runs:/`` and ``models:/`` URIs, else None.

    The resolver is the MLflow integration's, provided through the registry (the core
    never imports an integration).
    """
    if isinstance(reference, str) and reference.startswith(("runs:/", "models:/")):
        return registry.provided(RESOLVE_MLFLOW_REFERENCE)(reference)
    return None


def reference_classes(reference: Any) -> tuple[str, ...] | None:
    """The classes a reference profile saw predicted (its categorical ``prediction``)."""
    outputs = getattr(reference, "outputs", None) or {}
    prediction = outputs.get("prediction")
    if prediction is None or prediction.kind != "categorical":
        return None
    classes = tuple(c for c in prediction.categories if c != names.POOLED)
    return classes or None


def load_reference(reference: Any) -> Any:
    """The profile object, ``"warmup"``, or None; paths are loaded now (errors raise here)."""
    if reference is None or reference == "warmup":
        return reference
    if isinstance(reference, (str, os.PathLike)):
        try:
            return ReferenceProfile.load(os.fspath(reference))
        except ConfigurationError:
            raise
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read reference profile {os.fspath(reference)!r}: {exc}"
            ) from exc
    if isinstance(reference, ReferenceProfile):
        return reference
    raise ConfigurationError(
        "reference must be a ReferenceProfile, a path to one, 'warmup' or None, "
        f"got {type(reference).__name__}"
    )
