"""One open monitor per model version and registry.

A second monitor of the same model, version and namespace exporting to the same
registry would hide the first one's calls (both render the same series), so creating
one raises. ``@monitored`` and ``instrument`` look the live one up to share it.
A monitor registered nowhere (``registry=None``) can lose nothing and is not tracked.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from . import registry as _registry

if TYPE_CHECKING:
    from ..monitor import Monitor

# ``registry.provided`` name of the function mapping a ``registry=`` argument to the
# registry object it names (the Prometheus exporter provides it: the default is the
# global ``REGISTRY``, so ``registry=REGISTRY`` and the default are one identity).
REGISTRY_TARGET = "identity.registry_target"
Identity = tuple[int, str, str, str]
_live: weakref.WeakValueDictionary[Identity, Monitor] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def identity_key(registry: Any, namespace: str, model: str, version: str) -> Identity | None:
    """What makes two monitors collide, or None when ``registry`` is None (not registered)."""
    if registry is None or registry is False:
        return None  # exported nowhere: nothing can be lost
    target = _registry.provided(REGISTRY_TARGET, None)
    if target is not None:
        registry = target(registry)
    return (id(registry), namespace, model, version)


def live_monitor(registry: Any, namespace: str, model: str, version: str) -> Monitor | None:
    """The open monitor of this model version in ``registry``, if any."""
    key = identity_key(registry, namespace, model, version)
    if key is None:
        return None
    with _live_lock:
        return _live.get(key)


def claim(monitor: Monitor) -> Identity | None:
    """Make ``monitor`` the live one of its identity; raise if another one is."""
    key = identity_key(monitor.registry, monitor.namespace, monitor.model, monitor.version)
    if key is None:
        return None
    with _live_lock:
        existing = _live.get(key)
        if existing is not None and existing is not monitor:
            raise ConfigurationError(
                f"model={monitor.model!r} version={monitor.version!r} is already monitored in "
                "this registry; a second Monitor would hide the first one's calls. Wrap the "
                "other function with the same monitor (existing_monitor.wrap(fn), or "
                "@modelmon.monitored with the same arguments, which shares it), or call "
                "existing_monitor.close() first to replace it"
            )
        _live[key] = monitor
    return key


def release(monitor: Monitor, key: Identity | None) -> None:
    """Forget ``monitor`` as the live one of ``key`` (if it still is)."""
    if key is None:
        return
    with _live_lock:
        if _live.get(key) is monitor:
            del _live[key]
