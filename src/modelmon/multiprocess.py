"""Multi-process mode for pre-forking servers (gunicorn, uvicorn ``--workers``).

Set ``MODELMON_MULTIPROC_DIR`` (or ``PROMETHEUS_MULTIPROC_DIR``) to an empty directory
for the server, before or after importing modelmon; a scrape of any worker then returns
the totals of all workers. Every worker must create the same monitors (normal for
pre-forking servers: each imports the app). In ``gunicorn.conf.py``::

    from modelmon.multiprocess import mark_process_dead, worker_exit

    def child_exit(server, worker):
        mark_process_dead(worker.pid)

(``worker_exit`` is picked up by name: the exiting worker writes its last calls; an
``atexit`` handler does it too.) A scrape asks every live worker to write what it has
and waits for them at most :data:`FLUSH_WAIT_S` (0.5 s), so it sees every call
completed before it began. See ``docs/multiprocess.md`` and ``docs/security.md``.

Clear the directory when the whole server restarts (as with prometheus-client).

prometheus-client's multiprocess recipe renders a fresh registry per scrape, which does
not hold modelmon's collector: add one line to it::

    registry = CollectorRegistry()
    prometheus_client.multiprocess.MultiProcessCollector(registry)
    modelmon.multiprocess.MultiprocessCollector(registry)
"""

from __future__ import annotations

from .exporters.multiprocess import (
    ENV_VARS,
    FLUSH_WAIT_S,
    MultiprocessCollector,
    directory,
    flush,
    install,
    mark_process_dead,
    worker_exit,
)

# Importing this module (e.g. from gunicorn.conf.py) turns the support on: install() only
# plugs hooks into the core; it creates no directory, registers no collector, starts no
# thread (tests/unit/test_multiprocess_facade.py).
install()

__all__ = [
    "ENV_VARS",
    "FLUSH_WAIT_S",
    "MultiprocessCollector",
    "directory",
    "flush",
    "mark_process_dead",
    "worker_exit",
]
