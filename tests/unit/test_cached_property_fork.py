"""A cached property read while another thread computes it survives ``fork``.

Python 3.11's ``functools.cached_property`` holds one lock per descriptor while it
computes; a child forked at that moment (gunicorn --preload while the background folder
computes a profile's fingerprint) waited forever on its first read of that property.
"""

from __future__ import annotations

import multiprocessing
import threading

from modelmon._cached import cached_property  # private: the descriptor under test

FORK = multiprocessing.get_context("fork")


class _Slow:
    inside = threading.Event()
    release = threading.Event()

    def __init__(self, block: bool) -> None:
        self.block = block

    @cached_property
    def value(self) -> int:
        if self.block:
            _Slow.inside.set()
            _Slow.release.wait(30)
        return 42


def _read_fresh_instance() -> None:
    assert _Slow(block=False).value == 42


def test_a_child_forked_while_a_thread_computes_reads_the_property() -> None:
    reader = threading.Thread(target=lambda: _Slow(block=True).value, daemon=True)
    reader.start()
    try:
        assert _Slow.inside.wait(10)
        child = FORK.Process(target=_read_fresh_instance)
        child.start()
        child.join(20)
        alive = child.is_alive()
        if alive:
            child.kill()
            child.join(5)
        assert not alive, "the child waited on a lock held by a thread of its parent"
        assert child.exitcode == 0
    finally:
        _Slow.release.set()
        reader.join(10)


def test_cached_once_per_instance_and_stored_like_functools() -> None:
    calls = []

    class Counted:
        @cached_property
        def v(self) -> int:
            """Docs kept."""
            calls.append(1)
            return len(calls)

    a, b = Counted(), Counted()
    assert (a.v, a.v, b.v) == (1, 1, 2)
    assert a.__dict__["v"] == 1
    assert Counted.v.__doc__ == "Docs kept."
