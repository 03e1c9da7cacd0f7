"""A cached property without a lock: safe across ``fork``.

Python 3.11's :class:`functools.cached_property` holds one re-entrant lock per
descriptor (shared by every instance of the class) while it computes. If a thread (the
background folder computing a profile's fingerprint, say) holds it when a pre-forking
server forks, the child inherits the lock held by a thread that does not exist there,
and the child's first read of that property on any instance waits forever. Python 3.12
removed the lock; this is the same descriptor without it: two threads that read a cold
property at once may both compute it, and one result is kept (the properties cached
this way are pure functions of immutable data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached_property(Generic[T]):
    """Compute once per instance on first read, then store it in the instance's ``__dict__``."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if self.attrname is None:
            raise TypeError("cached_property needs __set_name__ (assign it in a class body)")
        value = self.func(instance)
        instance.__dict__[self.attrname] = value  # frozen dataclasses too, like functools
        return value
