"""Data preflight: what is in the splits before a model sees them — class counts and imbalance, image sizes and
modes, exact duplicates within and across splits (leakage), and the same content under two labels.

Exact duplicates are found by a hash of each file's encoded bytes (blake2b, 16 bytes), read without decoding the
pixels; the same picture saved twice with different encoders is a near duplicate, not an exact one. Checked for a
library that does this over `datasets` splits: datasets offers no content hashing, cleanlab and fastdup bring
heavy dependencies for a check that is a dictionary of hashes.

Near duplicates (opt-in: `preflight(bundle, near_duplicates=k)`) decode every image for its 64-bit pHash
(`imagehash`) and list the pairs whose hashes differ in at most k bits (trainer/data/near_duplicates.py finds them
without comparing all pairs): within a split, across splits (near leakage) and under two labels. Pairs of
byte-identical files are left out of these counts: they are the exact duplicates above. Exact duplicates count the
copies beyond the first of each file; near duplicates count pairs.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.config import MULTI_LABEL
from trainer.data.multilabel import label_matrix
from trainer.data.near_duplicates import hashes_to_uint64, near_pairs
from trainer.data.splits import label_array

MAX_LISTED = 20  # offending pairs listed per kind in the report (all are counted)
_NO_PAIRS = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8))
NEAR_COUNTS = ("pairs of images whose pHashes differ in at most k of 64 bits, byte-identical pairs left out (they "
               "are exact_duplicates, counted there as copies); a pair counts once, under two labels as well")


def _encoded(ds, column: str) -> Iterator[tuple[bytes, str]]:
    """(encoded bytes, display name) per row of an Image column, without decoding it."""
    import datasets

    raw = ds.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    for i, item in enumerate(raw[column]):
        data = item.get("bytes") or (Path(item["path"]).read_bytes() if item.get("path") else b"")
        yield data, item.get("path") or f"row {i}"


def _describe(ds, column: str) -> tuple[list[str], list[str], Counter, Counter]:
    """(content hash per row, display name per row, image sizes, image modes) of an Image column, pixels unread."""
    from PIL import Image

    hashes, names, sizes, modes = [], [], Counter(), Counter()
    for data, name in _encoded(ds, column):
        hashes.append(hashlib.blake2b(data, digest_size=16).hexdigest())
        names.append(name)
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only: no pixels decoded
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
        except Exception:  # noqa: BLE001 - unreadable files are the trainer's own check (verify_images)
            modes["unreadable"] += 1
    return hashes, names, sizes, modes


def _phashes(ds, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit pHash, readable) per row of an Image column, from the decoded pixels."""
    import imagehash
    from PIL import Image

    bits, readable = np.zeros((len(ds), 64), dtype=bool), np.zeros(len(ds), dtype=bool)
    for i, (data, _) in enumerate(_encoded(ds, column)):
        try:
            with Image.open(io.BytesIO(data)) as im:
                bits[i] = imagehash.phash(im).hash.ravel()
            readable[i] = True
        except Exception:  # noqa: BLE001 - unreadable files are counted by _describe, left out of the search here
            pass
    return hashes_to_uint64(bits), readable


def _label_ids(bundle, splits: dict) -> tuple[dict, list[str]]:
    """({split: one id per row}, the name of each id): the class, or for multi-label data the row's set of classes
    (ids shared by all splits)."""
    if bundle.task != MULTI_LABEL:
        return {k: label_array(ds, bundle.label_column) for k, ds in splits.items()}, bundle.label_names
    matrices = [label_matrix(ds, bundle.label_column, len(bundle.label_names)) for ds in splits.values()]
    sets, ids = np.unique(np.concatenate(matrices), axis=0, return_inverse=True)
    ends = np.cumsum([len(m) for m in matrices])
    names = np.asarray(bundle.label_names, dtype=object)
    return (dict(zip(splits, np.split(ids.reshape(-1), ends[:-1]), strict=True)),
            [", ".join(names[row > 0]) or "(none)" for row in sets])


def _counts(ds, bundle) -> dict:
    """{class: rows} of one split (multi-label: rows holding the class), and its imbalance ratio (largest class /
    smallest non-empty class)."""
    label, label_names = bundle.label_column, bundle.label_names
    counts = label_matrix(ds, label, len(label_names)).sum(0) if bundle.task == MULTI_LABEL else \
        np.bincount(label_array(ds, label), minlength=len(label_names))
    present = counts[counts > 0]
    return {"per_class": {n: int(c) for n, c in zip(label_names, counts, strict=True)},
            "imbalance_ratio": round(float(present.max() / present.min()), 2) if len(present) else None}


def preflight(bundle, near_duplicates: int | None = None) -> dict:
    """The preflight report of a DataBundle (images: sizes, modes, duplicates; every modality: counts).

    near_duplicates=k adds the perceptual search (pHash distance ≤ k), which decodes every image: opt-in, as the
    quick report also runs at training start.
    """
    splits = {name: ds for name, ds in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))
              if ds is not None}
    report: dict = {"dataset": bundle.source.get("dataset"), "skipped_files": bundle.skipped,
                    "splits": {name: {"rows": len(ds), **_counts(ds, bundle)}
                               for name, ds in splits.items()}}
    if bundle.modality != "image":
        return report
    seen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # hash → (split, name, label)
    rows: dict[str, list] = defaultdict(list)  # per row, over all splits: what the near search reports
    split_ids, label_names = _label_ids(bundle, splits)
    for s, (name, ds) in enumerate(splits.items()):
        hashes, names, sizes, modes = _describe(ds, bundle.input_column)
        labels = split_ids[name]
        for h, n, y in zip(hashes, names, labels, strict=True):
            seen[h].append((name, n, label_names[y]))
        report["splits"][name].update({"sizes": dict(sizes.most_common(10)), "modes": dict(modes)})
        rows["content"] += hashes
        rows["names"] += names
        rows["labels"].append(labels)
        rows["split"].append(np.full(len(ds), s))
    report.update(_duplicates(seen))
    if near_duplicates is not None:
        start = time.perf_counter()
        phashes, readable = zip(*(_phashes(ds, bundle.input_column) for ds in splits.values()), strict=True)
        rows.update(phash=np.concatenate(phashes), readable=np.concatenate(readable),
                    labels=np.concatenate(rows["labels"]), split=np.concatenate(rows["split"]),
                    content=np.unique(rows["content"], return_inverse=True)[1])
        near = _near_duplicates(rows, near_duplicates, list(splits), label_names)
        report["near_duplicates"] = {**near, "seconds": round(time.perf_counter() - start, 1)}
    return report


def _near_duplicates(rows: dict, k: int, split_names: list[str], label_names: list[str]) -> dict:
    """Pairs whose pHashes differ in ≤ k bits (byte-identical pairs left out): per split, across, two labels."""
    n_splits = len(split_names)
    within, across = np.zeros(n_splits, dtype=np.int64), np.zeros(n_splits * n_splits, dtype=np.int64)
    n_conflicts, listed = 0, {"within": _NO_PAIRS, "across": _NO_PAIRS, "labels": _NO_PAIRS}
    hashed = np.flatnonzero(rows["readable"])
    for i, j, d in near_pairs(rows["phash"][hashed], k):
        i, j = hashed[i], hashed[j]
        new = rows["content"][i] != rows["content"][j]  # byte-identical pairs are exact duplicates, reported there
        i, j, d = i[new], j[new], d[new]
        si, sj, yi, yj = rows["split"][i], rows["split"][j], rows["labels"][i], rows["labels"][j]
        same = si == sj
        within += np.bincount(si[same], minlength=n_splits)
        across += np.bincount(np.minimum(si, sj)[~same] * n_splits + np.maximum(si, sj)[~same],
                              minlength=n_splits * n_splits)
        conflict = (yi != yj) & (yi >= 0) & (yj >= 0)  # an unlabelled row is no second label
        n_conflicts += int(conflict.sum())
        for kind, sel in (("within", same), ("across", ~same), ("labels", conflict)):
            listed[kind] = _closest(listed[kind], (i[sel], j[sel], d[sel]))

    shown = {kind: _named(pairs, rows, split_names, label_names) for kind, pairs in listed.items()}
    across_named = {"/".join(sorted((split_names[a], split_names[b]))): int(across[a * n_splits + b])
                    for a in range(n_splits) for b in range(a + 1, n_splits) if across[a * n_splits + b]}
    return {"k": k, "hash": "pHash, 64 bits (imagehash)", "counts": NEAR_COUNTS,
            "within_split": {split_names[s]: int(c) for s, c in enumerate(within) if c},
            "within_examples": shown["within"], "across_splits": across_named, "across_examples": shown["across"],
            "label_conflicts": {"count": n_conflicts, "examples": shown["labels"]},
            "unhashed": int((~rows["readable"]).sum()), "leakage": bool(across_named)}


def _named(pairs: tuple, rows: dict, split_names: list[str], label_names: list[str]) -> list[dict]:
    """(i, j, distance) arrays as the report lists them: both files with their split and label, and the distance."""
    def row(r: int) -> str:
        y = rows["labels"][r]
        return f"{split_names[rows['split'][r]]}: {rows['names'][r]} ({label_names[y] if y >= 0 else 'unlabelled'})"
    return [{"files": [row(int(a)), row(int(b))], "distance": int(c)} for a, b, c in zip(*pairs, strict=True)]


def _closest(kept: tuple, new: tuple) -> tuple:
    """The MAX_LISTED closest pairs (distance, then row order) of those kept so far and a new block."""
    i, j, d = (np.concatenate(parts) for parts in zip(kept, new, strict=True))
    if len(d) > MAX_LISTED:  # a cheap cut first: a block can hold a million pairs
        cut = np.partition(d, MAX_LISTED - 1)[MAX_LISTED - 1]
        i, j, d = i[d <= cut], j[d <= cut], d[d <= cut]
    order = np.lexsort((j, i, d))[:MAX_LISTED]
    return i[order], j[order], d[order]


def _duplicates(seen: dict) -> dict:
    """Exact duplicates within a split, across splits (leakage), and content carrying two labels."""
    within, across, conflicting = Counter(), Counter(), []
    across_pairs: list = []
    for copies in seen.values():
        if len(copies) < 2:
            continue
        by_split = Counter(split for split, _, _ in copies)
        for split, n in by_split.items():
            within[split] += n - 1
        if len(by_split) > 1:
            key = "/".join(sorted(by_split))
            across[key] += 1
            if len(across_pairs) < MAX_LISTED:
                across_pairs.append([f"{s}: {n} ({y})" for s, n, y in copies[:4]])
        if len({y for _, _, y in copies}) > 1 and len(conflicting) < MAX_LISTED:
            conflicting.append([f"{s}: {n} ({y})" for s, n, y in copies[:4]])
    n_conflicting = sum(len({y for _, _, y in c}) > 1 for c in seen.values())
    return {"exact_duplicates": {"within_split": dict(within), "across_splits": dict(across),
                                 "across_examples": across_pairs},
            "label_conflicts": {"count": n_conflicting, "examples": conflicting},
            "leakage": bool(across)}


def summary_lines(report: dict) -> list[str]:
    """The report for people: one line per split, then the warnings (leakage loudest)."""
    lines = []
    for name, s in report["splits"].items():
        sizes = ", ".join(list(s.get("sizes", {}))[:3])
        lines.append(f"{name}: {s['rows']:,} rows, {len(s['per_class'])} classes, imbalance x{s['imbalance_ratio']}"
                     + (f", sizes {sizes}" if sizes else "") + (f", modes {s['modes']}" if s.get("modes") else ""))
    dup = report.get("exact_duplicates", {})
    if dup.get("within_split"):
        lines.append(f"exact duplicates within a split: {dup['within_split']}")
    if report.get("leakage"):
        lines.append(f"WARNING: LEAKAGE — the same file is in more than one split: {dup['across_splits']} "
                     "(evaluation on those rows measures memory, not generalisation). Examples:")
        lines += [f"  {' == '.join(pair)}" for pair in dup["across_examples"]]
    conflicts = report.get("label_conflicts", {})
    if conflicts.get("count"):
        lines.append(f"WARNING: {conflicts['count']} file(s) carry two different labels. Examples:")
        lines += [f"  {' vs '.join(pair)}" for pair in conflicts["examples"]]
    return lines + _near_lines(report.get("near_duplicates"))


def _near_lines(near: dict | None) -> list[str]:
    """The near-duplicate part of the summary: counts and time, then the warnings with the closest pairs."""
    if near is None:
        return []
    lines = [f"near duplicates (pHash distance <= {near['k']}, byte-identical pairs left out), {near['seconds']} s: "
             f"within a split {near['within_split'] or 0} pair(s), across splits {near['across_splits'] or 0}, "
             f"under two labels {near['label_conflicts']['count']}"]
    if near["leakage"]:
        lines.append(f"WARNING: NEAR LEAKAGE — near-identical images in more than one split: {near['across_splits']} "
                     "pair(s). Closest:")
        lines += [f"  {' ~ '.join(p['files'])} (distance {p['distance']})" for p in near["across_examples"]]
    conflicts = near["label_conflicts"]
    if conflicts["count"]:
        lines.append(f"WARNING: {conflicts['count']} near-identical pair(s) carry two different labels. Closest:")
        lines += [f"  {' vs '.join(p['files'])} (distance {p['distance']})" for p in conflicts["examples"]]
    return lines
