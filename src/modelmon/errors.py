"""Exceptions raised by modelmon (at configuration time only)."""

from __future__ import annotations

from typing import Any


class ConfigurationError(ValueError):
    """A monitor, profile or exporter was configured with invalid arguments.

    Raised at decoration / construction time, never while recording.
    """


class ReferenceError_(ConfigurationError):
    """A reference profile could not be read or is of an unknown format."""


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is required for this feature: pip install 'modelmon[{extra}]'")
        self.package = package
        self.extra = extra


def require(module: str, extra: str) -> Any:
    """Import and return ``module``, or raise :class:`MissingExtraError` naming its
    package (the top-level name) and ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.partition(".")[0], extra) from exc
