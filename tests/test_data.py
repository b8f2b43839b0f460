"""Dataset sources, column detection, label encoding and the clear errors for bad data."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image

from tests.helpers.data import make_imagefolder
from trainer.config import DataConfig
from trainer.data.bundle import build_data
from trainer.data.splits import label_array
from trainer.errors import UserError


def _images(n: int) -> list:
    return [Image.fromarray(np.full((8, 8, 3), 10 * i % 255, dtype=np.uint8)) for i in range(n)]


def _save(tmp_path, columns: dict, features: datasets.Features | None = None, splits=("train",)) -> str:
    ds = datasets.Dataset.from_dict(columns, features=features)
    path = tmp_path / "ds"
    datasets.DatasetDict({s: ds for s in splits}).save_to_disk(str(path))
    return str(path)


def test_fashion_mnist_embedded_has_real_names_and_sizes():
    b = build_data(DataConfig(), seed=42)
    assert b.label_names[:2] == ["T-shirt/top", "Trouser"] and len(b.label_names) == 10
    assert (len(b.train), len(b.val), len(b.test)) == (48000, 12000, 10000)  # 20% stratified holdout
    counts = np.bincount(label_array(b.val, "label"), minlength=10)
    assert counts.min() == counts.max() == 1200  # stratified: every class equally held out


@pytest.mark.parametrize("labels, names", [
    (["cat", "dog"] * 10, ["cat", "dog"]),
    ([3, 7] * 10, ["3", "7"]),
])
def test_string_and_int_labels_become_classlabel(tmp_path, labels, names):
    path = _save(tmp_path, {"image": _images(20), "label": labels},
                 datasets.Features({"image": datasets.Image(),
                                    "label": datasets.Value("string" if isinstance(labels[0], str) else "int64")}))
    b = build_data(DataConfig(dataset=path), seed=0)
    assert b.label_names == names
    assert isinstance(b.train.features["label"], datasets.ClassLabel)
    assert len(b.train) + len(b.val) == 20


def test_columns_detected_by_type_with_odd_names(tmp_path):
    feats = datasets.Features({"pic": datasets.Image(), "kind": datasets.ClassLabel(names=["a", "b"]),
                               "note": datasets.Value("string")})
    path = _save(tmp_path, {"pic": _images(10), "kind": [0, 1] * 5, "note": ["x"] * 10}, feats)
    b = build_data(DataConfig(dataset=path), seed=0)
    assert (b.input_column, b.label_column) == ("pic", "kind")


def test_ambiguous_label_column_lists_columns(tmp_path):
    path = _save(tmp_path, {"image": _images(10), "y1": [0] * 10, "y2": [1] * 10})
    with pytest.raises(UserError, match=r"cannot tell which column holds the labels: none found\. "
                                        r"Columns: image \(Image\), y1 \(Value\), y2 \(Value\)\. "
                                        r"Set --label-column COLUMN"):
        build_data(DataConfig(dataset=path), seed=0)


def test_class_with_one_sample(tmp_path):
    root = make_imagefolder(tmp_path / "f", {"a": 5, "b": 5, "lonely": 1})
    with pytest.raises(UserError, match=r"class\(es\) \['lonely'\] have only 1 sample"):
        build_data(DataConfig(dataset=str(root)), seed=0)


def test_empty_split(monkeypatch):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a"])})
    empty = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"image": [], "label": []}, features=feats)})
    monkeypatch.setattr("trainer.data.bundle.load_source", lambda cfg: empty)  # datasets cannot save an empty split
    with pytest.raises(UserError, match=r"split 'train' of some/dataset is empty \(0 rows\)"):
        build_data(DataConfig(dataset="some/dataset"), seed=0)


def test_val_labels_unseen_in_train(tmp_path):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    train = datasets.Dataset.from_dict({"image": _images(4), "label": ["a", "b"] * 2}, features=feats)
    val = datasets.Dataset.from_dict({"image": _images(2), "label": ["a", "zebra"]}, features=feats)
    datasets.DatasetDict({"train": train, "validation": val}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(UserError, match=r"split 'val' has labels never seen in train: \['zebra'\]"):
        build_data(DataConfig(dataset=str(tmp_path / "ds")), seed=0)


def test_corrupt_image_in_imagefolder_is_skipped_and_counted(tmp_path):
    root = make_imagefolder(tmp_path / "f", {"a": 6, "b": 6})
    (root / "a" / "broken.png").write_bytes(b"this is not a png")
    b = build_data(DataConfig(dataset=str(root)), seed=0)
    assert b.skipped == 1
    assert len(b.train) + len(b.val) == 12


def test_max_samples_are_stratified_caps():
    b = build_data(DataConfig(max_train_samples=100, max_eval_samples=50), seed=1)
    assert (len(b.train), len(b.val), len(b.test)) == (100, 50, 50)
    assert np.bincount(label_array(b.train, "label"), minlength=10).min() == 10


def test_preresize_shrinks_only_large_images_keeping_aspect():
    from trainer.data.images import preresize

    images = [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("L", (8, 8), 90)]
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    small = preresize(ds, "image", 16, num_proc=0, desc="test")
    assert [im.size for im in small["image"]] == [(21, 16), (8, 8)]
    assert small["image"][0].mode == "RGB" and small["image"][0].getpixel((10, 8))[0] > 150


def _three_splits(tmp_path, train_labels, val_labels, test_labels, feature) -> str:
    feats = datasets.Features({"image": datasets.Image(), "label": feature})
    dd = {name: datasets.Dataset.from_dict({"image": _images(len(labels)), "label": labels}, features=feats)
          for name, labels in (("train", train_labels), ("validation", val_labels), ("test", test_labels))}
    datasets.DatasetDict(dd).save_to_disk(str(tmp_path / "ds"))
    return str(tmp_path / "ds")


def test_minus_one_labels_in_test_are_counted_and_refused_before_training(tmp_path):
    """The -1 'no label' convention (competition test splits) once crashed after training, with no checkpoint."""
    path = _three_splits(tmp_path, [0, 1] * 10, [0, 1] * 5, [0, 1] * 7 + [-1] * 6,
                         datasets.ClassLabel(names=["cat", "dog"]))
    with pytest.raises(UserError, match=r"rows without a usable label in column 'label' \(test: 6 of 20\).*"
                                        r"--drop-unlabeled"):
        build_data(DataConfig(dataset=path), seed=0)
    b = build_data(DataConfig(dataset=path, drop_unlabeled=True), seed=0)
    assert len(b.test) == 14 and set(label_array(b.test, "label")) == {0, 1} and len(b.train) == 20


def test_none_labels_are_named_as_missing_not_as_unseen_classes(tmp_path):
    path = _three_splits(tmp_path, ["a", "b"] * 4 + [None], ["a", None, None, "b"], ["a", "b"],
                         datasets.Value("string"))
    with pytest.raises(UserError, match=r"\(train: 1 of 9, val: 2 of 4\): None") as err:
        build_data(DataConfig(dataset=path), seed=0)
    assert "never seen" not in str(err.value)
    b = build_data(DataConfig(dataset=path, drop_unlabeled=True), seed=0)
    assert (len(b.train), len(b.val), b.label_names) == (8, 2, ["a", "b"])


def test_unlabeled_mask_catches_none_negative_and_out_of_range():
    from trainer.data.splits import _unlabeled_mask

    ds = datasets.Dataset.from_dict({"label": [0, 1, None, -1, 2, 7]}, features=datasets.Features(
        {"label": datasets.Value("int64")}))
    assert _unlabeled_mask(ds, "label", 3).tolist() == [False, False, True, True, False, True]
    assert _unlabeled_mask(ds.select([0, 4, 5]), "label", None).tolist() == [False, False, False]


def test_one_class_data_is_refused_with_a_message():
    from trainer.data.splits import check_classes

    one = datasets.Dataset.from_dict({"label": [0] * 6}, features=datasets.Features(
        {"label": datasets.ClassLabel(names=["only", "other"])}))
    with pytest.raises(UserError, match=r"one class only \(\['only'\]\)"):
        check_classes(one, "label", ["only", "other"])
    with pytest.raises(UserError, match="at least two"):
        check_classes(one, "label", ["only"])
    check_classes(datasets.Dataset.from_dict({"label": [0, 1]}), "label", ["a", "b"])


def test_preflight_finds_leakage_and_a_file_under_two_labels(tmp_path):
    """One image in both train and test, and a copy of another under a second label: both are reported, the CLI
    exits 1, and the report lists the offending files."""
    import json
    import shutil

    from tests.helpers.cli import run_cli

    root = tmp_path / "data"
    make_imagefolder(root / "train", {"cat": 6, "dog": 6})
    make_imagefolder(root / "test", {"cat": 3, "dog": 3}, seed=1)
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "planted.png")  # leakage
    shutil.copy(root / "train" / "dog" / "1.png", root / "train" / "cat" / "relabelled.png")  # two labels
    out = tmp_path / "preflight.json"
    proc = run_cli("trainer/preflight.py", "--dataset", str(root), "--output", str(out), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "WARNING: LEAKAGE" in proc.stdout and "test: " in proc.stdout and "planted.png" in proc.stdout
    report = json.loads(out.read_text())
    assert report["leakage"] and sum(report["exact_duplicates"]["across_splits"].values()) == 1
    assert report["label_conflicts"]["count"] == 1
    assert any("relabelled.png" in " ".join(pair) for pair in report["label_conflicts"]["examples"])
    assert report["splits"]["test"]["per_class"] == {"cat": 4, "dog": 3}
    assert report["splits"]["train"]["sizes"] == {"16x16": report["splits"]["train"]["rows"]}


def _resized_copy(root, source_class: str, copy_class: str) -> None:
    """A smooth 48 px picture under one class, and a 40 px JPEG re-encode of it under another."""
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize((48, 48), Image.BICUBIC)
    picture.save(root / source_class / "picture.png")
    picture.resize((40, 40), Image.BICUBIC).save(root / copy_class / "picture_small.jpg", quality=90)


def test_preflight_near_duplicates_find_a_resized_copy_under_another_label(tmp_path):
    """The exact leakage and a resized re-encoded copy under a second label are both reported with
    --near-duplicates (the byte-identical pair only as exact); without the flag the resized copy goes unseen."""
    import json
    import shutil

    from tests.helpers.cli import run_cli
    from trainer.data.audit import preflight

    root = tmp_path / "data"
    make_imagefolder(root / "train", {"cat": 6, "dog": 6}, size=48)
    make_imagefolder(root / "test", {"cat": 3, "dog": 3}, size=48, seed=1)
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "planted.png")  # exact leakage
    _resized_copy(root / "train", "cat", "dog")
    out = tmp_path / "preflight.json"
    proc = run_cli("trainer/preflight.py", "--dataset", str(root), "--output", str(out), "--near-duplicates",
                   check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "WARNING: LEAKAGE" in proc.stdout and "planted.png" in proc.stdout
    assert "near-identical pair(s) carry two different labels" in proc.stdout and "picture_small.jpg" in proc.stdout
    report = json.loads(out.read_text())
    assert report["leakage"] and report["label_conflicts"]["count"] == 0
    near = report["near_duplicates"]
    # one near pair, the resized copy (in train or, after the holdout, val); the byte-identical one is exact only
    assert near["k"] == 4 and near["seconds"] >= 0
    assert sum(near["within_split"].values()) + sum(near["across_splits"].values()) == 1
    assert near["label_conflicts"]["count"] == 1
    (pair,) = near["label_conflicts"]["examples"]
    assert "picture.png (cat)" in pair["files"][0] + pair["files"][1] and pair["distance"] <= 4
    assert "picture_small.jpg (dog)" in pair["files"][0] + pair["files"][1]
    quick = preflight(build_data(DataConfig(dataset=str(root)), seed=42))
    assert "near_duplicates" not in quick and quick["label_conflicts"]["count"] == 0
    assert "picture_small" not in json.dumps(quick["exact_duplicates"]) and quick["leakage"]


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 6, 9, 13])
def test_near_pairs_match_brute_force_on_random_hashes(k, monkeypatch):
    """The pigeonhole index finds exactly the pairs an all-pairs comparison finds, each once, with its distance;
    clustered hashes (a few bits flipped off shared bases) and a run of identical ones make close pairs common."""
    from trainer.data import near_duplicates

    monkeypatch.setattr(near_duplicates, "BLOCK", 50)  # several blocks: the buffering must not drop or repeat
    rng = np.random.default_rng(k)
    bases = rng.integers(0, 2**63, size=12, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 12, dtype=np.uint64)
    h = bases[rng.integers(0, 12, 300)]
    for _ in range(5):  # up to 5 bit flips per hash
        bit = np.uint64(1) << rng.integers(0, 64, 300).astype(np.uint64)
        h ^= np.where(rng.random(300) < 0.6, bit, np.uint64(0))
    h[:30] = h[0]
    h[250:] = rng.integers(0, 2**63, size=50, dtype=np.uint64) * np.uint64(2)  # unrelated ones
    dist = np.bitwise_count(h[:, None] ^ h[None, :])
    expected = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(dist <= k, 1)), strict=True)}
    found = [(int(i), int(j), int(d))
             for block in near_duplicates.near_pairs(h, k) for i, j, d in zip(*block, strict=True)]
    assert len(expected) >= 435 and len(found) == len({(i, j) for i, j, _ in found})
    assert {(i, j) for i, j, _ in found} == expected
    assert all(i < j and d == dist[i, j] for i, j, d in found)
