"""The multi-process directory: where it is, its file names, safe reads and atomic writes.

Anyone who can write to the directory is untrusted: readers open regular files only
(no FIFO, device, directory or symlink), at most :data:`MAX_STATE_BYTES` each; writers
replace files atomically (a temp file, then ``os.replace``) with mode 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator

from ..._internal.health import Health

logger = logging.getLogger("modelmon")

ENV_VARS: tuple[str, ...] = ("MODELMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
MIN_WRITE_INTERVAL_S = 0.1
HTTP_POLL_S = 1.0
FORMAT = "modelmon-multiprocess"
FORMAT_VERSION = 1
ARCHIVE_NAME = "modelmon_archive.state"
LOCK_NAME = "modelmon_archive.lock"
ARCHIVE_FORMAT = "modelmon-multiprocess-archive"
ARCHIVE_VERSION = 2  # one summed state (version 1 kept a list of dead processes)
PID_FILE = re.compile(r"^modelmon_([1-9][0-9]{0,9})\.state$")
# A dead worker's counters until the archive folds them (see archive.py):
# ``modelmon_dead_<pid>_<token>.state``.
DEAD_FILE = re.compile(r"^modelmon_dead_([1-9][0-9]{0,9})_([A-Za-z0-9_-]{1,64})\.state$")
FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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
HEALTH = Health()  # directory problems seen where no monitor is at hand (logged once a minute)

Key = tuple[str, str, str]  # namespace, model, version


def directory() -> str | None:
    """The multi-process directory from the environment, or None (single-process mode)."""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def pid_path(path: str, pid: int) -> str:
    return os.path.join(path, f"modelmon_{pid}.state")


def atomic_write(target: str, data: bytes) -> None:
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


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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


def listing(path: str, pattern: re.Pattern[str] = PID_FILE) -> list[str]:
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
                    HEALTH.note("mp_entry", "modelmon: ignoring %s: not a regular file", entry.name)
    return names_


@contextlib.contextmanager
def directory_lock(path: str) -> Iterator[None]:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(os.path.join(path, LOCK_NAME), flags, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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


class UnreadCheck:
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


UNREAD = UnreadCheck()


def profile_path(path: str, fingerprint: str) -> str:
    return os.path.join(path, f"modelmon_profile_{fingerprint}.json")
