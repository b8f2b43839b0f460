"""The data flywheel end to end: a correction through the app's API, stored in imagefolder layout, then counted
in the next training run via `trainer/train.py --extra-data DIR` (the flywheel's round trip)."""

from __future__ import annotations

import io
import json

import pytest

from tests.helpers.app import launch, photo
from tests.helpers.cli import SMOKE, run_cli
from tests.helpers.data import make_imagefolder
from tests.test_app import _upload

CAP = 6  # the app's --flywheel-max-files in these tests


def _save(image, fmt: str = "PNG", **kw) -> bytes:
    """An image encoded to bytes."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def flywheel_app(smoke_run, tmp_path_factory):
    """(client, flywheel dir, label names) of the app serving the smoke checkpoint with corrections on."""
    from space.settings import ModelChoice, Settings

    root = tmp_path_factory.mktemp("flywheel") / "corrections"
    settings = Settings(image=ModelChoice(str(smoke_run), "test fixture"), flywheel_dir=str(root),
                        flywheel_max_files=CAP)
    demo, client = launch(settings)
    yield client, root, json.loads((smoke_run / "config.json").read_text())["label_names"]
    demo.close()


def _stored(root) -> list:
    """The corrections on disk (root/pending|accepted/<class folder>/<file>, no hidden temp files)."""
    return sorted(p for p in root.glob("*/*/*") if not p.name.startswith("."))


@pytest.mark.slow
def test_correction_round_trip_through_the_api_and_the_next_training_run(flywheel_app, smoke_run, tmp_path):
    client, root, labels = flywheel_app
    assert client.predict(api_name="/correction_labels")["choices"] == [[x, x] for x in labels]
    sent = {"shirt.png": ("T-shirt/top", _save(photo(seed=1))),  # '/' cannot be in a folder name: percent-encoded
            "bag.jpg": ("Bag", _save(photo(seed=2), "JPEG", quality=90)),
            "bag2.png": ("Bag", _save(photo(seed=3).convert("L")))}  # stored as sent, not converted to RGB
    for name, (label, data) in sent.items():
        (tmp_path / name).write_bytes(data)
        message = client.predict(_upload(tmp_path / name), label, api_name="/save_correction")
        assert message.startswith("✅ Saved as") and f"**{label}**" in message, message
    again = client.predict(_upload(tmp_path / "bag.jpg"), "Bag", api_name="/save_correction")
    assert again.startswith("Already saved")  # a double click stores nothing twice
    files = _stored(root)
    assert {p.parent.parent.name for p in files} == {"pending"}  # quarantined until reviewed
    assert sorted(p.parent.name for p in files) == ["Bag", "Bag", "T-shirt%2Ftop"]
    assert sorted(p.read_bytes() for p in files) == sorted(data for _, data in sent.values())
    assert {p.suffix for p in files} == {".png", ".jpg"} and not [p for p in root.rglob(".*")
                                                               if p.name not in (".lock", ".salt")]
    log = [json.loads(line) for line in (root / "corrections.jsonl").read_text().splitlines()]
    assert [r["label"] for r in log] == [label for label, _ in sent.values()]
    assert all(r["model"] == str(smoke_run) and r["predicted"] in labels and r["file"] for r in log)
    assert all(len(r["client"]) == 16 and "127.0.0.1" not in json.dumps(r) for r in log)  # a salted hash only

    import datasets  # each state folder is a plain imagefolder: datasets reads it as is

    ds = datasets.load_dataset("imagefolder", data_dir=str(root / "pending"), split="train")
    assert len(ds) == 3 and sorted(ds.features["label"].names) == ["Bag", "T-shirt%2Ftop"]

    listed = run_cli("-m", "space.review", str(root))  # the owner's review: list, accept two, reject one
    assert "3 pending, 0 accepted" in listed.stdout and (root / "review.html").is_file()
    ids = {line.split()[1]: [] for line in listed.stdout.splitlines()[:3]}
    for line in listed.stdout.splitlines()[:3]:
        ids[line.split()[1]].append(line.split()[0])
    run_cli("-m", "space.review", str(root), "accept", *ids["Bag"])
    run_cli("-m", "space.review", str(root), "reject", ids["T-shirt%2Ftop"][0][:8])
    assert sorted(p.parent.parent.name for p in _stored(root)) == ["accepted", "accepted"]

    out = tmp_path / "run"
    proc = run_cli("trainer/train.py", *SMOKE, "--extra-data", str(root), "--output-dir", str(out))
    assert f"extra data: 2 samples from {root} (Bag: 2)" in proc.stdout
    before = json.loads((smoke_run / "manifest.json").read_text())["dataset"]
    after = json.loads((out / "manifest.json").read_text())["dataset"]
    assert after["sizes"] == {**before["sizes"], "train": before["sizes"]["train"] + 2}  # val/test unchanged
    assert after["extra_data"] == [{"dir": str(root), "samples": 2, "skipped": 0, "per_class": {"Bag": 2}}]


def test_bad_label_bad_file_and_a_full_folder_get_clear_messages_and_the_app_keeps_serving(flywheel_app, tmp_path):
    from gradio_client.exceptions import AppError

    client, root, labels = flywheel_app
    photo(seed=10).save(tmp_path / "ok.png")
    with pytest.raises(AppError, match="'Socks' is not a label of the served model; pick one of: T-shirt/top"):
        client.predict(_upload(tmp_path / "ok.png"), "Socks", api_name="/save_correction")
    with pytest.raises(AppError, match="Pick the correct label"):
        client.predict(_upload(tmp_path / "ok.png"), None, api_name="/save_correction")
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    with pytest.raises(AppError, match="text.png: not an image file that can be read"):
        client.predict(_upload(tmp_path / "text.png"), "Bag", api_name="/save_correction")
    before = len(_stored(root))
    for i in range(CAP - before):  # fill up to the cap: each one is stored
        photo(seed=100 + i).save(tmp_path / f"{i}.png")
        assert "✅" in client.predict(_upload(tmp_path / f"{i}.png"), "Coat", api_name="/save_correction")
    with pytest.raises(AppError, match=f"The corrections folder is full \\({CAP} files; the limit is {CAP}\\)"):
        client.predict(_upload(tmp_path / "ok.png"), "Coat", api_name="/save_correction")
    assert len(_stored(root)) == CAP
    label, _ = client.predict(_upload(tmp_path / "ok.png"), 3, api_name="/predict_image")
    assert label["label"] in labels


def test_flywheel_off_by_default_says_how_to_turn_it_on(smoke_run, tmp_path):
    from gradio_client.exceptions import AppError

    from space.settings import ModelChoice, Settings

    demo, client = launch(Settings(image=ModelChoice(str(smoke_run), "test fixture")))
    try:
        update = client.predict(api_name="/correction_labels")
        assert update["choices"] == [] and update["interactive"] is False
        photo().save(tmp_path / "x.png")
        with pytest.raises(AppError, match="Corrections are off in this app.*--flywheel-dir DIR"):
            client.predict(_upload(tmp_path / "x.png"), "Bag", api_name="/save_correction")
        label, _ = client.predict(_upload(tmp_path / "x.png"), 3, api_name="/predict_image")
        assert label["label"]
    finally:
        demo.close()
    assert not list(tmp_path.rglob("*.jsonl"))


def test_unknown_label_folder_stops_training_with_the_known_labels(tmp_path):
    extra = make_imagefolder(tmp_path / "extra", {"Bag": 1, "Socks": 2})
    proc = run_cli("trainer/train.py", *SMOKE, "--extra-data", str(extra), "--output-dir", str(tmp_path / "out"),
                   check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: --extra-data {extra}: folder(s) ['Socks'] are not classes of the dataset" in proc.stderr
    assert "'T-shirt/top', 'Trouser'" in proc.stderr and not (tmp_path / "out" / "model.safetensors").exists()


def test_settings_flywheel_is_opt_in_even_on_a_space(tmp_path):
    from space.corrections import notice
    from space.settings import parse_args, resolve

    assert resolve(parse_args([]), {"SPACE_ID": "org/demo"}, tmp_path).flywheel_dir is None
    on = resolve(parse_args([]), {"SPACE_ID": "org/demo", "FLYWHEEL_DIR": "/tmp/fw", "FLYWHEEL_MAX_MB": "5"},
                 tmp_path)
    assert (on.flywheel_dir, on.flywheel_max_mb, on.on_space) == ("/tmp/fw", 5.0, True)
    text = notice(on)
    assert "exactly as uploaded" in text and "/tmp/fw" in text and "persistent storage" in text
    assert "lost at its next restart" in text  # a Space keeping corrections outside /data is warned
    flag = resolve(parse_args(["--flywheel-dir", "fw", "--flywheel-max-files", "3"]), {}, tmp_path)
    assert (flag.flywheel_dir, flag.flywheel_max_files) == ("fw", 3)
    with pytest.raises(SystemExit, match="FLYWHEEL_MAX_FILES must be > 0"):
        resolve(parse_args([]), {"FLYWHEEL_MAX_FILES": "0"}, tmp_path)


def test_store_caps_duplicates_and_the_label_folder_codec(tmp_path):
    from space.flywheel import Caps, Flywheel, image_upload
    from space.image_uploads import InputError
    from trainer.data.folder_labels import folder_to_label, label_to_folder
    from trainer.errors import UserError

    for label in ("T-shirt/top", ".hidden", "50%", 'a:b*c?"<>|\\', "Ünïcode 猫", "..", "plain"):
        folder = label_to_folder(label)
        assert "/" not in folder and not folder.startswith(".") and folder_to_label(folder, [label]) == label
    assert label_to_folder("Ünïcode 猫") == "Ünïcode 猫"  # only what a folder cannot hold is encoded
    rotated = photo(64, 32)
    exif = rotated.getexif()
    exif[0x0112] = 6
    (tmp_path / "phone.jpg").write_bytes(_save(rotated, "JPEG", exif=exif.tobytes()))
    upload = image_upload(str(tmp_path / "phone.jpg"), Caps())
    assert upload.data == (tmp_path / "phone.jpg").read_bytes() and upload.suffix == ".jpg"  # not re-encoded
    with pytest.raises(InputError, match="phone.jpg: the file is [0-9]+ kB; a correction may be at most 100 bytes"):
        image_upload(str(tmp_path / "phone.jpg"), Caps(file_bytes=100))
    small = Flywheel(tmp_path / "fw", Caps(total_bytes=len(upload.data) + 10))
    assert small.save(upload, "a/b", ["a/b"]).path.parent.name == "a%2Fb"
    assert small.save(upload, "a/b", ["a/b"]).duplicate
    (tmp_path / "other.png").write_bytes(_save(photo(seed=5)))
    full = r"The corrections folder is full \([0-9]+ kB stored; with this file [0-9]+ kB, over the limit"
    with pytest.raises(InputError, match=full):
        small.save(image_upload(str(tmp_path / "other.png"), Caps()), "a/b", ["a/b"])
    assert small.usage() == (1, len(upload.data))
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(UserError, match="cannot store the correction in .*a_file .*Nothing was saved"):
        Flywheel(tmp_path / "a_file").save(upload, "x", ["x"])


def test_audio_corrections_store_the_clip_as_sent(tmp_path):
    import numpy as np
    import soundfile as sf

    from space.flywheel import Caps, audio_upload
    from trainer.errors import UserError

    t = np.arange(8000) / 16000
    sf.write(tmp_path / "clip.flac", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    sf.write(tmp_path / "named.mp3.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="WAV")
    assert audio_upload(str(tmp_path / "clip.flac"), Caps()).suffix == ".flac"
    upload = audio_upload(str(tmp_path / "named.mp3.wav"), Caps())
    assert (upload.suffix, upload.modality) == (".wav", "audio")
    assert upload.data == (tmp_path / "named.mp3.wav").read_bytes()
    (tmp_path / "text.wav").write_text("this is text, renamed")
    with pytest.raises(UserError, match="text.wav: not an audio file that can be read"):
        audio_upload(str(tmp_path / "text.wav"), Caps())


def test_extra_rows_join_train_after_holdout_and_cap_and_folds_keep_them_out_of_val(tmp_path):
    from trainer.config import DataConfig
    from trainer.data.bundle import build_data
    from trainer.data.extra import split_off_extra
    from trainer.data.splits import label_array

    main = make_imagefolder(tmp_path / "main", {"cat": 6, "dog": 6})
    extra = make_imagefolder(tmp_path / "extra", {"dog": 3}, seed=1)
    (extra / ".dog.png.tmp").write_bytes(b"an interrupted save")  # hidden: ignored
    cfg = DataConfig(dataset=str(main), val_pct=0.5, max_train_samples=4, extra_data=[str(extra)], num_workers=0)
    bundle = build_data(cfg, seed=0)
    assert bundle.source["sizes"] == {"train": 4 + 3, "val": 6}
    base, rows = split_off_extra(bundle.train, bundle.source)
    assert len(base) == 4 and list(label_array(rows, "label")) == [bundle.label_names.index("dog")] * 3
    assert split_off_extra(base, {})[1] is None


def test_pending_corrections_wait_for_review_unless_asked(tmp_path, capsys):
    import datasets

    from space.flywheel import Flywheel, image_upload
    from trainer.data.extra import load_extra

    root = tmp_path / "fw"
    (tmp_path / "a.png").write_bytes(_save(photo(seed=1)))
    Flywheel(root).save(image_upload(str(tmp_path / "a.png"), __import__("space.flywheel").flywheel.Caps()),
                        "cat", ["cat", "dog"])
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    ds, info = load_extra(str(root), features, "image", "label", ["cat", "dog"], "image")
    assert ds is None and info["samples"] == 0 and "1 correction(s) in" in capsys.readouterr().out
    ds, info = load_extra(str(root), features, "image", "label", ["cat", "dog"], "image", include_pending=True)
    assert len(ds) == 1 and info["per_class"] == {"cat": 1}


def test_hourly_quota_per_client_and_who_the_client_is(tmp_path):
    from types import SimpleNamespace

    from space.flywheel import Caps, Flywheel, client_id, image_upload
    from space.image_uploads import InputError

    flywheel = Flywheel(tmp_path / "fw", Caps(per_client_hour=2))
    uploads = []
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(_save(photo(seed=20 + i)))
        uploads.append(image_upload(str(tmp_path / f"{i}.png"), Caps()))
    flywheel.save(uploads[0], "x", ["x"], client="203.0.113.5")
    flywheel.save(uploads[1], "x", ["x"], client="203.0.113.5")
    with pytest.raises(InputError, match="2 corrections in the last hour"):
        flywheel.save(uploads[2], "x", ["x"], client="203.0.113.5")
    flywheel.save(uploads[2], "x", ["x"], client="198.51.100.7")  # another visitor is not affected
    assert "203.0.113.5" not in (tmp_path / "fw" / "corrections.jsonl").read_text()
    behind = SimpleNamespace(headers={"x-forwarded-for": "203.0.113.5, 10.16.0.2"}, client=SimpleNamespace(
        host="10.16.0.2"))
    assert client_id(behind, behind_proxy=True) == "203.0.113.5"  # a Space: the proxy's first hop is the caller
    assert client_id(behind, behind_proxy=False) == "10.16.0.2"  # elsewhere the header is the caller's to forge
    assert client_id(SimpleNamespace(headers={}, client=SimpleNamespace(host="127.0.0.1")), True) == "127.0.0.1"
    assert client_id(None, True) is None


SAVER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from space.flywheel import Caps, Flywheel, Upload
from space.image_uploads import InputError
flywheel, stored = Flywheel(Path(sys.argv[2]), Caps(files=10)), 0
for i in range(6):
    try:
        flywheel.save(Upload(f"{sys.argv[3]}-{i}".encode() * 64, ".png", "image"), "x", ["x"])
        stored += 1
    except InputError:
        pass
print(stored)
"""


def test_the_caps_hold_across_processes(tmp_path):
    """Four processes saving at once into one folder capped at 10 files: exactly 10 stored (fcntl lock)."""
    import subprocess
    import sys

    from tests.helpers.cli import REPO

    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(REPO), str(tmp_path / "fw"), f"p{n}"],
                              stdout=subprocess.PIPE, text=True) for n in range(4)]
    counts = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(counts) == 10 and len(list((tmp_path / "fw" / "pending" / "x").glob("*.png"))) == 10
