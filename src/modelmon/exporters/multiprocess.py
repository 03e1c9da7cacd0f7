"""Multi-process mode: every worker of a pre-forking server writes its state, any worker merges.

Enabled while ``MODELMON_MULTIPROC_DIR`` (else ``PROMETHEUS_MULTIPROC_DIR``) names a
directory; the variable is read at every fold and scrape, so setting it after import
works. Each process writes the states of its monitors' aggregates to
``<dir>/modelmon_<pid>.state`` after its folds (atomically: a temp file then
``os.replace``; at most :data:`MIN_WRITE_INTERVAL_S` apart, from a background thread)
and synchronously on every scrape. A scrape folds the scraping process, writes its
file, reads every file of the directory, rebuilds fresh aggregates of the same kinds,
``load_state``\\ s and ``merge``\\ s them, and renders the merged families.

What a scrape sees (read-your-writes across processes): every call that returned in the
scraping process before the scrape, and every call of another worker that returned at
least about ``FOLD_INTERVAL + MIN_WRITE_INTERVAL_S`` (1.1 s) before it. Totals never go
backwards: files of dead processes stay (their counters count; their in-flight gauges
do not), and :func:`mark_process_dead` folds a dead worker's counters into
``modelmon_archive.state`` before deleting its file.

The file format is JSON with numpy arrays as ``{"__nd__": [dtype, shape, base64]}``:
nothing is ever unpickled. After ``fork`` the child starts from empty aggregates (the
parent keeps reporting what it folded itself), so ``gunicorn --preload`` counts each
call once.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import math
import os
import re
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import names
from .._internal import registry as monitor_registry
from .._internal.health import Health
from ..aggregates.traffic import InputHealthAggregate, TrafficAggregate
from ..batch import RenderContext
from ..errors import ConfigurationError
from ..monitor import DEFAULT_REGISTRY
from ..points import Family, ScalarPoint
from .prometheus import _ATTR, live_families

if TYPE_CHECKING:
    from ..integrations._http import HttpMetrics
    from ..monitor import Monitor

logger = logging.getLogger("modelmon")

ENV_VARS: tuple[str, ...] = ("MODELMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
MIN_WRITE_INTERVAL_S = 0.1
HTTP_POLL_S = 1.0
FORMAT = "modelmon-multiprocess"
FORMAT_VERSION = 1
ARCHIVE_NAME = "modelmon_archive.state"
LOCK_NAME = "modelmon_archive.lock"
ARCHIVE_FORMAT = "modelmon-multiprocess-archive"
_PID_FILE = re.compile(r"^modelmon_([1-9][0-9]{0,9})\.state$")
# A dead worker's counters, one file each (``mark_process_dead`` costs one file, not the
# whole archive): ``modelmon_dead_<pid>_<token>.state``.
_DEAD_FILE = re.compile(r"^modelmon_dead_([1-9][0-9]{0,9})_([A-Za-z0-9_-]{1,64})\.state$")
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a reader accepts from the directory (anyone who can write there is untrusted):
# regular files only (no FIFO, device, directory or symlink is ever opened for reading),
# at most MAX_STATE_BYTES each, pids in the kernel's range, counters non-negative.
MAX_STATE_BYTES = 64 * 1024 * 1024
MAX_PID = 4_194_304  # Linux's largest pid_max
FILE_MODE = 0o600
DIR_MODE = 0o700
# Read-your-writes: a scrape asks every live worker to fold and write, and waits at most
# this long for the answers (a stuck worker is counted, and its last file is used).
FLUSH_WAIT_S = 0.5
_HEALTH = Health()  # directory problems seen where no monitor is at hand (logged once a minute)
_ND = "__nd__"
_NUMERIC_KINDS = frozenset("biuf")

Key = tuple[str, str, str]  # namespace, model, version


def directory() -> str | None:
    """The multi-process directory from the environment, or None (single-process mode)."""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


# --- the codec: JSON plus raw numpy buffers, never pickle -------------------------------


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            return [_jsonable(x) for x in obj.tolist()]
        data = base64.b64encode(obj.tobytes(order="C")).decode("ascii")
        return {_ND: [obj.dtype.str, list(obj.shape), data]}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a multi-process state file")


def _array(spec: list[Any]) -> np.ndarray:
    dtype_str, shape, data = spec
    dtype = np.dtype(str(dtype_str))
    if dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"refusing array dtype {dtype_str!r} in a state file")
    shape = tuple(int(s) for s in shape)
    raw = base64.b64decode(data, validate=True)
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise ValueError("array size does not match its shape in a state file")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _object_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and _ND in d:
        return _array(d[_ND])
    return d


def encode(obj: Any) -> bytes:
    """Serialise plain state (dicts, lists, scalars, numeric numpy arrays) to bytes.

    >>> import numpy as np
    >>> decode(encode({"a": np.arange(3)}))["a"].tolist()
    [0, 1, 2]
    """
    return json.dumps(_jsonable(obj), separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Any:
    """Inverse of :func:`encode` (refuses object arrays; never unpickles)."""
    return json.loads(data.decode("utf-8"), object_hook=_object_hook)


# --- aggregate kinds: how to rebuild an empty aggregate from what a file says ----------


class _Profiles:
    """Reference profiles by fingerprint: local monitors first, then the sidecar files."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._cache: dict[str, Any] = {}

    def get(self, fingerprint: str) -> Any:
        if fingerprint in self._cache:
            return self._cache[fingerprint]
        profile = self._local(fingerprint) or self._sidecar(fingerprint)
        if profile is None:
            raise LookupError(f"reference profile {fingerprint} is not available here")
        self._cache[fingerprint] = profile
        return profile

    @staticmethod
    def _local(fingerprint: str) -> Any:
        for monitor in monitor_registry.monitors():
            profile = getattr(monitor.aggregates.get("drift"), "profile", None)
            if profile is not None and profile.fingerprint == fingerprint:
                return profile
        return None

    def _sidecar(self, fingerprint: str) -> Any:
        if self.path is None or not _FINGERPRINT.match(fingerprint):
            return None
        from ..profile import ReferenceProfile

        try:
            with open(_profile_path(self.path, fingerprint), encoding="utf-8") as f:
                return ReferenceProfile.loads(f.read())
        except FileNotFoundError:
            return None


def _profile_path(path: str, fingerprint: str) -> str:
    return os.path.join(path, f"modelmon_profile_{fingerprint}.json")


@dataclass(frozen=True)
class AggregateKind:
    """How one aggregate class is described in a state file and rebuilt empty from it."""

    name: str
    cls: type
    config: Callable[[Any], dict[str, Any]]
    build: Callable[[Mapping[str, Any], _Profiles], Any]
    fresh: Callable[[Any], Any]


def _traffic_config(agg: TrafficAggregate) -> dict[str, Any]:
    return {
        "duration_buckets": agg.duration.bounds.tolist(),
        "batch_buckets": agg.batch_size.bounds.tolist(),
        "confidence_buckets": agg.confidence.bounds.tolist(),
        "max_error_types": agg.max_error_types,
    }


def _traffic_build(config: Mapping[str, Any], _: _Profiles) -> TrafficAggregate:
    return TrafficAggregate(**config)


def _drift_config(agg: Any) -> dict[str, Any]:
    profile = agg.profile
    return {
        "fingerprint": None if profile is None else profile.fingerprint,
        "warmup": agg.warmup,
        "from_warmup": bool(agg._built_from_warmup),
        "window_seconds": agg.window_seconds,
        "slots": agg.n_slots,
        "min_samples": agg.min_samples,
        "quantiles": list(agg.quantiles),
        "max_features": agg.max_features,
        "export_bin_edges": agg.export_bin_edges,
        "relative_accuracy": agg.relative_accuracy,
    }


def _drift_new(profile: Any, config: Mapping[str, Any]) -> Any:
    from ..aggregates.drift import DriftAggregate

    return DriftAggregate(
        profile,
        warmup=config["warmup"] or (None if profile is not None else 1),
        window_seconds=config["window_seconds"],
        slots=config["slots"],
        min_samples=config["min_samples"],
        quantiles=config["quantiles"],
        max_features=config["max_features"],
        export_bin_edges=config["export_bin_edges"],
        relative_accuracy=config["relative_accuracy"],
    )


def _drift_build(config: Mapping[str, Any], profiles: _Profiles) -> Any:
    fingerprint = config["fingerprint"]
    # A warm-up profile travels inside the state itself (load_state adopts it).
    needs_profile = fingerprint is not None and not config["from_warmup"]
    return _drift_new(profiles.get(fingerprint) if needs_profile else None, config)


def _drift_fresh(agg: Any) -> Any:
    fresh = _drift_new(agg.profile, _drift_config(agg))
    fresh._built_from_warmup = agg._built_from_warmup
    return fresh


def _outcome_config(agg: Any) -> dict[str, Any]:
    return {
        "task": agg.task,
        "max_classes": agg.max_classes,
        "positive_class": agg.positive_class,
        "window_seconds": agg.slot_seconds * agg.slots,
        "slots": agg.slots,
        "delay_buckets": agg.delay.bounds.tolist(),
        "reset_after": agg.reset_after,
    }


def _outcome_new(config: Mapping[str, Any], store: Any, detector: Any) -> Any:
    from ..aggregates.outcomes import OutcomeAggregate

    return OutcomeAggregate(
        config["task"],
        store=store,
        max_classes=config["max_classes"],
        positive_class=config["positive_class"],
        window_seconds=config["window_seconds"],
        slots=config["slots"],
        detector=detector,
        delay_buckets=config["delay_buckets"],
        reset_after=config["reset_after"],
    )


def _outcome_build(config: Mapping[str, Any], _: _Profiles) -> Any:
    # Merged views only read the counters; detections travel in the state.
    return _outcome_new(config, None, None)


def _outcome_fresh(agg: Any) -> Any:
    detector = getattr(agg.detector, "name", None)
    # The pending predictions stay joinable in the child (a SQLite store is shared).
    return _outcome_new(_outcome_config(agg), agg.store, detector)


_KINDS: dict[str, AggregateKind] = {}


def register_kind(kind: AggregateKind) -> None:
    """Teach multi-process mode an aggregate class (built-ins are registered here)."""
    _KINDS[kind.name] = kind


register_kind(
    AggregateKind("traffic", TrafficAggregate, _traffic_config, _traffic_build, lambda a: None)
)
register_kind(
    AggregateKind(
        "inputs",
        InputHealthAggregate,
        lambda a: {},
        lambda c, p: InputHealthAggregate(),
        lambda a: InputHealthAggregate(),
    )
)


def _register_optional_kinds() -> None:
    with contextlib.suppress(ImportError):
        from ..aggregates.drift import DriftAggregate

        register_kind(
            AggregateKind("drift", DriftAggregate, _drift_config, _drift_build, _drift_fresh)
        )
    with contextlib.suppress(ImportError):
        from ..aggregates.outliers import OutlierAggregate

        register_kind(  # the state carries the profile's fences: built empty, then loaded
            AggregateKind(
                "outliers", OutlierAggregate, lambda a: {}, lambda c, p: OutlierAggregate(),
                lambda a: a.fresh(),
            )
        )  # fmt: skip
    with contextlib.suppress(ImportError):
        from ..aggregates.outcomes import OutcomeAggregate

        register_kind(
            AggregateKind(
                "outcomes", OutcomeAggregate, _outcome_config, _outcome_build, _outcome_fresh
            )
        )


_register_optional_kinds()


def _kind_of(agg: Any) -> AggregateKind | None:
    for kind in _KINDS.values():
        if type(agg) is kind.cls:
            return kind
    return None


def _class_name(agg: Any) -> str | None:
    """``module:qualname`` of a no-argument modelmon aggregate class (the generic fallback)."""
    cls = type(agg)
    if cls.__module__.startswith("modelmon.") and "<" not in cls.__qualname__:
        return f"{cls.__module__}:{cls.__qualname__}"
    return None


def describe(agg: Any) -> dict[str, Any] | None:
    """What a state file stores for ``agg`` (kind, config, state), or None if it cannot."""
    kind = _kind_of(agg)
    if kind is not None:
        return {"kind": kind.name, "config": kind.config(agg), "state": agg.state()}
    name = _class_name(agg)
    if name is None:
        return None
    return {"kind": "class", "config": {"class": name}, "state": agg.state()}


def build(entry: Mapping[str, Any], profiles: _Profiles) -> Any:
    """A fresh aggregate holding the state of a file entry."""
    agg = _blank(entry["kind"], entry["config"], profiles)
    agg.load_state(entry["state"])
    return agg


def _blank(kind_name: str, config: Mapping[str, Any], profiles: _Profiles) -> Any:
    kind = _KINDS.get(kind_name)
    if kind is not None:
        return kind.build(config, profiles)
    if kind_name == "class":
        module, _, qualname = str(config["class"]).partition(":")
        if not module.startswith("modelmon."):  # only our own classes are ever imported
            raise ValueError(f"refusing aggregate class {config['class']!r}")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj()
    raise ValueError(f"unknown aggregate kind {kind_name!r}")


def fresh_like(agg: Any) -> Any:
    """An empty aggregate configured like ``agg`` (what a forked child starts from)."""
    kind = _kind_of(agg)
    if kind is not None:
        fresh = kind.fresh(agg)
        if fresh is not None:
            return fresh
        return kind.build(kind.config(agg), _Profiles(None))
    return type(agg)()


# --- this process's file ----------------------------------------------------------------


def _registry_kind(monitor: Monitor) -> str:
    if monitor.registry is DEFAULT_REGISTRY:
        return "default"
    return "none" if monitor.registry is None else "custom"


def _live_entry(families: Iterable[Family]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for family in families:
        points = [
            [dict(p.labels), float(p.value)] for p in family.points if isinstance(p, ScalarPoint)
        ]
        out.append([family.spec.name, points])
    return out


def snapshot(monitor: Monitor, now: float) -> dict[str, Any]:
    """The file entry of one monitor: its aggregates' states and its live values."""
    aggregates: dict[str, Any] = {}
    with monitor.folding.reading():
        for name, agg in monitor.aggregates.items():
            try:
                entry = describe(agg)
            except Exception as exc:
                monitor.health.error("multiprocess_state", exc)
                continue
            if entry is not None:
                aggregates[name] = entry
    live = _live_entry(monitor.live_families(monitor.render_context(now)))
    return {
        "namespace": monitor.namespace,
        "model": monitor.model,
        "version": monitor.version,
        "registry": _registry_kind(monitor),
        "aggregates": aggregates,
        "live": live,
    }


def _pid_path(path: str, pid: int) -> str:
    return os.path.join(path, f"modelmon_{pid}.state")


def _atomic_write(target: str, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, private to the owner; no temp file is left."""
    tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, FILE_MODE)
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Writer:
    """Writes this process's file: throttled from a thread after folds, at once on scrapes."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.token = uuid.uuid4().hex
        self.lock = threading.Lock()
        self.start_lock = threading.Lock()  # never held while waiting for a fold lock
        self.event = threading.Event()
        self.thread: threading.Thread | None = None
        self.last = 0.0
        self.checked: str | None = None  # the directory whose old file of our pid was handled
        self.profiles_written: set[tuple[str, str]] = set()
        self.local = threading.local()
        self.http_seen = 0
        self.dirty = True  # a fold happened since the last write
        self.last_bytes: bytes | None = None  # the latest state, written or not
        self.failing = False

    def after_fork(self) -> None:
        self._reset()

    def notify(self) -> None:
        """A fold happened: write soon (at most every MIN_WRITE_INTERVAL_S)."""
        self.dirty = True
        if getattr(self.local, "writing", False):
            return
        if self.thread is None or self.pid != os.getpid():
            self._start()
        self.event.set()

    def _start(self) -> None:
        with self.start_lock:
            if self.thread is not None and self.pid == os.getpid():
                return
            if self.pid != os.getpid():
                self._reset()
            self.thread = threading.Thread(target=self._run, name="modelmon-mp-write", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            # HTTP requests trigger no fold: poll their count once a second too.
            if not self.event.wait(HTTP_POLL_S) and not self._http_changed():
                continue
            delay = self.last + MIN_WRITE_INTERVAL_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.event.clear()
            with contextlib.suppress(Exception):  # write() counts and logs its failures
                path = self.write(fold=False)
                if path is not None:
                    UNREAD.check(os.path.dirname(path), time.monotonic())

    def _http_changed(self) -> bool:
        return sum(m.recorded for m in live_http_metrics()) != self.http_seen

    def stale(self) -> bool:
        """Whether the file lacks something this process has done (for flush requests)."""
        if self.dirty or self.last_bytes is None or self._http_changed():
            return True
        return any(m.buffer.items for m in monitor_registry.monitors())

    def write(self, fold: bool) -> str | None:
        """Write this process's file now (folding first when ``fold``); returns its path.

        A failed write (read-only or full directory) is counted in
        ``modelmon_internal_errors_total{stage="multiprocess_write"}``, logged at most
        once a minute and re-raised; :attr:`last_bytes` holds the state all the same.
        """
        path = directory()
        if path is None:
            return None
        if self.pid != os.getpid():  # forked without the at-fork hook (os.fork is hooked)
            self._reset()
        monitors = monitor_registry.monitors()
        self.local.writing = True
        try:
            if fold:
                for monitor in monitors:
                    monitor.fold()
            with self.lock:
                try:
                    target = self._write_locked(path, monitors)
                except Exception as exc:
                    self.failing = True
                    _health_of(monitors).error("multiprocess_write", exc)
                    raise
                self.failing = False
                return target
        finally:
            self.local.writing = False

    def _write_locked(self, path: str, monitors: list[Monitor]) -> str:
        now = time.time()
        self.dirty = False
        target = _pid_path(path, self.pid)
        entries = [snapshot(m, now) for m in _one_per_key(monitors)]
        http = live_http_metrics()
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pid": self.pid,
            "token": self.token,
            "written_at": now,
            "monitors": entries,
            "http": [m.state() for m in http],
        }
        self.http_seen = sum(m.recorded for m in http)
        self.last_bytes = encode(doc)
        self.last = time.monotonic()
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        if self.checked != path:
            _absorb_foreign(path, self.pid, self.token)
            self.checked = path
        self._write_profiles(path, monitors)
        _atomic_write(target, self.last_bytes)
        return target

    def _write_profiles(self, path: str, monitors: list[Monitor]) -> None:
        """Reference profiles once per process, so a process lacking the monitor can merge."""
        for monitor in monitors:
            drift = monitor.aggregates.get("drift")
            profile = getattr(drift, "profile", None)
            if profile is None or getattr(drift, "_built_from_warmup", False):
                continue
            fingerprint = profile.fingerprint
            if (path, fingerprint) in self.profiles_written or not _FINGERPRINT.match(fingerprint):
                continue
            target = _profile_path(path, fingerprint)
            if not os.path.exists(target):
                _atomic_write(target, profile.dumps().encode("utf-8"))
            self.profiles_written.add((path, fingerprint))


def _one_per_key(monitors: list[Monitor]) -> list[Monitor]:
    """One monitor per (namespace, model, version): an exported one, else the newest.

    As in one registry, where a new monitor for a model version replaces the old one.
    """
    ranked = sorted(monitors, key=lambda m: (m.registry is not None, m.loaded_at))
    return list({_key(m): m for m in ranked}.values())


WRITER = _Writer()


def _health_of(monitors: list[Monitor]) -> Health:
    return monitors[0].health if monitors else _HEALTH


def flush() -> str | None:
    """Fold every monitor of this process and write its state file now (None if disabled)."""
    return WRITER.write(fold=True)


def _on_fold(monitor: Monitor) -> None:
    if directory() is not None:
        WRITER.notify()


def worker_exit(server: Any = None, worker: Any = None) -> None:
    """gunicorn's ``worker_exit`` hook (runs in the exiting worker): write its last calls.

    An ``atexit`` handler does the same at any normal exit; this hook also covers
    workers that leave through ``os._exit``. In ``gunicorn.conf.py``::

        from modelmon.multiprocess import mark_process_dead, worker_exit

        def child_exit(server, worker):
            mark_process_dead(worker.pid)
    """
    _flush_at_exit()


def _flush_at_exit() -> None:
    """At a normal exit (gunicorn's ``max_requests`` recycling, SIGTERM): write the last calls."""
    if directory() is None or not monitor_registry.monitors():
        return
    with contextlib.suppress(Exception):  # counted and logged by write()
        WRITER.write(fold=True)


# --- read-your-writes: a scrape asks the other workers to flush ---------------------------
#
# Every process with monitors listens on a Unix datagram socket in Linux's abstract
# namespace, named after the directory and its pid (no file, nothing to clean up).
# A scrape sends "flush <nonce>" to each live worker that has a state file; each one
# folds and writes (or, when nothing changed since its last write, does nothing) and
# answers "done <nonce>". The scrape waits for the answers at most FLUSH_WAIT_S.

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
        if _ready_pid != os.getpid():  # forked, and the child's reset has not run yet
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
                _HEALTH.note("listen", "modelmon: no flush socket, scrapes may lag: %r", exc)
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
        for filename in _listing(path):
            pids.add(int(filename[len("modelmon_") : -len(".state")]))
    pids = {pid for pid in pids if pid != me and _pid_alive(pid)}
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


# --- reading the directory ----------------------------------------------------------------


@dataclass
class ProcessState:
    """The state one process wrote (from its own file, or from the archive once dead)."""

    pid: int
    token: str
    written_at: float
    alive: bool
    monitors: dict[Key, dict[str, Any]]
    http: list[dict[str, Any]] = field(default_factory=list)


def _parse(doc: Any, alive: bool | None = None) -> ProcessState:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a modelmon multi-process state file")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported state file version {doc.get('version')!r}")
    pid = doc["pid"]
    if type(pid) is not int or not 0 < pid <= MAX_PID:
        raise ValueError(f"pid {pid!r} out of range in a state file")
    token = doc["token"]
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise ValueError("malformed token in a state file")
    written_at = float(doc["written_at"])
    if not math.isfinite(written_at):
        raise ValueError("malformed time in a state file")
    monitors = {
        (str(m["namespace"]), str(m["model"]), str(m["version"])): m for m in doc["monitors"]
    }
    for entry in monitors.values():
        if not isinstance(entry.get("aggregates"), dict):
            raise ValueError("malformed monitor entry in a state file")
        _check_live(entry)
        _check_counts(entry["aggregates"])
    http = list(doc.get("http", []))
    _check_counts(http)
    return ProcessState(
        pid,
        token,
        written_at,
        _pid_alive(pid) if alive is None else alive,
        monitors,
        http,
    )


def read_bytes(path: str, limit: int = MAX_STATE_BYTES) -> bytes | None:
    """The bytes of a regular file, never following a symlink; None if it does not exist.

    Raises ValueError for anything else (a FIFO, a device, a directory, a symlink, a
    file over ``limit`` bytes): opening is non-blocking and the read stops at the cap.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:  # absorbed into the archive meanwhile
        return None
    except OSError as exc:  # ELOOP: a symlink
        raise ValueError(f"cannot open {os.path.basename(path)}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{os.path.basename(path)} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{os.path.basename(path)} is larger than {limit} bytes")
        parts: list[bytes] = []
        total = 0
        while True:
            part = os.read(fd, min(1 << 20, limit + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
            if total > limit:
                raise ValueError(f"{os.path.basename(path)} is larger than {limit} bytes")
        return b"".join(parts)
    finally:
        os.close(fd)


def _read(path: str, alive: bool | None = None) -> ProcessState | None:
    data = read_bytes(path)
    if data is None:
        return None
    return _parse(decode(data), alive)


_COUNT_KEYS = frozenset({"requests", "predictions", "errors"})


def _is_count_key(key: str) -> bool:
    return key in _COUNT_KEYS or "count" in key


def _check_counts(obj: Any, counting: bool = False, depth: int = 0) -> None:
    """Refuse a negative count anywhere in a state (fields named ``*count*``, requests...)."""
    if depth > 64:
        raise ValueError("state nested too deeply")
    if isinstance(obj, np.ndarray):
        if counting and obj.dtype.kind in "iuf" and obj.size and not (obj >= 0).all():
            raise ValueError("negative count in a state file")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_counts(v, counting or _is_count_key(str(k)), depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _check_counts(v, counting, depth + 1)
    elif counting and isinstance(obj, (int, float)) and not obj >= 0:
        raise ValueError("negative count in a state file")


def _check_live(entry: Mapping[str, Any]) -> None:
    for item in entry.get("live", []):
        spec_name, points = item
        if not _is_counter(str(spec_name)):
            continue
        for _labels, value in points:
            v = float(value)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"counter {spec_name} has value {v!r} in a state file")


class _LastGood:
    """The last bytes of each file that parsed: a file that turns unreadable (truncated,
    replaced by something hostile, a full disk) counts with what it said before, so the
    merged view never goes backwards. Bytes, re-decoded on use: merges never alias them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}

    def remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._data[key] = data

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        with self._lock:
            for key in [k for k in self._data if k not in keep]:
                del self._data[key]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)


_LAST_GOOD = _LastGood()


def _listing(path: str, pattern: re.Pattern[str] = _PID_FILE) -> list[str]:
    """Names of the directory's process files (regular files only, never a symlink)."""
    names_: list[str] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if pattern.match(entry.name):
                try:
                    regular = entry.is_file(follow_symlinks=False)
                except OSError:
                    regular = False
                if regular:
                    names_.append(entry.name)
                else:
                    _HEALTH.note(
                        "mp_entry", "modelmon: ignoring %s: not a regular file", entry.name
                    )
    return names_


def _read_process_file(path: str, filename: str, own: bytes | None) -> ProcessState | None:
    full = os.path.join(path, filename)
    pid = int(_PID_FILE.match(filename).group(1))  # type: ignore[union-attr]
    try:
        data = own if own is not None and pid == os.getpid() else read_bytes(full)
        if data is None:
            return None
        state = _parse(decode(data))
        if state.pid != pid:
            raise ValueError(f"{filename} holds the state of pid {state.pid}")
    except Exception as exc:  # hostile or half-written: fall back to what it said before
        _HEALTH.note("mp_read", "modelmon: unreadable state file %s: %r", filename, exc)
        last = _LAST_GOOD.get(full)
        return _parse(decode(last)) if last is not None else None
    _LAST_GOOD.remember(full, data)
    return state


def _read_dead_file(path: str, filename: str) -> ProcessState | None:
    full = os.path.join(path, filename)
    match = _DEAD_FILE.match(filename)
    assert match is not None
    try:
        data = read_bytes(full)
        if data is None:
            return None
        state = _parse(decode(data), alive=False)
        if (str(state.pid), state.token) != (match.group(1), match.group(2)):
            raise ValueError(f"{filename} holds the state of another process")
    except Exception as exc:
        _HEALTH.note("mp_read", "modelmon: unreadable state file %s: %r", filename, exc)
        last = _LAST_GOOD.get(full)
        return _parse(decode(last), alive=False) if last is not None else None
    _LAST_GOOD.remember(full, data)
    return state


def archived_tokens(path: str) -> list[str]:
    """Tokens of the dead processes kept in ``path`` (legacy archive and dead files)."""
    tokens = [str(p["token"]) for p in _read_archive(os.path.join(path, ARCHIVE_NAME))["processes"]]
    for filename in _listing(path, _DEAD_FILE):
        match = _DEAD_FILE.match(filename)
        if match is not None:
            tokens.append(match.group(2))
    return sorted(tokens)


def read_directory(path: str, own: bytes | None = None) -> list[ProcessState]:
    """Every process of the directory (live files and archived ones), in merge order.

    Process files are read before the archive: a file archived in between is then
    found in the archive (and skipped here by its token), never lost. The order is
    (pid, token) whichever file holds an entry, so sums are always added in one order.
    ``own`` is this process's latest state (used instead of its file, which a full or
    read-only directory may have kept from being written).
    """
    states: list[ProcessState] = []
    try:
        listing = _listing(path)
    except FileNotFoundError:
        listing = []
    own_name = os.path.basename(_pid_path(path, os.getpid()))
    if own is not None and own_name not in listing:
        listing.append(own_name)
    for filename in listing:
        state = _read_process_file(path, filename, own)
        if state is not None:
            states.append(state)
    archive_path = os.path.join(path, ARCHIVE_NAME)
    try:
        data = read_bytes(archive_path)
        doc = _read_archive_bytes(archive_path, data)
        archived = [_parse(d, alive=False) for d in doc["processes"]]
        if data is not None:
            _LAST_GOOD.remember(archive_path, data)
    except Exception as exc:
        _HEALTH.note("mp_archive", "modelmon: unreadable archive: %r", exc)
        last = _LAST_GOOD.get(archive_path)
        archived = []
        if last is not None:
            archived = [
                _parse(d, alive=False) for d in _read_archive_bytes(archive_path, last)["processes"]
            ]
    try:  # listed after the process files were read: a file absorbed meanwhile is here
        dead_listing = _listing(path, _DEAD_FILE)
    except FileNotFoundError:
        dead_listing = []
    for filename in dead_listing:
        state = _read_dead_file(path, filename)
        if state is not None:
            archived.append(state)
    _LAST_GOOD.forget([os.path.join(path, f) for f in listing + dead_listing] + [archive_path])
    tokens = {a.token for a in archived}
    states = [s for s in states if s.token not in tokens] + archived
    states.sort(key=lambda s: (s.pid, s.token))
    return states


# --- merging ------------------------------------------------------------------------------


def _merge_aggregates(
    entries: list[dict[str, Any]], profiles: _Profiles, on_error: Callable[[Exception], None]
) -> dict[str, Any]:
    """Aggregate name -> one fresh aggregate holding the sum of every entry's state."""
    merged: dict[str, Any] = {}
    for entry in entries:
        for name, agg_entry in entry["aggregates"].items():
            try:
                agg = build(agg_entry, profiles)
                if name in merged:
                    merged[name].merge(agg)
                else:
                    merged[name] = agg
            except Exception as exc:
                on_error(exc)
    return merged


def _merge_live(items: list[tuple[ProcessState, dict[str, Any]]], namespace: str) -> list[Family]:
    """Counters add over every process; in-flight adds over live ones; other gauges: newest."""
    sums: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    newest: dict[str, tuple[float, list[list[Any]]]] = {}
    for proc, entry in items:
        for spec_name, points in entry.get("live", []):
            try:
                spec = names.by_name(str(spec_name))
            except KeyError:
                continue
            additive = spec.kind == "counter" or spec.name == names.IN_FLIGHT.name
            if additive and (spec.kind == "counter" or proc.alive):
                bucket = sums.setdefault(spec.name, {})
                for labels, value in points:
                    key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
                    bucket[key] = bucket.get(key, 0.0) + float(value)
            elif (
                not additive
                and proc.alive
                and (spec.name not in newest or proc.written_at > newest[spec.name][0])
            ):
                newest[spec.name] = (proc.written_at, points)
    families = [
        Family(
            names.by_name(n),
            namespace,
            tuple(ScalarPoint(dict(k), v) for k, v in sorted(pts.items())),
        )
        for n, pts in sums.items()
    ]
    for n, (_, points) in newest.items():
        families.append(
            Family(
                names.by_name(n),
                namespace,
                tuple(
                    ScalarPoint({str(k): str(v) for k, v in lb.items()}, float(v))
                    for lb, v in points
                ),
            )
        )
    return families


def merged_monitor_families(
    key: Key,
    items: list[tuple[ProcessState, dict[str, Any]]],
    profiles: _Profiles,
    now: float,
    on_error: Callable[[Exception], None],
) -> list[Family]:
    """Families of one monitor, merged over every process that wrote it."""
    namespace, model, version = key
    ctx = RenderContext(namespace, {names.MODEL: model, names.VERSION: version}, now)
    merged = _merge_aggregates([entry for _, entry in items], profiles, on_error)
    families: list[Family] = []
    for agg in merged.values():
        try:
            families.extend(agg.families(ctx))
        except Exception as exc:
            on_error(exc)
    families.extend(_merge_live(items, namespace))
    return families


def _key(monitor: Monitor) -> Key:
    return (monitor.namespace, monitor.model, monitor.version)


def _note_error(monitors: list[Monitor]) -> Callable[[Exception], None]:
    def note(exc: Exception) -> None:
        if monitors:
            monitors[0].health.error("multiprocess_merge", exc)
        else:
            logger.warning("modelmon: multi-process merge problem: %r", exc)

    return note


def collect_merged(
    monitors: list[Monitor], include_remote: bool | None = None, now: float | None = None
) -> list[Family]:
    """Families of ``monitors`` summed over every process of the directory.

    ``include_remote`` adds monitors that only other processes have (default: when one
    of ``monitors`` is exposed in the default registry). Falls back to the local
    families when multi-process mode is off.
    """
    path = directory()
    if path is None:
        return live_families(monitors)
    mark_scraped(path)
    now = time.time() if now is None else now
    states = read_directory(path, own=_flush_all(path, monitors))
    if include_remote is None:
        include_remote = any(m.registry is DEFAULT_REGISTRY for m in monitors)
    by_key: dict[Key, list[tuple[ProcessState, dict[str, Any]]]] = {}
    for state in states:
        for key, entry in state.monitors.items():
            by_key.setdefault(key, []).append((state, entry))
    local = {_key(m): m for m in monitors}
    keys = list(local)
    if include_remote:
        keys += [
            k
            for k, items in by_key.items()
            if k not in local and any(e.get("registry") == "default" for _, e in items)
        ]
    profiles = _Profiles(path)
    note = _note_error(monitors)
    families: list[Family] = []
    for key in keys:
        items = by_key.get(key)
        if not items:  # e.g. not in this process's state: show what this process has
            families.extend(local[key].collect())
            continue
        merged = merged_monitor_families(key, items, profiles, now, note)
        _LAST_MERGED[key] = merged
        families.extend(merged)
    return families


def _flush_all(path: str, monitors: list[Monitor]) -> bytes | None:
    """Fold and write here, ask every other live worker to do the same (bounded wait).

    Returns this process's latest state, which stands in for its file when the
    directory refused the write.
    """
    with contextlib.suppress(Exception):  # counted and logged by write()
        WRITER.write(fold=True)
    try:
        stuck = request_flushes(path)
    except Exception as exc:
        _health_of(monitors).error("multiprocess_flush", exc)
        stuck = []
    if stuck:
        health = _health_of(monitors)
        with health._lock:
            health.internal_errors["multiprocess_flush_timeout"] += len(stuck)
        health.note(
            "flush_timeout",
            "modelmon: worker(s) %s did not flush within %.1f s; their last state is used",
            stuck,
            FLUSH_WAIT_S,
        )
    return WRITER.last_bytes


# The last merged families of each monitor: what a scrape shows if merging fails
# outright, so no counter ever goes back to one process's own numbers.
_LAST_MERGED: dict[Key, list[Family]] = {}


def family_source(monitors: list[Monitor]) -> list[Family]:
    """The :class:`ModelmonCollector` family source: merged in multi-process mode."""
    if directory() is None:
        return live_families(monitors)
    try:
        return collect_merged(monitors)
    except Exception as exc:  # never fail a scrape, never show less than before
        for monitor in monitors[:1]:
            monitor.health.error("multiprocess_collect", exc)
        families: list[Family] = []
        for monitor in monitors:
            last = _LAST_MERGED.get(_key(monitor))
            families.extend(last if last is not None else monitor.collect())
        return families


class MultiprocessCollector:
    """A prometheus-client collector of every monitor (and HTTP metric) in the directory.

    The one line prometheus-client multiprocess users add: their ``/metrics`` builds a
    fresh registry that only holds prometheus-client's ``MultiProcessCollector``, so
    modelmon's collector (in the default registry) is never asked::

        registry = CollectorRegistry()
        prometheus_client.multiprocess.MultiProcessCollector(registry)
        modelmon.multiprocess.MultiprocessCollector(registry)  # + modelmon's series

    A scrape first folds and writes this process's state (it sees every call this
    worker made), then merges every worker's file. Also for a ``/metrics`` endpoint
    served from a process without monitors of its own.
    """

    def __init__(self, registry: Any = None, path: str | None = None) -> None:
        if registry is not None and getattr(registry, _ATTR, None) is not None:
            raise ConfigurationError(
                "this registry already exposes modelmon's series (it is the registry the "
                "monitors were created in): a MultiprocessCollector there would duplicate them"
            )
        self.path = path
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from .prometheus import to_prometheus

        path = self.path or directory()
        if path is None:
            return
        if path == directory():
            with contextlib.suppress(Exception):  # counted and logged by write()
                WRITER.write(fold=True)  # read-your-writes for the scraped worker
        try:  # and for every other worker: they flush before the files are read
            request_flushes(path)
        except Exception as exc:
            _HEALTH.note("flush", "modelmon: cannot ask the workers to flush: %r", exc)
        mark_scraped(path)
        states = read_directory(path)
        by_key: dict[Key, list[tuple[ProcessState, dict[str, Any]]]] = {}
        for state in states:
            for key, entry in state.monitors.items():
                by_key.setdefault(key, []).append((state, entry))
        profiles = _Profiles(path)
        now = time.time()
        families: list[Family] = []
        for key, items in sorted(by_key.items()):
            families.extend(merged_monitor_families(key, items, profiles, now, _note_error([])))
        families.extend(_merged_http_states(states))
        yield from to_prometheus(families)


# --- is modelmon's data read? (prometheus-client multiprocess users) ----------------------

SCRAPED_NAME = "modelmon_scraped"
UNREAD_WARNING_S = 60.0
UNREAD_WARNING_ENV = "MODELMON_UNREAD_WARNING_S"  # overrides UNREAD_WARNING_S (seconds)


def _unread_warning_s() -> float:
    try:
        return float(os.environ.get(UNREAD_WARNING_ENV, UNREAD_WARNING_S))
    except ValueError:
        return UNREAD_WARNING_S


def mark_scraped(path: str) -> None:
    """Note in the directory that a scrape read modelmon's merged series (never raises)."""
    try:
        with open(os.path.join(path, SCRAPED_NAME), "a"):
            pass
    except OSError:
        pass


class _UnreadCheck:
    """Warns once when prometheus-client's multiprocess recipe scrapes without modelmon.

    The sign: ``PROMETHEUS_MULTIPROC_DIR`` names the directory, prometheus-client's own
    ``*.db`` files are in it (its multiprocess mode is in use), this process has been
    writing modelmon's state for :data:`UNREAD_WARNING_S` (or ``MODELMON_UNREAD_WARNING_S``
    seconds), and no scrape has ever read
    modelmon's series from the directory (:func:`mark_scraped` leaves a file).
    """

    def __init__(self) -> None:
        self.since: float | None = None
        self.warned = False

    def check(self, path: str, now: float) -> bool:
        """Log the warning if due; True when it was logged (now or before)."""
        if self.warned:
            return True
        prometheus_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not prometheus_dir or os.path.abspath(prometheus_dir) != os.path.abspath(path):
            return False
        if self.since is None:
            self.since = now
        if now - self.since < _unread_warning_s():
            return False
        try:
            listing = os.listdir(path)
        except OSError:
            return False
        if SCRAPED_NAME in listing or not any(f.endswith(".db") for f in listing):
            return False
        logger.warning(
            "modelmon: PROMETHEUS_MULTIPROC_DIR=%s holds prometheus-client's multiprocess "
            "files, but no scrape has read modelmon's series for %.0f s: a /metrics built "
            "on a fresh CollectorRegistry with prometheus_client.multiprocess."
            "MultiProcessCollector needs one more line, "
            "modelmon.multiprocess.MultiprocessCollector(registry) (see "
            "docs/quickstart-notes.md)",
            path,
            now - self.since,
        )
        self.warned = True
        return True


UNREAD = _UnreadCheck()


# --- dead processes -----------------------------------------------------------------------


@contextlib.contextmanager
def _directory_lock(path: str) -> Iterator[None]:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(os.path.join(path, LOCK_NAME), flags, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def mark_process_dead(pid: int, path: str | None = None) -> bool:
    """Drop a dead worker's live gauges, keep its counters; returns True if a file was absorbed.

    For gunicorn's ``child_exit`` hook (in ``gunicorn.conf.py``)::

        from modelmon.multiprocess import mark_process_dead

        def child_exit(server, worker):
            mark_process_dead(worker.pid)

    The worker's aggregates are merged into ``modelmon_archive.state`` (under a file
    lock) and its file is deleted, so the directory does not grow with restarts.
    """
    path = path or directory()
    if path is None:
        raise ConfigurationError(
            "mark_process_dead needs MODELMON_MULTIPROC_DIR (or PROMETHEUS_MULTIPROC_DIR) or path="
        )
    if pid == os.getpid():
        raise ConfigurationError("mark_process_dead called with this process's own pid")
    with _directory_lock(path):
        return _absorb(path, pid)


def _absorb_foreign(path: str, pid: int, token: str) -> None:
    """An old file of our pid (pid reuse): archive it before we overwrite it."""
    target = _pid_path(path, pid)
    if not os.path.exists(target):
        return
    try:
        state = _read(target, alive=False)
    except Exception:
        return
    if state is not None and state.token != token:
        with _directory_lock(path):
            _absorb(path, pid)


def _absorb(path: str, pid: int) -> bool:
    """Keep a dead process's entry, gauges stripped, in a file of its own; delete its file.

    One file per dead process (``modelmon_dead_<pid>_<token>.state``): absorbing costs
    one file, whatever the number of dead workers (the single archive it replaces was
    read and rewritten whole each time). Entries are not summed into one: readers merge
    every entry in the same (pid, token) order wherever it is stored, so float sums stay
    bit-identical and no counter moves backwards, even by a rounding error.
    """
    target = _pid_path(path, pid)
    data = read_bytes(target)
    if data is None:
        return False
    dead = decode(data)
    state = _parse(dead, alive=False)  # validate before archiving
    dead_path = os.path.join(path, f"modelmon_dead_{state.pid}_{state.token}.state")
    legacy = _read_archive(os.path.join(path, ARCHIVE_NAME))["processes"]
    if not os.path.exists(dead_path) and all(p["token"] != state.token for p in legacy):
        for entry in dead["monitors"]:
            entry["live"] = [item for item in entry.get("live", []) if _is_counter(item[0])]
        _atomic_write(dead_path, encode(dead))
    os.unlink(target)
    return True


def _is_counter(spec_name: str) -> bool:
    try:
        return names.by_name(spec_name).kind == "counter"
    except KeyError:
        return False


def _read_archive(path: str) -> dict[str, Any]:
    return _read_archive_bytes(path, read_bytes(path))


def _read_archive_bytes(path: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"format": ARCHIVE_FORMAT, "version": FORMAT_VERSION, "processes": []}
    doc = decode(data)
    if not isinstance(doc, dict) or doc.get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"{path} is not a modelmon archive")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported archive version {doc.get('version')!r}")
    return doc


# --- fork: the child starts from empty aggregates ----------------------------------------


def reset_monitor(monitor: Monitor) -> None:
    """Make ``monitor`` count only what this process does from now on (after ``fork``).

    Calls pending in the parent's buffer and the parent's folded counts stay the
    parent's: the parent reports them itself, so nothing is counted twice.
    """
    monitor.restart_in_child(fresh_like)


_ready_pid = os.getpid()  # the process whose state is its own (set again after a fork)


def _after_fork_in_child() -> None:
    global _ready_pid
    WRITER.after_fork()
    LISTENER.after_fork()
    for metrics in live_http_metrics():
        with contextlib.suppress(Exception):
            metrics.reset()
    monitors = monitor_registry.monitors()
    for monitor in monitors:
        with contextlib.suppress(Exception):
            reset_monitor(monitor)
    _ready_pid = os.getpid()
    if monitors and _installed:
        LISTENER.ensure()


_installed = False


def live_http_metrics() -> list[HttpMetrics]:
    """The HTTP metrics of this process (none unless the integrations were imported)."""
    module = sys.modules.get("modelmon.integrations._http")
    return list(module.live_http_metrics()) if module is not None else []


def merged_http_families(local: list[HttpMetrics]) -> list[Family]:
    """The :class:`HttpCollector` family source: HTTP metrics summed over every process."""
    path = directory()
    if path is None:
        return [f for m in local for f in m.collect()]
    try:
        with contextlib.suppress(Exception):  # counted and logged by write()
            WRITER.write(fold=False)
        return _merged_http_states(read_directory(path, own=WRITER.last_bytes))
    except Exception as exc:  # never fail a scrape: fall back to this process's view
        logger.warning("modelmon: cannot merge multi-process HTTP metrics: %r", exc)
        return [f for m in local for f in m.collect()]


def _merged_http_states(states: list[ProcessState]) -> list[Family]:
    """The HTTP metrics of ``states`` summed, one set per namespace."""
    merged: dict[str, HttpMetrics] = {}
    for state in states:
        for st in state.http:
            ns = str(st["namespace"])
            if ns not in merged:
                from ..integrations._http import HttpMetrics

                merged[ns] = HttpMetrics(ns, [float(b) for b in st["bounds"]])
            merged[ns].merge_state(st)
    return [f for m in merged.values() for f in m.collect()]


def install() -> None:
    """Turn multi-process support on (idempotent); it stays dormant until the variable is set."""
    global _installed
    if _installed:
        return
    from .prometheus import FAMILY_SOURCE

    monitor_registry.on(monitor_registry.AFTER_FOLD, _on_fold)
    monitor_registry.on(monitor_registry.FOLDER_STARTED, LISTENER.ensure)
    monitor_registry.provide(FAMILY_SOURCE, family_source)
    atexit.register(_flush_at_exit)
    _installed = True


# At import, not in install(): a process forked from one that merely imported this
# module (a gunicorn master reading its config) must still write under its own pid.
monitor_registry.on(monitor_registry.AFTER_FORK, _after_fork_in_child)
