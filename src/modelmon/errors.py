"""Exceptions raised by modelmon (at configuration time only)."""

from __future__ import annotations


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


def require(module: str, extra: str) -> None:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc
