"""The hostile corpus (tests/helpers/hostile.py) against the running app, the CLI, datasets and checkpoints: every
case gets its message, the next good request still works, the server's peak RSS grows < 512 MiB per case, and
nothing is written outside its place."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import hostile
from tests.helpers.app import launch, photo
from tests.helpers.cli import REPO, tree_hash
from tests.helpers.memory import kib, reset_peak
from tests.test_app import _upload

MIB_LIMIT = 512


@pytest.fixture(scope="module")
def served(smoke_run, audio_run, tmp_path_factory):
    """(client, url, flywheel dir) of the app serving both smoke checkpoints with corrections on."""
    from space.settings import ModelChoice, Settings

    flywheel = tmp_path_factory.mktemp("hostile") / "corrections"
    settings = Settings(image=ModelChoice(str(smoke_run), "test"), audio=ModelChoice(str(audio_run), "test"),
                        flywheel_dir=str(flywheel), max_file_size="20mb")
    demo, client = launch(settings)
    yield client, client.src.rstrip("/"), flywheel
    demo.close()


def _answer(client, url: str, case) -> str:
    """What the server said: the error message, or the result as text."""
    from gradio_client.exceptions import AppError

    if isinstance(case, hostile.Upload):
        try:
            return "ok: " + json.dumps(client.predict(_upload(case.path), *case.extra, api_name=case.api))[:300]
        except AppError as e:
            return "error: " + str(e)
    return hostile.raw_call(url, case.api, case.data)


def test_the_server_corpus(served, smoke_run, audio_run, tmp_path):
    client, url, flywheel = served
    cases = (hostile.image_uploads(tmp_path / "img") + hostile.audio_uploads(tmp_path / "aud")
             + hostile.raw_payloads(smoke_run))
    git_before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    hashes = {p: tree_hash(p) for p in (smoke_run, audio_run)}
    photo().save(tmp_path / "good.png")
    failures, rows = [], []
    for case in cases:
        base = reset_peak()
        answer = _answer(client, url, case)
        extra_mib = (kib("VmHWM") - base) / 1024
        ok = case.expect in answer and not answer.startswith("ok: ") if isinstance(case, hostile.Upload) else \
            case.expect in answer and "Internal Server Error" not in answer
        label, _ = client.predict(_upload(tmp_path / "good.png"), 3, api_name="/predict_image")  # still serving
        rows.append((case.category, getattr(case, "name", getattr(case, "path", "")), round(extra_mib), answer[:160]))
        if not ok or extra_mib >= MIB_LIMIT or not label.get("label"):
            failures.append(rows[-1])
    assert not failures, "\n".join(map(str, failures))
    counts = {c: sum(r[0] == c for r in rows) for c in ("images", "audio", "api")}
    assert counts["images"] >= 18 and counts["audio"] >= 16 and counts["api"] >= 30, counts
    assert subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                          text=True).stdout == git_before  # nothing written into the repo
    assert {p: tree_hash(p) for p in hashes} == hashes  # nor into the served checkpoints
    stray = [p for p in flywheel.rglob("*") if p.is_file() and p.name not in (".lock", ".salt")
             and "pending" not in p.parts and p.name != "corrections.jsonl"]
    assert not stray, stray  # a correction only ever lands in pending/


CLI = [  # (flags, what the message says): each refused before anything loads or is written
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--batch-size", "-5"], "--batch-size must be >= 1"),
    (["--grad-accum", "0"], "--grad-accum must be >= 1"),
    (["--val-pct", "1.5"], "--val-pct must be between 0 and 1"),
    (["--scale", "2", "1"], "--scale needs 0 < min <= max <= 1"),
    (["--ratio", "0", "1"], "--ratio needs 0 < min <= max"),
    (["--hflip", "7"], "--hflip must be within [0, 1]"),
    (["--folds", "1"], "--folds must be 0 (off) or >= 2"),
    (["--max-train-samples", "0"], "--max-train-samples must be >= 1"),
    (["--preresize", "2"], "--preresize must be >= 8 pixels"),
    (["--sample-rate", "10"], "--sample-rate must be within [1000, 384000] Hz"),
    (["--sample-rate", "10000000"], "--sample-rate must be within [1000, 384000] Hz"),
    (["--clip-seconds", "100000"], "--clip-seconds must be within [0.05, 60]"),
    (["--n-mels", "100000"], "keep --n-mels <= 512"),
    (["--hop-length", "1", "--clip-seconds", "60"], "mels × frames <="),
    (["--speed", "0.9"], "need 0 <= --speed <= 0.5"),
    (["--noise-prob", "2"], "need 0 <= --noise-prob <= 1"),
    (["--hub-model-id", "a/b/c", "--push-to-hub"], "is not a repo id"),
    (["--create-space", "org/space", "--hub-model-id", "org/m"], "--create-space serves the pushed model"),
    (["--push-to-hub"], "--push-to-hub and --create-space need --hub-model-id"),
]
ARGPARSE = [  # (flags, what argparse says): exit code 2, and a token-shaped value is never echoed
    (["--hub-tok", "hf_abcdefghijklmnopqrstuvwxyz0123"], "unrecognized arguments: --hub-tok"),
    (["--unknown-flag", "secret-value-123"], "unrecognized arguments: --unknown-flag"),
    (["--lr", "fast"], "argument --lr: invalid value: a number or auto"),
    (["--epochs", "1e9999"], "argument --epochs: invalid int value"),
    (["--mixed-precision", "fp64"], "argument --mixed-precision: invalid choice"),
]


@pytest.mark.parametrize("flags, message", CLI)
def test_cli_corpus_refuses_with_a_message(flags, message):
    from trainer.errors import UserError
    from trainer.flags import parse_config

    with pytest.raises(UserError) as err:
        parse_config(flags)
    assert message in str(err.value)


@pytest.mark.parametrize("flags, message", ARGPARSE)
def test_cli_corpus_argparse_errors_never_echo_values(flags, message, capsys):
    from trainer.flags import parse_config

    with pytest.raises(SystemExit) as exit_info:
        parse_config(flags)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err
    assert "hf_abcdefghijklmnopqrstuvwxyz0123" not in err and "secret-value-123" not in err


def _dataset(tmp_path, train, val, feature):
    import datasets
    import numpy as np
    from PIL import Image

    feats = datasets.Features({"image": datasets.Image(), "label": feature, "site": datasets.Value("string")})
    make = lambda labels: datasets.Dataset.from_dict(  # noqa: E731
        {"image": [Image.fromarray(np.full((8, 8, 3), i % 255, np.uint8)) for i in range(len(labels))],
         "label": labels, "site": [f"s{i}" for i in range(len(labels))]}, features=feats)
    datasets.DatasetDict({"train": make(train), "validation": make(val)}).save_to_disk(str(tmp_path / "ds"))
    return str(tmp_path / "ds")


DATASETS = [  # (train labels, val labels, feature kind, extra DataConfig fields, message)
    ([0, 1] * 4, [0, -1], "classlabel", {}, "rows without a usable label"),
    (["a", "b", None, "a"], ["a", "b"], "string", {}, "(train: 1 of 4): None"),
    (["a", "b"] * 3, ["a", "zebra"], "string", {}, "has labels never seen in train: ['zebra']"),
    ([0, 1] * 4, [0, 1], "classlabel", {"label_column": "nope"}, "nope"),
    ([0, 1] * 4, [0, 1], "classlabel", {"group_column": "accent"}, "--group-column 'accent' is not a column"),
    ([0, 1] * 60, [0, 1] * 60, "classlabel", {"group_column": "site"}, "per-group metrics take at most 100"),
    ([0, 1] * 4, [0, 1], "classlabel", {"train_split": "training"}, "--train-split 'training' not found"),
    ([0, 1] * 4, [0, 1], "classlabel", {"test_split": "holdout"}, "--test-split 'holdout' not found"),
]


@pytest.mark.parametrize("train, val, kind, fields, message", DATASETS)
def test_dataset_corpus_refuses_with_a_message(tmp_path, train, val, kind, fields, message):
    import datasets

    from trainer.config import DataConfig
    from trainer.data.bundle import build_data
    from trainer.errors import UserError

    feature = datasets.ClassLabel(names=["a", "b"]) if kind == "classlabel" else datasets.Value("string")
    with pytest.raises(UserError) as err:
        build_data(DataConfig(dataset=_dataset(tmp_path, train, val, feature), **fields), seed=0)
    assert message in str(err.value)


def test_the_corpus_has_at_least_80_cases(tmp_path, smoke_run):
    from tests.test_app_hostile import test_an_untrusted_config_json_out_of_bounds_is_refused as configs

    server = (len(hostile.image_uploads(tmp_path / "i")) + len(hostile.audio_uploads(tmp_path / "a"))
              + len(hostile.raw_payloads(smoke_run)))
    config_cases = len(configs.pytestmark[0].args[1])  # the config.json cases, parametrized there
    total = server + len(CLI) + len(ARGPARSE) + len(DATASETS) + config_cases
    assert total >= 80, total


def _grey_png(path, w: int, h: int):
    """A flat grey PNG of w × h: a few tens of KiB on disk, w·h pixels once decoded."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((h, w), 128, np.uint8)).save(path)
    return path


@pytest.mark.slow
@pytest.mark.timing
def test_a_strip_costs_no_more_than_an_ordinary_image_of_its_pixels(served, tmp_path):
    """8 × 8,000,000 and 8,000,000 × 8 px strips (64 MP, the pixel cap; ~60 KiB each) once asked timm's resize for
    ~21 GiB: now cut to 20:1 around their centre, each costs at most what a 8,000 × 8,000 image does (the same
    pixels; CPU time of the serving process, on this machine), grows peak RSS < 512 MiB, and says what it did."""
    import resource

    client, url, _ = served
    photo().save(tmp_path / "good.png")

    def cost(path, api: str) -> tuple[float, float, object]:
        base, before = reset_peak(), resource.getrusage(resource.RUSAGE_SELF)
        answer = client.predict(_upload(path), 3, api_name=api)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return cpu, (kib("VmHWM") - base) / 1024, answer

    square = _grey_png(tmp_path / "square.png", 8000, 8000)
    for api in ("/predict_image", "/classify_image"):
        cost(square, api)  # warm: the first request of an endpoint pays for more than its image
        normal_cpu = min(cost(square, api)[0] for _ in range(2))
        for w, h in ((8, 8_000_000), (8_000_000, 8)):
            cpu, mib, answer = cost(_grey_png(tmp_path / f"strip_{w}x{h}.png", w, h), api)
            assert mib < MIB_LIMIT and cpu <= 2 * normal_cpu, (api, w, h, cpu, normal_cpu, mib)
            if api == "/predict_image":
                assert answer[0]["label"] and f"a {w}×{h} strip (over 20:1): classified its centre" in answer[1]
            else:
                assert answer["labels"] and answer["verdict"]
            assert client.predict(_upload(tmp_path / "good.png"), 3, api_name="/predict_image")[0]["label"]


def test_the_aspect_bound_cuts_strips_to_their_centre_and_leaves_photos_alone():
    import numpy as np
    from PIL import Image

    from trainer.data.images import MAX_ASPECT, bound_aspect, to_rgb

    photo_ = Image.new("RGB", (MAX_ASPECT * 10, 10))
    assert bound_aspect(photo_) is photo_ and to_rgb(photo_) is photo_  # within the ratio: the very same pixels
    strip = Image.fromarray(np.arange(10 * 1000, dtype=np.uint16).reshape(1000, 10).astype(np.float32) // 10)
    cut = bound_aspect(strip)
    assert cut.size == (10, 10 * MAX_ASPECT)
    rows = np.asarray(cut)[:, 0]
    assert rows[0] == 400 and rows[-1] == 599  # the middle 200 of the 1,000 rows
    assert to_rgb(Image.new("L", (5000, 10))).size == (10 * MAX_ASPECT, 10)
