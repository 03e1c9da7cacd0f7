"""Multi-process mode: every worker of a pre-forking server writes its state, any worker merges.

Enabled while ``MODELMON_MULTIPROC_DIR`` (else ``PROMETHEUS_MULTIPROC_DIR``) names a
directory; the variable is read at every fold and scrape, so setting it after import
works. Each process writes the states of its monitors' aggregates to
``<dir>/modelmon_<pid>.state`` after its folds (atomically: a temp file then
``os.replace``; at most :data:`MIN_WRITE_INTERVAL_S` apart, from a background thread)
and synchronously on every scrape. A scrape folds the scraping process, writes its
file, reads every file of the directory (decoding only those that changed), rebuilds
fresh aggregates of the same kinds, ``load_state``\\ s and ``merge``\\ s them, and
renders the merged families.

What a scrape sees (read-your-writes across processes): every call that returned in the
scraping process before the scrape, and every call of another worker that returned
before it (the scrape asks every live worker to flush, waiting at most
:data:`FLUSH_WAIT_S`). Totals never go backwards: a dead worker's counters stay, and
:func:`mark_process_dead` folds them into the directory's archive.

The package, by job:

- :mod:`.files`: the directory, file names, safe reads, atomic writes;
- :mod:`.codec`: state bytes (JSON header + raw numpy buffers, never pickle) and checks;
- :mod:`.kinds`: how each aggregate class is described and rebuilt;
- :mod:`.writer`: this process's file; :mod:`.flushes`: flush requests between workers;
- :mod:`.read`: reading the directory (with a cache of parsed states);
- :mod:`.merge`: merged families and the collectors; :mod:`.archive`: dead workers;
- :mod:`.fork`: the after-fork reset and :func:`install`.

After ``fork`` the child starts from empty aggregates (the parent keeps reporting what
it folded itself), so ``gunicorn --preload`` counts each call once.
"""

from __future__ import annotations

from .archive import compact, mark_process_dead
from .codec import ProcessState, decode, encode, read_state
from .files import (
    ENV_VARS,
    FLUSH_WAIT_S,
    MAX_STATE_BYTES,
    MIN_WRITE_INTERVAL_S,
    SCRAPED_NAME,
    UNREAD_WARNING_S,
    UnreadCheck,
    directory,
    mark_scraped,
)
from .fork import after_fork_in_child, install, reset_monitor
from .kinds import AggregateKind, build, describe, fresh_like, register_kind
from .merge import (
    MultiprocessCollector,
    clear_caches,
    collect_merged,
    family_source,
    merged_http_families,
)
from .read import CACHE, read_directory
from .writer import WRITER, flush, worker_exit

__all__ = [
    "CACHE",
    "ENV_VARS",
    "FLUSH_WAIT_S",
    "MAX_STATE_BYTES",
    "MIN_WRITE_INTERVAL_S",
    "SCRAPED_NAME",
    "UNREAD_WARNING_S",
    "WRITER",
    "AggregateKind",
    "MultiprocessCollector",
    "ProcessState",
    "UnreadCheck",
    "after_fork_in_child",
    "build",
    "clear_caches",
    "collect_merged",
    "compact",
    "decode",
    "describe",
    "directory",
    "encode",
    "family_source",
    "flush",
    "fresh_like",
    "install",
    "mark_process_dead",
    "mark_scraped",
    "merged_http_families",
    "read_directory",
    "read_state",
    "register_kind",
    "reset_monitor",
    "worker_exit",
]
