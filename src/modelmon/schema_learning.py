"""Feature names learned from traffic, so one hostile request cannot choose them.

Without ``feature_names=`` or a reference, a monitor whose inputs are dicts (JSON
objects, pydantic models, pandas Series) learns its feature names from the traffic.
A request alone cannot fix them: a key becomes a feature (a label value on
``/metrics``) only once it has been seen in :data:`CONFIRM_REQUESTS` different
requests, its name is printable and at most :data:`MAX_NAME_CHARS` characters, and at
most ``max_features`` are kept (in the order they first appeared). Until two requests
have arrived, the inputs wait (at most :data:`PENDING_ROWS` rows; beyond that they are
counted in ``modelmon_dropped_total{reason="schema_learning"}``) and are folded once
the names are fixed, so honest traffic loses nothing.

Inputs with columns fixed by the serving code (DataFrames, numpy arrays, lists of
rows) keep the first call's columns, as before, capped by ``max_features``. See
``docs/security.md``.

>>> from modelmon.extract import Chunk, FeatureSchema
>>> schema = FeatureSchema()
>>> learner = SchemaLearner(schema)
>>> hostile = Chunk("dicts", [{f"evil{i}": 1.0 for i in range(100)} | {"age": 30.0}])
>>> learner.offer([hostile]) is None  # one request: nothing is fixed yet
True
>>> len(learner.offer([Chunk("dicts", [{"age": 41.0, "income": 2.0}])]))
2
>>> schema.names  # the key seen in two requests; the rest are never labels
('age',)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ._internal.health import Health
from .extract import Chunk, FeatureSchema

CONFIRM_REQUESTS = 2  # requests a key must appear in to become a feature
MAX_NAME_CHARS = 64  # longer keys never become features
PENDING_ROWS = 1024  # rows kept while the names are being learned
_KEYS_READ = 1024  # keys read per request (a request with a million keys costs this)
MAX_KEYS = 4096  # keys counted at once while learning


def learned_chunks(
    learner: SchemaLearner | None, chunks: list[Chunk], health: Health
) -> list[Chunk] | None:
    """``chunks`` once the schema is fixed (with those kept while learning), else None."""
    if learner is None or learner.schema.fixed:
        return chunks
    out = learner.offer(chunks)
    if learner.dropped_rows:
        health.drop("schema_learning", learner.dropped_rows)
        learner.dropped_rows = 0
    return out


def valid_name(name: str) -> bool:
    """A feature name fit for a label value: printable, non-blank, at most 64 chars.

    >>> valid_name("sepal length (cm)"), valid_name("x" * 65), valid_name("a\\nb")
    (True, False, False)
    """
    return 0 < len(name) <= MAX_NAME_CHARS and name.isprintable() and not name.isspace()


class SchemaLearner:
    """Fixes a :class:`~modelmon.extract.FeatureSchema` from dict traffic (see above)."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.requests = 0
        self.seen: Counter[str] = Counter()  # requests each valid key appeared in
        self.order: dict[str, None] = {}  # valid keys in order of first appearance
        self.pending: list[Chunk] = []
        self.pending_rows = 0
        self.dropped_rows = 0  # read and reset by the monitor

    def offer(self, chunks: list[Chunk]) -> list[Chunk] | None:
        """The chunks to vectorise now (those kept while learning first), or None.

        Chunks that are not dicts, arriving before any dict, fix the schema the usual
        way (their columns): they are returned at once.
        """
        if not any(c.kind == "dicts" for c in chunks) and not self.pending:
            return chunks
        for chunk in chunks:
            if chunk.kind == "dicts":
                self._count(chunk)
        names = [n for n in self.order if self.seen[n] >= CONFIRM_REQUESTS]
        if not names:  # wait for a second request (only the waiting rows are bounded)
            for chunk in chunks:
                self._keep(chunk)
            return None
        self.schema.fix_names(names)
        kept, self.pending, self.pending_rows = self.pending, [], 0
        self.seen.clear()
        self.order.clear()
        return kept + chunks

    def _count(self, chunk: Chunk) -> None:
        # A run of single-dict calls arrives as one chunk of ``plain_dicts``: each dict
        # is a request. Any other dict chunk is one call's rows: one request.
        requests = chunk.payload if chunk.plain_dicts else chunk.payload[:1]
        for row in requests:
            self.requests += 1
            if not isinstance(row, Mapping):
                continue
            keys: set[str] = set()
            for i, key in enumerate(row):
                if i >= _KEYS_READ:
                    break
                name = key if type(key) is str else str(key)
                if name not in keys and valid_name(name):
                    keys.add(name)
                    self.order.setdefault(name, None)
            self.seen.update(keys)
            if len(self.order) > MAX_KEYS:  # junk keys: forget those seen once
                for name in [n for n in self.order if self.seen[n] < 2]:
                    del self.order[name]
                    del self.seen[name]

    def _keep(self, chunk: Chunk) -> None:
        room = PENDING_ROWS - self.pending_rows
        n = chunk.n_rows
        if n <= room:
            self.pending.append(chunk)
            self.pending_rows += n
            return
        self.dropped_rows += n - room
        if room > 0:
            payload: Any = chunk.payload[:room]
            self.pending.append(Chunk(chunk.kind, payload, chunk.columns, chunk.plain_dicts))
            self.pending_rows += room
