"""The SDK's own health: internal errors and dropped observations, counted and logged once.

Record-time failures never reach user code (unless ``strict``): they are counted per
stage and logged at most once per stage per minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

logger = logging.getLogger("modelmon")

LOG_INTERVAL_S = 60.0

# Series exported at zero from the start, so rates and alerts have a baseline.
KNOWN_STAGES: tuple[str, ...] = ("fold", "extract_features", "extract_outputs", "record_outcome")
KNOWN_DROP_REASONS: tuple[str, ...] = ("unsupported_input", "unsupported_output")


class Health:
    """Counts internal errors by stage and dropped observations by reason."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.internal_errors: Counter[str] = Counter(dict.fromkeys(KNOWN_STAGES, 0))
        self.dropped: Counter[str] = Counter(dict.fromkeys(KNOWN_DROP_REASONS, 0))
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every count (a forked worker starts from zero), keeping the zero series."""
        self.internal_errors = Counter(dict.fromkeys(KNOWN_STAGES, 0))
        self.dropped = Counter(dict.fromkeys(KNOWN_DROP_REASONS, 0))
        self._last_logged = {}
        self._lock = threading.Lock()

    def error(self, stage: str, exc: BaseException) -> None:
        """Count a failure at ``stage``; re-raise when strict."""
        with self._lock:
            self.internal_errors[stage] += 1
            should_log = self._due(f"error:{stage}")
        if should_log:
            logger.warning(
                "modelmon: internal error at stage %r (counted in "
                "internal_errors_total; further ones logged at most once a minute): %r",
                stage,
                exc,
                exc_info=exc,
            )
        if self.strict:
            raise exc

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` observations that could not be recorded."""
        with self._lock:
            self.dropped[reason] += n
            should_log = self._due(f"drop:{reason}")
        if should_log:
            logger.warning("modelmon: dropped %d observation(s): %s", n, reason)

    def note(self, key: str, message: str, *args: object) -> None:
        """Log ``message`` at most once a minute per ``key`` (bad input, not an error)."""
        with self._lock:
            should_log = self._due(f"note:{key}")
        if should_log:
            logger.warning(message, *args)

    def _due(self, key: str) -> bool:
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < LOG_INTERVAL_S:
            return False
        self._last_logged[key] = now
        return True

    def merge(self, other: Health) -> None:
        self.internal_errors.update(other.internal_errors)
        self.dropped.update(other.dropped)
