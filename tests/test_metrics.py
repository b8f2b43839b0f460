"""Local `evaluate` metric modules against hand-computed values and scikit-learn, network blocked."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from trainer.evaluation.metrics import METRIC_NAMES, METRICS_DIR, load_metric

# 8 samples, 5 classes: class 2 is never predicted, class 4 occurs nowhere (num_classes > seen labels)
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 3]
Y_PRED = [0, 0, 1, 1, 1, 0, 0, 3]

# 4 samples, 3 classes, 5 bins: two at confidence 0.9 (one right), two at 0.7 (one right) -> overconfident
OVER_P = [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.7, 0.2], [0.1, 0.7, 0.2]]
OVER_Y = [0, 1, 1, 2]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a socket connection."""

    def refuse(*args: object, **kwargs: object) -> None:
        """Stand-in for connect(): always fails."""
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def plain_json(obj: object) -> bool:
    """True when obj is built only from dict/list/str/int/float/bool/None (no numpy scalars)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and plain_json(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(plain_json(v) for v in obj)
    return obj is None or type(obj) in (str, int, float, bool)


# ---------------------------------------------------------------- loading


def test_load_metric_cached_offline_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads by absolute path from any cwd, returns the same cached instance, keeps data in memory."""
    import evaluate

    monkeypatch.chdir(tmp_path)
    assert METRIC_NAMES == ("calibration", "classification_report", "multilabel_report", "top_k_accuracy")
    for name in METRIC_NAMES:
        metric = load_metric(name)
        assert isinstance(metric, evaluate.EvaluationModule)
        assert metric is load_metric(name)
        assert metric.keep_in_memory
    fresh = evaluate.load(str(METRICS_DIR / "top_k_accuracy"))  # uncached, still no socket
    assert fresh.compute(scores=[[0.2, 0.8]], references=[1], k=1) == {"top1_accuracy": 1.0}


@pytest.mark.parametrize("name", ["accuracy", "../metrics", "nope"])
def test_load_metric_rejects_unknown_names(name: str) -> None:
    """Only folders under trainer/metrics holding <name>/<name>.py load."""
    with pytest.raises(ValueError, match="no metric module"):
        load_metric(name)


# ---------------------------------------------------------------- classification_report


def test_report_hand_computed() -> None:
    """Every number of the 8-sample example, worked out by hand."""
    r = load_metric("classification_report").compute(predictions=Y_PRED, references=Y_TRUE, num_classes=5)
    assert r["confusion_matrix"] == [[2, 1, 0, 0, 0], [0, 2, 0, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 1, 0],
                                     [0, 0, 0, 0, 0]]
    pc = r["per_class"]
    assert pc["support"] == [3, 2, 2, 1, 0]
    assert pc["precision"] == pytest.approx([2 / 4, 2 / 3, 0, 1, 0])
    assert pc["recall"] == pytest.approx([2 / 3, 1, 0, 1, 0])
    assert pc["f1"] == pytest.approx([4 / 7, 4 / 5, 0, 1, 0])
    assert pc["specificity"] == pytest.approx([3 / 5, 5 / 6, 1, 1, 1])  # TN / (TN + FP)
    expected = {"accuracy": 5 / 8, "balanced_accuracy": 2 / 3,
                # macro over classes 0-3 (seen in references or predictions); class 4 is left out
                "precision_macro": 13 / 24, "recall_macro": 2 / 3, "f1_macro": 83 / 140,
                "precision_weighted": 23 / 48, "recall_weighted": 5 / 8, "f1_weighted": 151 / 280}
    for key, value in expected.items():
        assert r[key] == pytest.approx(value), key
    assert set(r) == {*expected, "per_class", "confusion_matrix"}
    assert plain_json(r) and json.loads(json.dumps(r)) == r


@pytest.mark.parametrize(("y_true", "y_pred", "num_classes"), [
    (Y_TRUE, Y_PRED, 5),
    ([0, 0, 1], [0, 3, 1], 4),  # class 3 predicted but absent from the references, class 2 nowhere
    ([2, 2, 2, 0], [2, 1, 2, 2], 3),
])
def test_report_matches_sklearn(y_true: list[int], y_pred: list[int], num_classes: int) -> None:
    """Headline numbers equal sklearn's defaults; per-class lists equal sklearn's with labels=range(C)."""
    r = load_metric("classification_report").compute(predictions=y_pred, references=y_true,
                                                     num_classes=num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced_accuracy_score warns about predicted-only classes
        assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        p, rec, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        assert (r[f"precision_{avg}"], r[f"recall_{avg}"], r[f"f1_{avg}"]) == pytest.approx((p, rec, f))
    labels = list(range(num_classes))
    p, rec, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert r["per_class"]["precision"] == pytest.approx(p.tolist())
    assert r["per_class"]["recall"] == pytest.approx(rec.tolist())
    assert r["per_class"]["f1"] == pytest.approx(f.tolist())
    assert r["per_class"]["support"] == s.tolist()
    assert r["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert all(len(v) == num_classes for v in r["per_class"].values())


def test_report_perfect_predictions() -> None:
    """Perfect predictions: 1 everywhere but the absent class (0, zero_division) and a diagonal matrix."""
    y = [0, 1, 2, 2, 1, 0]
    r = load_metric("classification_report").compute(predictions=y, references=y, num_classes=4)
    for key in ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                "precision_weighted", "recall_weighted", "f1_weighted"):
        assert r[key] == 1.0, key
    assert r["per_class"]["f1"] == [1.0, 1.0, 1.0, 0.0]
    assert r["per_class"]["specificity"] == [1.0] * 4
    assert r["confusion_matrix"] == [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(("y_pred", "num_classes"), [([0, 5], 3), ([0, -1], 3), ([0, 1], 0)])
def test_report_rejects_bad_ids(y_pred: list[int], num_classes: int) -> None:
    """Ids outside [0, num_classes) raise instead of being silently dropped by confusion_matrix."""
    with pytest.raises(ValueError):
        load_metric("classification_report").compute(predictions=y_pred, references=[0, 1],
                                                     num_classes=num_classes)


# ---------------------------------------------------------------- top_k_accuracy

SCORES = [[0.1, 0.5, 0.3, 0.1], [2.0, -1.0, 0.5, 0.0], [0.0, 0.0, 3.0, 1.0], [0.25, 0.25, 0.25, 0.25]]
REFS = [2, 3, 1, 0]  # ranks of the truth: 2nd, 3rd, 3rd (tie with 0, higher index first), 4th (all tied)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 0.25), (3, 0.75), (4, 1.0), (10, 1.0), (0, 0.0)])
def test_top_k_hand_computed(k: int, expected: float) -> None:
    """Hand-ranked example with ties; k is clipped to [1, num_classes] and names the key."""
    out = load_metric("top_k_accuracy").compute(scores=SCORES, references=REFS, k=k)
    eff = min(max(k, 1), 4)
    assert out == {f"top{eff}_accuracy": pytest.approx(expected)}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_matches_sklearn(k: int) -> None:
    """Random scores with forced ties (rounded) and a class absent from the references agree with sklearn."""
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=(200, 5)), 1).astype(np.float32)
    y = rng.integers(0, 4, size=200)  # class 4 never true
    out = load_metric("top_k_accuracy").compute(scores=scores, references=y, k=k)
    assert out[f"top{k}_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, scores, k=k, labels=range(5)))


def test_top_k_binary_and_default_k() -> None:
    """Two classes: k=1 is argmax accuracy with ties to class 1 (sklearn's rule); default k=5 clips to 2."""
    metric = load_metric("top_k_accuracy")
    scores, y = [[0.3, 0.7], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]], [1, 1, 1, 0]
    assert metric.compute(scores=scores, references=y, k=1) == {"top1_accuracy": 0.5}
    padded = [row + [-9.0] for row in scores]  # sklearn's multi-class ranking on the same rows
    assert skm.top_k_accuracy_score(y, padded, k=1, labels=range(3)) == 0.5
    assert metric.compute(scores=scores, references=y) == {"top2_accuracy": 1.0}


def test_top_k_logits_equal_probabilities() -> None:
    """Softmax is monotone, so logits and their probabilities give the same top-k."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 6))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 6, size=50)
    metric = load_metric("top_k_accuracy")
    assert metric.compute(scores=logits, references=y, k=3) == metric.compute(scores=probs, references=y, k=3)


# ---------------------------------------------------------------- calibration


def test_calibration_overconfident_hand_computed() -> None:
    """4 samples, 5 bins: bins (0.6, 0.8] and (0.8, 1] each hold one right and one wrong answer."""
    r = load_metric("calibration").compute(probabilities=OVER_P, references=OVER_Y, n_bins=5)
    assert r["ece"] == pytest.approx(2 / 4 * abs(0.5 - 0.9) + 2 / 4 * abs(0.5 - 0.7))  # 0.3
    assert r["mce"] == pytest.approx(0.4)
    assert r["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.05) + np.log(0.7) + np.log(0.2)) / 4)
    # Brier rows: 0.1²+2·0.05², 0.9²+0.95²+0.05², 0.1²+0.3²+0.2², 0.1²+0.7²+0.8²
    assert r["brier"] == pytest.approx((0.015 + 1.715 + 0.14 + 1.14) / 4)  # 0.7525
    rel = r["reliability"]
    assert rel["bin_lower"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert rel["bin_upper"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert rel["count"] == [0, 0, 0, 2, 2]
    assert rel["confidence"][:3] == [None] * 3 and rel["confidence"][3:] == pytest.approx([0.7, 0.9])
    assert rel["accuracy"] == [None, None, None, 0.5, 0.5]
    assert set(r) == {"ece", "mce", "nll", "brier", "reliability"}
    assert plain_json(r) and json.loads(json.dumps(r)) == r


def test_calibration_matches_sklearn_and_numpy() -> None:
    """NLL and Brier equal scikit-learn and the textbook formulas; ECE equals a direct per-bin loop."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(300, 4)) * 2
    p = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, size=300)
    r = load_metric("calibration").compute(probabilities=p, references=y, n_bins=10)
    assert r["nll"] == pytest.approx(skm.log_loss(y, p, labels=range(4)), rel=1e-6)
    assert r["nll"] == pytest.approx(-np.log(p[np.arange(300), y]).mean(), rel=1e-6)
    assert r["brier"] == pytest.approx(((p - np.eye(4)[y]) ** 2).sum(axis=1).mean(), rel=1e-6)
    conf, hit = p.max(axis=1), p.argmax(axis=1) == y
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 11)[:-1], np.linspace(0, 1, 11)[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        ece += m.sum() / 300 * abs(hit[m].mean() - conf[m].mean()) if m.any() else 0.0
    assert r["ece"] == pytest.approx(ece, abs=1e-6)
    assert sum(r["reliability"]["count"]) == 300


def test_calibration_perfect_is_zero() -> None:
    """Exactly calibrated bins (7 of 10 right at 0.7, 9 of 10 at 0.9) give ECE = MCE = 0."""
    p = [[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10
    y = [0] * 7 + [1] * 3 + [1] * 9 + [0]
    r = load_metric("calibration").compute(probabilities=p, references=y)
    assert r["ece"] == pytest.approx(0, abs=1e-6) and r["mce"] == pytest.approx(0, abs=1e-6)
    assert len(r["reliability"]["count"]) == 15  # default n_bins


def test_calibration_synthetic_calibrated_near_zero() -> None:
    """20k samples whose correctness is drawn with probability equal to their confidence: ECE ≈ 0."""
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, size=20_000)
    correct = rng.uniform(size=20_000) < conf
    p = np.stack([conf, 1 - conf], axis=1)
    r = load_metric("calibration").compute(probabilities=p, references=np.where(correct, 0, 1))
    assert r["ece"] < 0.015
    overconfident = np.stack([np.full(20_000, 0.95), np.full(20_000, 0.05)], axis=1)
    over = load_metric("calibration").compute(probabilities=overconfident, references=np.where(correct, 0, 1),
                                              n_bins=10)
    assert over["ece"] == pytest.approx(0.95 - correct.mean(), abs=1e-6)  # one bin, conf 0.95, acc ≈ 0.75


@pytest.mark.parametrize(("probs", "refs"), [([[2.0, -1.0]], [0]), ([[0.5, 0.2]], [0]), ([[0.5, 0.5]], [2]),
                                             ([[1.0]], [0])])
def test_calibration_rejects_bad_input(probs: list[list[float]], refs: list[int]) -> None:
    """Logits, unnormalised rows, out-of-range ids and a single class raise ValueError."""
    with pytest.raises(ValueError):
        load_metric("calibration").compute(probabilities=probs, references=refs)


def test_cached_metric_survives_a_failed_compute() -> None:
    """A ValueError inside _compute leaves the cached instance usable for the next call."""
    metric = load_metric("calibration")
    with pytest.raises(ValueError):
        metric.compute(probabilities=[[0.5, 0.2]], references=[0])
    assert metric.compute(probabilities=OVER_P, references=OVER_Y, n_bins=5)["ece"] == pytest.approx(0.3)


def test_group_metrics_follow_the_row_index() -> None:
    """Rows are matched to their group through pred["index"] (sorted row ids), not by position in the split."""
    from trainer.evaluation.report import group_metrics

    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]] * 5  # predictions 0, 1, 2, 0
    pred = {"logits": logits, "labels": np.array([0, 1, 1, 1]), "index": np.array([0, 2, 3, 5])}
    groups = ["a", "x", "a", "b", "x", "b"]  # rows 1 and 4 were capped away
    out = group_metrics(pred, groups, 3)
    assert set(out) == {"a", "b"} and out["a"]["num_samples"] == 2 and out["b"]["num_samples"] == 2
    assert out["a"]["accuracy"] == 1.0 and out["b"]["accuracy"] == 0.0


def test_group_column_must_exist_and_stay_coarse() -> None:
    import datasets

    from trainer.data.splits import MAX_GROUPS, check_group_column
    from trainer.errors import UserError

    val = datasets.Dataset.from_dict({"label": [0] * 200, "site": ["a", "b"] * 100, "path": list(map(str, range(200)))})
    check_group_column({"val": val}, "site")
    with pytest.raises(UserError, match="not a column of the val split"):
        check_group_column({"val": val}, "accent")
    with pytest.raises(UserError, match=f"at most {MAX_GROUPS}"):
        check_group_column({"val": val}, "path")


def test_tta_averages_the_logits_of_mirrored_and_zoomed_views() -> None:
    import torch

    from trainer.evaluation.tta import TTA, views

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x = torch.randn(2, 3, 8, 8)
    want = (model(x) + model(torch.flip(x, dims=[3]))) / 2
    torch.testing.assert_close(TTA(model, "flip")(x), want)
    four = views(x, "flip-crops")
    assert len(four) == 4 and all(v.shape == x.shape for v in four)
    torch.testing.assert_close(four[3], torch.flip(four[2], dims=[3]))
    symmetric = torch.ones(1, 3, 8, 8)  # a mirror-symmetric input: every flip view equals it
    torch.testing.assert_close(TTA(model, "flip")(symmetric), model(symmetric))
    # the final evaluation reuses its plain pass: the other views' mean, combined with it, is the same TTA mean
    from trainer.evaluation.tta import with_plain_logits

    for mode in ("flip", "flip-crops"):
        others = TTA(model, mode, with_plain=False)(x)
        torch.testing.assert_close(with_plain_logits(model(x), others, mode), TTA(model, mode)(x))
