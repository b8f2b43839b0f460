"""Data preflight: what is in the splits before a model sees them — class counts and imbalance, image sizes and
modes, exact duplicates within and across splits (leakage), and the same content under two labels.

Exact duplicates are found by a hash of each file's encoded bytes (blake2b, 16 bytes), read without decoding the
pixels; the same picture saved twice with different encoders is a near duplicate, not an exact one. Checked for a
library that does this over `datasets` splits: datasets offers no content hashing, cleanlab and fastdup bring
heavy dependencies for a check that is a dictionary of hashes.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from trainer.data.splits import label_array

MAX_LISTED = 20  # offending pairs listed per kind in the report (all are counted)


def _describe(ds, column: str) -> tuple[list[str], list[str], Counter, Counter]:
    """(content hash per row, display name per row, image sizes, image modes) of an Image column, pixels unread."""
    import datasets
    from PIL import Image

    raw = ds.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    hashes, names, sizes, modes = [], [], Counter(), Counter()
    for i, item in enumerate(raw[column]):
        data = item.get("bytes") or (Path(item["path"]).read_bytes() if item.get("path") else b"")
        hashes.append(hashlib.blake2b(data, digest_size=16).hexdigest())
        names.append(item.get("path") or f"row {i}")
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only: no pixels decoded
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
        except Exception:  # noqa: BLE001 - unreadable files are the trainer's own check (verify_images)
            modes["unreadable"] += 1
    return hashes, names, sizes, modes


def _counts(ds, label: str, label_names: list[str]) -> dict:
    """{class: rows} of one split, and its imbalance ratio (largest class / smallest non-empty class)."""
    counts = np.bincount(label_array(ds, label), minlength=len(label_names))
    present = counts[counts > 0]
    return {"per_class": {n: int(c) for n, c in zip(label_names, counts, strict=True)},
            "imbalance_ratio": round(float(present.max() / present.min()), 2) if len(present) else None}


def preflight(bundle) -> dict:
    """The quick preflight report of a DataBundle (images: sizes, modes and duplicates; every modality: counts)."""
    splits = {name: ds for name, ds in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))
              if ds is not None}
    report: dict = {"dataset": bundle.source.get("dataset"), "skipped_files": bundle.skipped,
                    "splits": {name: {"rows": len(ds), **_counts(ds, bundle.label_column, bundle.label_names)}
                               for name, ds in splits.items()}}
    if bundle.modality != "image":
        return report
    seen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # hash → (split, name, label)
    for name, ds in splits.items():
        hashes, names, sizes, modes = _describe(ds, bundle.input_column)
        labels = label_array(ds, bundle.label_column)
        for h, n, y in zip(hashes, names, labels, strict=True):
            seen[h].append((name, n, bundle.label_names[y]))
        report["splits"][name].update({"sizes": dict(sizes.most_common(10)), "modes": dict(modes)})
    report.update(_duplicates(seen))
    return report


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
    return lines
