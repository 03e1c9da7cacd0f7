"""MLflow integration (extra ``modelmon[mlflow]``): see :mod:`modelmon.integrations.mlflow`.

Importing this module does not import MLflow; each function does when called.
"""

from __future__ import annotations

from .integrations.mlflow import (
    ResolvedReference,
    log_reference,
    log_snapshot,
    resolve_reference,
    snapshot_metrics,
)

__all__ = [
    "ResolvedReference",
    "log_reference",
    "log_snapshot",
    "resolve_reference",
    "snapshot_metrics",
]
