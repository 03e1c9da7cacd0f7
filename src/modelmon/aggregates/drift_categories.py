"""The categorical features of a drift group counted in one pass over all their columns.

Per value, a categorical feature costs one dict lookup. Column by column, the lookups
visit the batch's string objects in column order, scattered in memory (each row's values
were allocated together): twice the cost of visiting them row by row. So the group
keeps one table from every category of every member to a code (0: missing, 1: a
category no member knows), and per member the test cell and the exported bin of each
code; a fold looks the whole ``(rows, members)`` block up row by row, then counts the
test cells and the bins of every member with one ``bincount`` each.

The counts are exactly those of :meth:`FeatureProfile.test_index` and
:meth:`FeatureProfile.bins_of_test_cells` member by member (the first of duplicate
categories, unknown values in ``__other__``, missing values in no cell).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..batch import FeatureFrame, IntArray, ObjArray
from ..category_vocabulary import CodedColumns
from ..profile import FeatureProfile

MISSING, UNKNOWN = 0, 1
# Lookup tables larger than this (members x distinct categories; two int32 tables, 2 MiB
# at most per group, shared by the aggregates of one profile, see drift_shared) are not
# built: the fold then counts member by member, as before (memory stays bounded).
MAX_TABLE_CELLS = 1 << 18


@dataclass(frozen=True)
class CategoryCodes:
    """Codes of a group's categorical members (see the module doc).

    ``test_of[j, code]``: the flat test-count index of ``code`` for the ``j``-th
    categorical member (``test_total`` for none); ``bin_of[j, code]``: its flat bin
    index (``total_bins`` for none).
    """

    table: dict[Any, int]
    test_of: npt.NDArray[np.int32]
    bin_of: npt.NDArray[np.int32]
    test_total: int
    total_bins: int

    @classmethod
    def of(
        cls,
        members: Sequence[FeatureProfile],
        categorical: Sequence[int],
        offsets: Sequence[int],
        test_offsets: Sequence[int],
        test_total: int,
        total_bins: int,
    ) -> CategoryCodes | None:
        """The codes of ``members[categorical]``; None when the table would be too big."""
        table: dict[Any, int] = {None: MISSING}
        for i in categorical:
            for c in members[i].test_categories[:-1]:
                table.setdefault(c, len(table) + 1)  # codes 2.. (1 is UNKNOWN)
        n_codes = len(table) + 1
        if not categorical or len(categorical) * n_codes > MAX_TABLE_CELLS:
            return None
        test_of = np.full((len(categorical), n_codes), test_total, dtype=np.int32)
        bin_of = np.full((len(categorical), n_codes), total_bins, dtype=np.int32)
        codes = np.array([code for value, code in table.items() if value is not None])
        values = [value for value in table if value is not None]
        for j, i in enumerate(categorical):
            member = members[i]
            cells = np.full(n_codes, -1, dtype=np.int64)
            cells[UNKNOWN] = len(member.test_categories) - 1
            if values:
                cells[codes] = member.test_index(np.array(values, dtype=object), text=True)
            known = cells >= 0
            if test_offsets[i] >= 0:
                test_of[j, known] = test_offsets[i] + cells[known]
            bins = member.bins_of_test_cells(cells[known])
            bin_of[j, known] = offsets[i] + bins
        return cls(table, test_of, bin_of, test_total, total_bins)

    def count(
        self,
        columns: Mapping[int, ObjArray],
        n_rows: int,
        counts: IntArray,
        test_counts: IntArray | None,
    ) -> None:
        """Add the values of ``columns`` (categorical member ``j`` -> its ``str`` or
        ``None`` values) to the flat bin ``counts`` and, when given, ``test_counts``."""
        js = list(columns)
        if not js or n_rows == 0:
            return
        block = np.empty((n_rows, len(js)), dtype=object)
        for c, j in enumerate(js):
            block[:, c] = columns[j]
        items = block.ravel().tolist()  # row by row: each row's strings sit together
        found = map(self.table.get, items, itertools.repeat(UNKNOWN))
        codes = np.fromiter(found, np.intp, len(items)).reshape(n_rows, len(js))
        self._add_codes(codes, js, counts, test_counts)

    def count_frame(
        self,
        frame: FeatureFrame,
        columns: Sequence[int],
        counts: IntArray,
        test_counts: IntArray | None,
    ) -> None:
        """:meth:`count` of a frame's categorical columns (``columns[j]``: the frame column
        of categorical member ``j``), from their codes when extraction coded them."""
        if isinstance(frame.categorical, CodedColumns):
            self.count_coded(frame.categorical, columns, counts, test_counts)
            return
        values = {j: frame.categorical[c] for j, c in enumerate(columns) if c in frame.categorical}
        self.count(values, frame.n_rows, counts, test_counts)

    def count_coded(
        self,
        coded: CodedColumns,
        columns: Sequence[int],
        counts: IntArray,
        test_counts: IntArray | None,
    ) -> None:
        """As :meth:`count`, from columns coded at extraction. The vocabulary's codes map
        to this table's with one array (the lookup :meth:`count` makes per value, made
        once per distinct value)."""
        members = [(j, coded.position(col)) for j, col in enumerate(columns)]
        present = [(j, c) for j, c in members if c is not None]
        if not present or coded.codes.shape[0] == 0:
            return
        js = [j for j, _ in present]
        positions = [c for _, c in present]
        ours = coded.vocabulary.mapped(self.table, self._code_of)
        whole = positions == list(range(coded.codes.shape[1]))  # every column, in order
        codes = ours[coded.codes if whole else coded.codes[:, positions]]
        self._add_codes(codes, js, counts, test_counts)

    def _add_codes(
        self, codes: IntArray, js: list[int], counts: IntArray, test_counts: IntArray | None
    ) -> None:
        """Count ``codes`` (``(rows, len(js))``, this table's codes of members ``js``; a
        new array, offset in place) into ``counts`` and, when given, ``test_counts``."""
        codes += np.asarray(js, dtype=np.intp) * self.bin_of.shape[1]  # flat table index
        flat = codes.ravel()
        bins = np.bincount(self.bin_of.ravel()[flat], minlength=self.total_bins + 1)
        counts += bins[: self.total_bins]
        if test_counts is not None:
            cells = np.bincount(self.test_of.ravel()[flat], minlength=self.test_total + 1)
            test_counts += cells[: self.test_total]

    def _code_of(self, value: str | None) -> int:
        return MISSING if value is None else self.table.get(value, UNKNOWN)
