"""Each distinct input once: the mapping between a call's positions and what is sent.

Corpora of chunked documents repeat headers, footers and boilerplate, and a batch of images
often repeats a logo. A job sends each distinct input once and fans its vector out to every
position that holds it, so the result still has one row per input, in input order, and the
usage is what was billed. Errors name the caller's positions (all of them), never the
distinct rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Distinct"]


class Distinct:
    """The distinct keys of a call, in first-seen order, and where each one stands.

    Args:
        keys: One hashable key per input position (the text, or the encoded content).
    """

    def __init__(self, keys: Sequence[Hashable]) -> None:
        slot: dict[Hashable, int] = {}
        inverse: list[int] = []
        self.first: list[int] = []  # the first position of each distinct key
        for pos, key in enumerate(keys):
            row = slot.setdefault(key, len(slot))
            if row == len(self.first):
                self.first.append(pos)
            inverse.append(row)
        self.size = len(inverse)
        self.count = len(slot)
        self.identity = self.count == self.size
        self.inverse: npt.NDArray[np.intp] = np.asarray(inverse, dtype=np.intp)
        self._counts = np.bincount(self.inverse, minlength=self.count)
        self._positions: list[list[int]] | None = None

    def origin(self, rows: Sequence[int]) -> tuple[int, ...]:
        """Every caller position behind the distinct ``rows``, ascending."""
        if self.identity:
            return tuple(rows)
        if self._positions is None:
            positions: list[list[int]] = [[] for _ in range(self.count)]
            for pos, k in enumerate(self.inverse.tolist()):
                positions[k].append(pos)
            self._positions = positions
        return tuple(sorted(p for r in rows for p in self._positions[r]))

    def inputs(self, rows: Sequence[int]) -> int:
        """How many caller positions the distinct ``rows`` stand for (for progress)."""
        if self.identity:
            return len(rows)
        return int(self._counts[np.asarray(rows, dtype=np.intp)].sum())

    def pick(self, positions: Sequence[int] | None) -> npt.NDArray[np.intp] | None:
        """Distinct rows for caller ``positions`` (all when ``None``); ``None``: rows as stored."""
        if positions is None:
            return None if self.identity else self.inverse
        return self.inverse[np.asarray(positions, dtype=np.intp)]

    def done(self, rows: Sequence[int]) -> list[int]:
        """The caller positions whose distinct row is among ``rows``, ascending."""
        if self.identity:
            return sorted(rows)
        mask = np.zeros(self.count, dtype=bool)
        mask[np.asarray(rows, dtype=np.intp)] = True
        return np.flatnonzero(mask[self.inverse]).tolist()
