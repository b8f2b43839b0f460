"""--streaming: sharded, shuffled train stream; stable content-hash holdout; in-memory val/test; the CLI end to end."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.cli import SMOKE, run_cli
from tests.helpers.data import make_imagefolder
from trainer.config import TrainConfig
from trainer.data.streaming import StreamingImages, StreamLoader, build_stream_data, stream_steps
from trainer.errors import UserError
from trainer.flags import parse_config


def _saved(tmp_path, n: int = 60, splits=("train",)) -> str:
    """A save_to_disk DatasetDict of n distinct 8x8 images with a 3-class ClassLabel."""
    images = [Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)) for i in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    ds = datasets.Dataset.from_dict({"image": images, "label": [i % 3 for i in range(n)]}, features=features)
    path = tmp_path / "saved"
    datasets.DatasetDict({s: ds for s in splits}).save_to_disk(str(path))
    return str(path)


def _pixels(samples) -> list[int]:
    """The value each synthetic image was filled with: its row id."""
    return [int(x.flatten()[0]) for x, _, _ in samples]


def _cfg(dataset: str, *flags: str) -> TrainConfig:
    return parse_config(["--dataset", dataset, "--streaming", "--img-size", "8", *flags])


def test_holdout_is_by_content_disjoint_and_complete(tmp_path):
    bundle = build_stream_data(_cfg(_saved(tmp_path), "--val-pct", "0.2"))
    assert isinstance(bundle.train, datasets.IterableDataset) and isinstance(bundle.val, datasets.Dataset)
    val_ids = {int(np.asarray(im)[0, 0, 0]) for im in bundle.val["image"]}
    to_uint8 = lambda im: np.array(im).transpose(2, 0, 1)  # noqa: E731
    seen = []
    for epoch in (0, 1):  # a reshuffled epoch must not move rows across the split
        ds = StreamingImages(bundle.train, "image", "label", to_uint8, rank=0, world=1, seed=0, buffer=16)
        ds.set_epoch(epoch)
        seen.append(_pixels(ds))
    assert sorted(seen[0]) == sorted(seen[1]) and seen[0] != seen[1]  # same rows, new order
    assert not set(seen[0]) & val_ids and set(seen[0]) | val_ids == set(range(60))
    assert 0 < len(val_ids) < 30
    assert bundle.source["streaming"] is True and bundle.source["sizes"]["val"] == len(val_ids)


def test_two_ranks_read_disjoint_shards_covering_the_split(tmp_path):
    bundle = build_stream_data(_cfg(_saved(tmp_path, splits=("train", "validation"))))
    assert bundle.source["sizes"] == {"train": 60, "val": 60}  # a real validation split: nothing held out
    to_uint8 = lambda im: np.array(im).transpose(2, 0, 1)  # noqa: E731
    ranks = [_pixels(StreamingImages(bundle.train, "image", "label", to_uint8, r, 2, 0, 8)) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and sorted(ranks[0] + ranks[1]) == list(range(60))


class Rows(torch.utils.data.IterableDataset):
    """n numbered rows, split between DataLoader workers as datasets splits shards; records set_epoch calls."""

    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return iter([(torch.tensor([float(i)]), i, -1) for i in range(worker, self.n, workers)])


def test_stream_loader_gives_exactly_steps_batches_and_rereads_when_dry():
    ds = Rows(5)
    loader = StreamLoader(torch.utils.data.DataLoader(ds, batch_size=2), ds, 5, "cpu")
    loader.set_epoch(3)
    batches = list(loader)
    assert len(batches) == 5 == len(loader) and all(len(y) == 2 for _, y, _ in batches)
    assert ds.epochs == [3, 10_003]  # 10 rows needed from a 5-row stream: one reshuffled re-read
    ds = Rows(5)
    with pytest.raises(UserError, match="has 5 rows, fewer than --batch-size 8"):
        list(StreamLoader(torch.utils.data.DataLoader(ds, batch_size=8), ds, 2, "cpu"))


def test_short_batches_of_every_worker_are_joined_not_dropped():
    """2 workers x 6 rows with batch 4: each worker yields 4 + 2; all 12 rows must make 3 full batches."""
    ds = Rows(12)
    loader = StreamLoader(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2), ds, 3, "cpu")
    batches = list(loader)
    assert [len(y) for _, y, _ in batches] == [4, 4, 4]
    assert sorted(int(v) for _, y, _ in batches for v in y) == list(range(12)) and ds.epochs == []


def test_a_resumed_stream_loader_skips_to_the_batch_the_uninterrupted_epoch_had_next(tmp_path):
    """--resume from a step checkpoint: the epoch's stream (same seed and epoch) is read again and the batches
    already trained on are dropped, so the rest are the uninterrupted epoch's, not a reshuffle."""
    bundle = build_stream_data(_cfg(_saved(tmp_path, splits=("train", "validation"))))
    to_uint8 = lambda im: torch.from_numpy(np.array(im).transpose(2, 0, 1))  # noqa: E731
    ds = StreamingImages(bundle.train, "image", "label", to_uint8, 0, 1, 0, 8)
    loader = StreamLoader(torch.utils.data.DataLoader(ds, batch_size=4), ds, 10, "cpu")
    loader.set_epoch(1)
    full = [x[:, 0, 0, 0].tolist() for x, _, _ in loader]
    resumed = loader.skip_first_batches(3)
    resumed.set_epoch(1)
    assert len(resumed) == 7 and [x[:, 0, 0, 0].tolist() for x, _, _ in resumed] == full[3:]
    assert len(loader) == 10 and len(list(loader)) == 10  # the original still yields whole epochs


def test_steps_need_a_size_or_max_steps():
    cfg = parse_config(["--streaming", "--batch-size", "16", "--epochs", "3"])
    assert stream_steps(cfg, 1000, num_processes=2) == 31
    with pytest.raises(UserError, match="--max-steps"):
        stream_steps(cfg, None, 1)
    assert stream_steps(parse_config(["--streaming", "--max-steps", "10", "--epochs", "3"]), None, 1) == 4
    accum = parse_config(["--streaming", "--max-steps", "10", "--epochs", "10", "--grad-accum", "4"])
    assert stream_steps(accum, None, 1) == 4  # batches: 1 optimizer step x 4 accumulated batches per epoch


@pytest.mark.parametrize("flags, message", [
    (["--folds", "3"], "--folds"), (["--balance", "loss"], "--balance"),
])
def test_streaming_refuses_whole_split_options(tmp_path, flags, message):
    with pytest.raises(UserError, match=f"cannot be combined with {message}"):
        build_stream_data(_cfg(_saved(tmp_path), *flags))


def test_streaming_needs_classlabel(tmp_path):
    root = make_imagefolder(tmp_path / "f", {"a": 3, "b": 3})
    ds = datasets.load_dataset("imagefolder", data_dir=str(root), split="train")
    ds = ds.cast_column("label", datasets.Value("int64"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "ints"))
    with pytest.raises(UserError, match="ClassLabel"):
        build_stream_data(_cfg(str(tmp_path / "ints")))


@pytest.mark.slow
def test_streaming_cli_trains_and_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("trainer/train.py", *SMOKE, "--streaming", "--shuffle-buffer", "64", "--output-dir", str(out))
    assert "checkpoint written to" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["streaming"] is True and manifest["dataset"]["sizes"]["val"] == 128
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["test"]["num_samples"] == 128
    import timm

    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert model.num_classes == 10


def test_unlabeled_rows_are_skipped_in_the_stream_and_refused_in_val(tmp_path, capsys):
    images = [Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)) for i in range(30)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    labels = [-1 if i % 5 == 0 else i % 3 for i in range(30)]  # 6 rows without a label
    ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "s"))
    with pytest.raises(UserError, match=r"\(val: 6 of 30\)"):
        build_stream_data(_cfg(str(tmp_path / "s")))
    bundle = build_stream_data(_cfg(str(tmp_path / "s"), "--drop-unlabeled"))
    assert len(bundle.val) == 24
    to_uint8 = lambda im: np.array(im).transpose(2, 0, 1)  # noqa: E731
    rows = list(StreamingImages(bundle.train, "image", "label", to_uint8, 0, 1, 0, 8))
    assert len(rows) == 24 and all(0 <= y < 3 for _, y, _ in rows)
    assert capsys.readouterr().out.count("skipping stream rows without a usable label") == 1
