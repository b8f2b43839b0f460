"""All pairs of 64-bit perceptual hashes within Hamming distance k: hashes in, pairs out, without comparing all pairs.

The hashes are pHashes from `imagehash` (checked for an index there: it computes hashes and the distance of one
pair, `a - b`, but has no structure to find every close pair among n hashes, so the search is written here).

Multi-index hashing: the 64 bits are cut into k+1 chunks. Two hashes at distance ≤ k differ in at most k bits, so by
pigeonhole they agree exactly on at least one chunk. For each chunk the rows are sorted by that chunk's value; the
pairs inside a run of equal values are the candidates, verified with the full popcount. A pair that agrees on
several chunks is kept only in the first of them, so every pair comes out exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 1 << 20  # pairs buffered before a block is handed out: memory stays bounded however large the buckets


def chunks(k: int) -> list[tuple[int, int]]:
    """(shift, width) of the k+1 chunks the 64 bits are cut into, widths as even as possible."""
    if not 0 <= k < 64:
        raise ValueError(f"distance k must be in 0..63, got {k}")
    n = k + 1
    widths = [64 // n + (1 if c < 64 % n else 0) for c in range(n)]
    return [(sum(widths[:c]), w) for c, w in enumerate(widths)]


def hashes_to_uint64(bits: np.ndarray) -> np.ndarray:
    """(n, 64) booleans (an imagehash `.hash` flattened per row) as n uint64, the first bit the highest."""
    packed = np.packbits(np.asarray(bits, dtype=bool).reshape(len(bits), 64), axis=1)
    return packed.view(">u8").ravel().astype(np.uint64)


def near_pairs(hashes: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair i < j with popcount(hashes[i] ^ hashes[j]) ≤ k, once each, in blocks of (i, j, distance) arrays."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    masks = [np.uint64(((1 << w) - 1) << s) for s, w in chunks(k)]
    buffered: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    size = 0
    for c, mask in enumerate(masks):
        for i, j in _bucket_pairs(h & mask):
            x = h[i] ^ h[j]
            d = np.bitwise_count(x)
            keep = d <= k
            i, j, x, d = i[keep], j[keep], x[keep], d[keep]
            # a pair agreeing on an earlier chunk was already found there: keep it only at its first agreeing chunk
            first = np.ones(len(x), dtype=bool)
            for earlier in masks[:c]:
                first &= (x & earlier) != 0
            if first.any():
                buffered.append((np.minimum(i, j)[first], np.maximum(i, j)[first], d[first].astype(np.int8)))
                size += int(first.sum())
            if size >= BLOCK:
                yield _concat(buffered)
                buffered, size = [], 0
    if buffered:
        yield _concat(buffered)


def _bucket_pairs(keys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All (i, j) of rows with equal keys, one offset at a time: step o pairs each sorted row with the one o after.

    The rows still in a run shrink at every step, so the work is the number of candidate pairs and one step holds
    at most n of them, whatever the size of the largest bucket.
    """
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    active = np.flatnonzero(ks[1:] == ks[:-1])  # sorted positions p whose run goes on at p + 1
    offset = 1
    while len(active):
        yield order[active], order[active + offset]
        offset += 1
        active = active[active + offset < len(ks)]
        active = active[ks[active + offset] == ks[active]]


def _concat(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (i, j, distance) block out of several."""
    return tuple(np.concatenate(parts) for parts in zip(*blocks, strict=True))  # type: ignore[return-value]

