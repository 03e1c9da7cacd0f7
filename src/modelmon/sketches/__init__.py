"""Mergeable streaming sketches: quantiles (relative accuracy), moments, time windows."""

from __future__ import annotations

from .ddsketch import LogSketch, add_columns
from .moments import Moments
from .window import SlidingWindow

__all__ = ["LogSketch", "Moments", "SlidingWindow", "add_columns"]
