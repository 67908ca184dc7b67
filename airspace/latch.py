"""The sparse-key latch engine: conditions of a batch's rows as sorted int keys `row * W + column`.

A batch's rows are grouped by UAV in event-time order (first/last mark each UAV's rows); a column is a
zone index (or an extra column such as "no zone"). A condition is the sorted array of keys where it holds,
so what starts and ends at each row is a set difference against the keys of the row before (the same
UAV's previous row, or for its first row the columns stored after the previous batch). Latching adds
hysteresis: a key raised at one row stays on over the following rows of its UAV while a hold test passes.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def in_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[i] in b, for b sorted."""
    if b.size == 0 or a.size == 0:
        return np.zeros(a.size, dtype=bool)
    idx = np.minimum(np.searchsorted(b, a), b.size - 1)
    return b[idx] == a


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique for int keys without its hashing path (sort, then drop repeats)."""
    if a.size < 2:
        return a.copy()
    a = np.sort(a, kind="stable")  # timsort: linear on a few sorted runs
    keep = np.empty(a.size, bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


class KeyLatch:
    """The keys of one batch. `stored` gives, per UAV with a state, (its first row, family -> the sorted
    columns on after its previous fix)."""

    def __init__(self, W: int, first: np.ndarray, last: np.ndarray,
                 stored: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        self.W, self.first, self.last, self.stored = W, first, last, stored
        self._state_keys: dict[str, np.ndarray] = {}
        self._prev: dict[str, np.ndarray] = {}

    def state_keys(self, family: str) -> np.ndarray:
        """Stored state of each UAV's first row in the batch, as keys of that row (sorted)."""
        cached = self._state_keys.get(family)
        if cached is not None:
            return cached
        W = self.W
        parts = [i * W + sets[family] for i, sets in self.stored if sets[family].size]
        self._state_keys[family] = out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return out

    def prev_keys(self, keys: np.ndarray, family: str) -> np.ndarray:
        """Keys of each row's previous state: the row before (same UAV) or the stored state."""
        W = self.W
        shifted = keys[~self.last[keys // W]] + W
        first = self.state_keys(family)
        return np.sort(np.concatenate([shifted, first]), kind="stable") if first.size else shifted

    def latch(self, raw: np.ndarray, family: str, hold: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Debounce with a lazily computed hold: a key stays on while hold(candidates) says so."""
        W, last = self.W, self.last
        D = sorted_unique(raw)
        held_all: list[np.ndarray] = []
        cand = np.concatenate([D[~last[D // W]] + W, self.state_keys(family)])
        while cand.size:
            cand = sorted_unique(cand)
            cand = cand[~in_sorted(cand, D)]
            if held_all:
                cand = cand[~in_sorted(cand, np.sort(np.concatenate(held_all), kind="stable"))]
            if not cand.size:
                break
            held = cand[hold(cand)]
            held_all.append(held)
            cand = held[~last[held // W]] + W
        return np.sort(np.concatenate([D, *held_all]), kind="stable") if held_all else D

    def latch_explicit(self, raw: np.ndarray, hold: np.ndarray, family: str) -> np.ndarray:
        """Debounce with an explicit hold set (raw within it): vectorized over runs of rows.

        A key is on when it is raw, or held and the same column was on at the UAV's previous row.
        """
        W, first = self.W, self.first
        H = sorted_unique(np.concatenate([raw, hold]))
        if not H.size:
            return H
        rows, cols = H // W, H % W
        order = np.lexsort((rows, cols))
        r, c = rows[order], cols[order]
        new_run = np.ones(r.size, bool)
        new_run[1:] = (c[1:] != c[:-1]) | (r[1:] != r[:-1] + 1) | first[r[1:]]
        seed = in_sorted(H[order], sorted_unique(raw))
        seed |= new_run & in_sorted(H[order], self.state_keys(family)) & first[r]
        pos = np.arange(r.size)
        run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
        last_seed = np.maximum.accumulate(np.where(seed, pos, -1))
        on = last_seed >= run_start
        return np.sort(H[order][on], kind="stable")

    def transitions(self, keys: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
        """(keys turned on, keys turned off: those of the previous row) of the family's final keys."""
        prev = self._prev[family] = self.prev_keys(keys, family)
        return keys[~in_sorted(keys, prev)], prev[~in_sorted(prev, keys)]

    def previous(self, family: str) -> np.ndarray:
        """The previous-row keys of the family's final keys (those transitions() was given)."""
        return self._prev[family]
