"""Multi-label pieces on their own: metrics against scikit-learn, calibration and thresholds, data detection and
encoding, iterative stratification, loss and mixup on multi-hot targets, and the clear refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from trainer.config import AugmentConfig, DataConfig, TrainConfig
from trainer.errors import UserError


def _random_multilabel(n: int = 400, c: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(multi-hot targets, logits that carry signal) with one class never positive."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.05, 0.5, c)).astype(np.int8)
    y[:, 0] = 0  # a class without positives: AP undefined, left out of mAP
    z = (2 * y - 1) * 1.5 + rng.normal(0, 1.5, (n, c))
    return y, z


def test_report_matches_sklearn():
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        f1_score,
        hamming_loss,
        multilabel_confusion_matrix,
        precision_score,
        recall_score,
    )

    from trainer.evaluation.metrics import load_metric
    from trainer.evaluation.probabilities import sigmoid

    y, z = _random_multilabel()
    scores = sigmoid(z)
    pred = (scores >= 0.4).astype(np.int8)
    r = load_metric("multilabel_report").compute(predictions=pred, references=y, scores=scores)
    aps = [average_precision_score(y[:, c], scores[:, c]) for c in range(1, y.shape[1])]
    assert r["map"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert r["per_class"]["ap"][0] is None and r["per_class"]["ap"][1:] == pytest.approx(aps, abs=1e-6)
    assert r["map_micro"] == pytest.approx(average_precision_score(y.ravel(), scores.ravel()), abs=1e-6)
    for avg in ("micro", "macro"):
        assert r[f"f1_{avg}"] == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))
        assert r[f"precision_{avg}"] == pytest.approx(precision_score(y, pred, average=avg, zero_division=0))
        assert r[f"recall_{avg}"] == pytest.approx(recall_score(y, pred, average=avg, zero_division=0))
    assert r["subset_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert r["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    cm = multilabel_confusion_matrix(y, pred)
    assert r["per_class"]["tp"] == cm[:, 1, 1].tolist() and r["per_class"]["fn"] == cm[:, 1, 0].tolist()
    assert r["per_class"]["fp"] == cm[:, 0, 1].tolist() and r["per_class"]["tn"] == cm[:, 0, 0].tolist()
    assert r["per_class"]["support"] == y.sum(0).tolist()


def test_multilabel_ece_bins_every_sample_class_probability():
    from trainer.evaluation.metrics import load_metric

    y, z = _random_multilabel(seed=1)
    p = 1 / (1 + np.exp(-z))
    r = load_metric("calibration").compute(probabilities=p, references=y, n_bins=10)
    conf, hit = p.astype(np.float32).astype(np.float64).ravel(), y.ravel()  # float32: the metric's input feature
    bins = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
    ece = sum(abs(hit[bins == b].sum() - conf[bins == b].sum()) for b in range(10)) / conf.size
    assert r["ece"] == pytest.approx(ece, abs=1e-9)
    assert sum(r["reliability"]["count"]) == y.size
    assert r["brier"] == pytest.approx(np.mean((conf - hit) ** 2), abs=1e-6)


def test_platt_scaling_matches_sklearn_and_lowers_the_ece():
    from sklearn.linear_model import LogisticRegression

    from trainer.evaluation.metrics import load_metric
    from trainer.evaluation.probabilities import calibrated_sigmoid, fit_platt, sigmoid

    rng = np.random.default_rng(2)
    y = (rng.random((6000, 3)) < 0.3).astype(np.int8)
    z = ((2 * y - 1) * 3 + rng.normal(0, 2, y.shape)) * np.array([1.0, 4.0, 0.5])  # over/under-confident classes
    calibration = fit_platt(z, y)
    for c in range(3):
        ref = LogisticRegression(C=1e6).fit(z[:, [c]], y[:, c])
        assert calibration["scale"][c] == pytest.approx(ref.coef_[0][0], rel=0.02)
        assert calibration["bias"][c] == pytest.approx(ref.intercept_[0], abs=0.05)
    ece = load_metric("calibration").compute
    before = ece(probabilities=sigmoid(z), references=y)["ece"]
    after = ece(probabilities=calibrated_sigmoid(z, calibration), references=y)["ece"]
    assert after < before / 2


def test_thresholds_maximise_f1_per_class():
    from sklearn.metrics import f1_score

    from trainer.evaluation.probabilities import sigmoid, tune_thresholds

    y, z = _random_multilabel(seed=3)
    p = sigmoid(z)
    thresholds = tune_thresholds(p, y)
    assert thresholds[0] == 0.5  # no validation positives: the default
    for c in range(1, y.shape[1]):
        best = max(f1_score(y[:, c], p[:, c] >= t) for t in np.unique(p[:, c]))
        assert f1_score(y[:, c], p[:, c] >= thresholds[c]) == pytest.approx(best)


def _list_dataset(tmp_path, train_rows: list, val_rows: list | None = None, names=("a", "b", "c")):
    """A save_to_disk DatasetDict with tiny images and a List(ClassLabel) `labels` column."""
    import datasets

    features = datasets.Features({"image": datasets.Image(),
                                  "labels": datasets.List(datasets.ClassLabel(names=list(names)))})
    rng = np.random.default_rng(0)

    def split(rows):
        images = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in rows]
        return datasets.Dataset.from_dict({"image": images, "labels": rows}, features=features)

    splits = {"train": split(train_rows)}
    if val_rows is not None:
        splits["validation"] = split(val_rows)
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "ds"))
    return str(tmp_path / "ds")


def test_list_classlabel_column_is_multi_label_with_an_iteratively_stratified_holdout(tmp_path):
    from trainer.data.bundle import build_data
    from trainer.data.multilabel import label_matrix

    rng = np.random.default_rng(0)
    rows = [sorted({int(c) for c in np.flatnonzero(rng.random(3) < [0.5, 0.2, 0.08])}) or [0] for _ in range(600)]
    bundle = build_data(DataConfig(dataset=_list_dataset(tmp_path, rows), val_pct=0.25), seed=0)
    assert bundle.task == "multi_label" and bundle.label_names == ["a", "b", "c"]
    assert bundle.label_column == "labels"
    train, val = (label_matrix(ds, "labels", 3) for ds in (bundle.train, bundle.val))
    assert len(val) == pytest.approx(150, abs=6) and len(train) + len(val) == 600  # rows follow the labels' deal
    total = train.sum(0) + val.sum(0)
    assert np.abs(val.sum(0) - 0.25 * total).max() <= 1  # every class keeps its share of positives, to one row


def test_folds_keep_each_class_share():
    from trainer.data.multilabel import multilabel_folds

    rng = np.random.default_rng(1)
    y = (rng.random((900, 5)) < [0.5, 0.2, 0.1, 0.05, 0.02]).astype(np.uint8)
    folds = list(multilabel_folds(y, 3, seed=0))
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(900))  # each row once
    for train, val in folds:
        assert not set(train) & set(val)
        np.testing.assert_allclose(y[val].mean(0), y.mean(0), atol=0.01)


def test_metadata_jsonl_lists_and_csv_strings(tmp_path):
    from PIL import Image

    from trainer.data.bundle import build_data

    labels = [["cat", "dog"], ["dog"], ["cat"], ["ball", "cat"], ["dog", "ball"], ["cat"]] * 4
    for kind in ("jsonl", "csv"):
        root = tmp_path / kind / "train"
        root.mkdir(parents=True)
        for i in range(len(labels)):
            Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / f"{i}.png")
        if kind == "jsonl":
            (root / "metadata.jsonl").write_text("\n".join(json.dumps({"file_name": f"{i}.png", "labels": x})
                                                           for i, x in enumerate(labels)))
        else:
            (root / "metadata.csv").write_text("file_name,tags\n" + "\n".join(
                f'{i}.png,"{" | ".join(x)}"' for i, x in enumerate(labels)))
    auto = build_data(DataConfig(dataset=str(tmp_path / "jsonl"), val_pct=0.25), seed=0)
    assert auto.task == "multi_label" and auto.label_names == ["ball", "cat", "dog"]
    plain = build_data(DataConfig(dataset=str(tmp_path / "csv"), val_pct=0.25), seed=0)
    assert plain.task == "single_label" and "cat | dog" in plain.label_names  # a string is one class without the flag
    split = build_data(DataConfig(dataset=str(tmp_path / "csv"), val_pct=0.25, multi_label=True, label_sep="|"),
                       seed=0)
    assert split.task == "multi_label" and split.label_names == ["ball", "cat", "dog"]
    assert sorted(map(tuple, list(split.train["tags"]) + list(split.val["tags"]))) == sorted(
        tuple(sorted(["ball", "cat", "dog"].index(n) for n in x)) for x in labels)


def test_empty_and_unseen_labels_get_clear_errors(tmp_path):
    from trainer.data.bundle import build_data
    from trainer.data.multilabel import label_matrix

    rows = [[0, 1], [1], [], [0], [1, 0], [0]] * 5
    path = _list_dataset(tmp_path / "empty", rows, val_rows=[[0], [1], [0, 1]])
    with pytest.raises(UserError, match=r"rows with no label .*\(train: 5 of 30\).*--allow-empty-labels"):
        build_data(DataConfig(dataset=path), seed=0)
    kept = build_data(DataConfig(dataset=path, allow_empty_labels=True), seed=0)
    assert len(kept.train) == 30 and (label_matrix(kept.train, "labels", 3).sum(1) == 0).sum() == 5
    dropped = build_data(DataConfig(dataset=path, drop_unlabeled=True), seed=0)
    assert len(dropped.train) == 25
    unseen = _list_dataset(tmp_path / "unseen", [[0], [1], [0, 1]] * 4, val_rows=[[0], [2]], names=("a", "b", "c"))
    csv_like = tmp_path / "unseen_text"
    import datasets

    ds = datasets.load_from_disk(unseen)
    text = datasets.DatasetDict({k: v.map(lambda r: {"t": ",".join("abc"[i] for i in r["labels"])},
                                          remove_columns=["labels"]) for k, v in ds.items()})
    text.save_to_disk(str(csv_like))
    with pytest.raises(UserError, match=r"split 'val' has labels never seen in train: \['c'\]"):
        build_data(DataConfig(dataset=str(csv_like), label_column="t", multi_label=True), seed=0)


def test_multi_label_loss_weights_positives_and_mixup_mixes_multi_hot_targets():
    import torch
    from timm.loss import BinaryCrossEntropy

    from trainer.engine.optim import build_loss

    cfg = TrainConfig(balance="loss", augment=AugmentConfig(mixup=0.8, smoothing=0.0))
    loaders = SimpleNamespace(multi_label=True, class_counts=np.array([10, 50, 100]),
                              train=SimpleNamespace(dataset=[None] * 200))
    criterion, mixup = build_loss(cfg, loaders, 3)
    assert isinstance(criterion, BinaryCrossEntropy)
    np.testing.assert_allclose(criterion.pos_weight.numpy(), [19.0, 3.0, 1.0])  # negatives / positives
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.float)
    _, mixed = mixup(x.clone(), y)
    lam = 1 - float(mixed[0, 1])  # row 0 mixes with row 3, which alone holds class 1
    assert 0 < lam < 1
    np.testing.assert_allclose(mixed.numpy(), (lam * y + (1 - lam) * y.flip(0)).numpy(), atol=1e-6)
    assert criterion(torch.zeros(4, 3), mixed) > 0


def test_refusals_for_options_that_need_one_class_per_row():
    from trainer.data.loaders import make_loaders
    from trainer.train import fit_task

    cfg = TrainConfig(balance="sampler")
    bundle = SimpleNamespace(task="multi_label", label_column="labels", label_names=["a", "b"], train=None)
    with pytest.raises(UserError, match="--balance loss"):
        make_loaders(cfg, bundle, ([0] * 8, [0] * 4, None), np.array([3, 5]), 0, 1)
    cfg = TrainConfig(metric="map", explicit=["metric"])
    with pytest.raises(UserError, match="--metric map is for multi-label data"):
        fit_task(cfg, SimpleNamespace(task="single_label", label_column="label"), print)
    cfg = TrainConfig()
    fitted = fit_task(cfg, SimpleNamespace(task="multi_label", label_names=["a", "b"]), lambda *a, **k: None)
    assert fitted.metric == "map"  # a multi-label run keeps the best epoch by mAP unless told otherwise
    assert cfg.metric == "accuracy" and fitted.requested == {"metric": "accuracy"}  # the request stays as asked
