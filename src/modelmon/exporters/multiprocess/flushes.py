"""Read-your-writes across processes: a scrape asks every other worker to flush.

Every process with monitors listens on a Unix datagram socket in Linux's abstract
namespace, named after the directory and its pid (no file, nothing to clean up).
A scrape sends "flush <nonce>" to each live worker that has a state file; each one
folds and writes (or, when nothing changed since its last write, does nothing) and
answers "done <nonce>". The scrape waits for the answers at most FLUSH_WAIT_S.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
from typing import Any

from .files import FLUSH_WAIT_S, HEALTH, directory, listing, pid_alive
from .writer import WRITER

_FLUSH = b"flush "
_DONE = b"done "


def _socket_name(path: str, pid: int) -> bytes:
    digest = hashlib.blake2b(
        os.path.realpath(path).encode("utf-8", "surrogateescape"), digest_size=8
    )
    return b"\0modelmon-" + digest.hexdigest().encode("ascii") + b"-" + str(pid).encode("ascii")


def _pid_of_name(name: Any) -> int | None:
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    if not isinstance(name, bytes):
        return None
    tail = name.rsplit(b"-", 1)[-1]
    return int(tail) if tail.isdigit() else None


_SUPPORTED = sys.platform.startswith("linux")


class _Listener:
    """This process's flush-request socket and the thread that answers it."""

    def __init__(self) -> None:
        self.pid = 0
        self.path: str | None = None
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        # The process whose state is its own: set again at the end of the after-fork reset.
        self.ready_pid = os.getpid()

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        if self.pid != os.getpid():
            self._close()

    def _close(self) -> None:
        if self.sock is not None:  # a copy of the parent's socket after a fork, or an old one
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.pid, self.path = None, 0, None

    def ensure(self) -> None:
        """Listen in this process (idempotent, cheap once listening)."""
        path = directory()
        if not _SUPPORTED or path is None:
            return
        if self.pid == os.getpid() and self.path == path:
            return
        if self.ready_pid != os.getpid():  # forked, and the child's reset has not run yet
            return
        with self.lock:
            if self.pid == os.getpid() and self.path == path:
                return
            self._close()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(_socket_name(path, os.getpid()))
            except OSError as exc:
                sock.close()
                HEALTH.note("listen", "modelmon: no flush socket, scrapes may lag: %r", exc)
                return
            self.sock, self.pid, self.path = sock, os.getpid(), path
            thread = threading.Thread(
                target=self._run, args=(sock,), name="modelmon-mp-flush", daemon=True
            )
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        while True:
            try:
                data, addr = sock.recvfrom(64)
            except OSError:
                return  # closed (replaced after a directory change)
            requests = [(data, addr)]
            sock.setblocking(False)
            try:  # answer every request that queued meanwhile with one write
                while len(requests) < 256:
                    requests.append(sock.recvfrom(64))
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    sock.setblocking(True)
            if WRITER.stale():
                with contextlib.suppress(Exception):  # counted and logged by write()
                    WRITER.write(fold=True)
            for data, addr in requests:
                if data.startswith(_FLUSH) and addr:
                    with contextlib.suppress(OSError):
                        sock.sendto(_DONE + data[len(_FLUSH) :], addr)


LISTENER = _Listener()


def _listening_pids(path: str) -> list[int]:
    """Pids listening for flush requests of ``path`` (also those that never wrote a file)."""
    prefix = "@" + _socket_name(path, 0)[1:-1].decode("ascii")
    pids = []
    try:
        with open("/proc/net/unix", encoding="ascii", errors="replace") as f:
            for line in f:
                name = line.rstrip("\n").rsplit(" ", 1)[-1]
                if name.startswith(prefix) and name[len(prefix) :].isdigit():
                    pids.append(int(name[len(prefix) :]))
    except OSError:
        return []
    return pids


def request_flushes(path: str, wait: float = FLUSH_WAIT_S) -> list[int]:
    """Ask every other live worker of ``path`` to fold and write; wait at most ``wait`` s.

    Returns the pids that did not answer in time (their last written state is used).
    """
    if not _SUPPORTED:
        return []
    me = os.getpid()
    pids = set(_listening_pids(path))
    with contextlib.suppress(FileNotFoundError):
        for filename in listing(path):
            pids.add(int(filename[len("modelmon_") : -len(".state")]))
    pids = {pid for pid in pids if pid != me and pid_alive(pid)}
    if not pids:
        return []
    nonce = os.urandom(8).hex().encode("ascii")
    waiting: set[int] = set()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"")  # an automatic abstract address for the answers
        for pid in pids:
            try:
                sock.sendto(_FLUSH + nonce, _socket_name(path, pid))
            except OSError:  # no listener: not a modelmon process, or one without monitors
                continue
            waiting.add(pid)
        deadline = time.monotonic() + wait
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                data, addr = sock.recvfrom(64)
            except TimeoutError:
                break
            answered = _pid_of_name(addr)
            if data == _DONE + nonce and answered is not None:
                waiting.discard(answered)
    return sorted(waiting)
