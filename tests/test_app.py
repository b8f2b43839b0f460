"""The Gradio app end to end: launched on 127.0.0.1 with a real tiny checkpoint, called through gradio_client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.app import CONVERTED, REFUSED, launch, photo, write_converted, write_refused
from tests.helpers.cli import REPO, cli_env

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a test run
# the endpoints docs/app.md promises: the "Use via API" page lists these and only these
DOCUMENTED = {"/predict_image", "/predict_image_batch", "/classify_image", "/explain_image", "/predict_audio",
              "/metrics", "/confusion_matrix", "/confused_samples", "/correction_labels", "/save_correction",
              "/audio_correction_labels", "/save_audio_correction"}
# UI plumbing (page-load status lines, gallery and table clicks, the metrics tab's view): named, callable, not listed
UI_ONLY = {"/image_model", "/audio_model", "/metrics_view", "/pick_example", "/pick_cell", "/pick_pair",
           "/cell_summary"}


@pytest.fixture(scope="module")
def app(smoke_run):
    """gradio_client.Client of the app serving the session's smoke checkpoint, and its label names."""
    from space.settings import ModelChoice, Settings

    demo, client = launch(Settings(image=ModelChoice(str(smoke_run), "test fixture")))
    yield client, json.loads((smoke_run / "config.json").read_text())["label_names"]
    demo.close()


def _upload(path):
    """An image argument for the client: the file is uploaded as a user's browser would."""
    from gradio_client import handle_file

    return handle_file(str(path))


def _probs(label: dict) -> dict[str, float]:
    """{label: confidence} from the client's view of a gr.Label."""
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_the_api_page_lists_exactly_the_documented_endpoints(app):
    """view_api shows what docs/app.md promises; every other event is named too, hidden from the page, still
    callable (the page itself calls them)."""
    import httpx

    client, _ = app
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == DOCUMENTED and not api["unnamed_endpoints"]
    docs = (REPO / "docs" / "app.md").read_text()
    assert all(f"`{name}`" in docs or f'"{name}"' in docs for name in DOCUMENTED)
    everything = httpx.get(client.src_prefixed + "info?all_endpoints=true", timeout=30).json()
    assert set(everything["named_endpoints"]) == DOCUMENTED | UI_ONLY and not everything["unnamed_endpoints"]
    assert client.predict(api_name="/image_model")[0].startswith("✅")  # hidden, not private


def test_predict_image_gives_calibrated_probabilities_over_the_checkpoint_labels(app, tmp_path):
    client, labels = app
    photo().save(tmp_path / "shirt.png")
    label, info = client.predict(_upload(tmp_path / "shirt.png"), len(labels), api_name="/predict_image")
    probs = _probs(label)
    assert set(probs) == set(labels) and label["label"] == max(probs, key=probs.get)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    assert "ms" in info
    top3, _ = client.predict(_upload(tmp_path / "shirt.png"), 3, api_name="/predict_image")
    assert list(_probs(top3)) == sorted(probs, key=probs.get, reverse=True)[:3]
    assert client.predict(None, 5, api_name="/predict_image")[1] == ""  # a cleared input is not an error


def test_an_input_over_the_ood_threshold_is_not_one_of_the_known_classes(smoke_run, tmp_path):
    """The threshold of a copied checkpoint placed between the energy scores of two inputs: the API says which one
    is out of distribution, with its score, and still returns its top guesses."""
    import shutil

    import numpy as np
    import torch
    from PIL import Image

    from space.settings import ModelChoice, Settings
    from trainer.checkpoint.integrity import digests
    from trainer.checkpoint.read import load_model
    from trainer.data.images import eval_transform
    from trainer.evaluation.ood import UNKNOWN, energy_score

    ckpt = tmp_path / "ckpt"
    shutil.copytree(smoke_run, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["ood"]["score"] == "energy" and config["ood"]["target_recall"] == 0.95  # written by training
    photo().save(tmp_path / "shirt.png")
    Image.new("RGB", (40, 40), (255, 255, 255)).save(tmp_path / "blank.png")
    model, transform = load_model(ckpt), eval_transform(config["pretrained_cfg"])
    x = np.stack([transform(Image.open(tmp_path / n).convert("RGB")).numpy() for n in ("shirt.png", "blank.png")])
    with torch.inference_mode():
        scores = energy_score(model(torch.from_numpy(x)).numpy())
    assert abs(scores[0] - scores[1]) > 1e-3
    config["ood"]["threshold"] = float(scores.mean())
    (ckpt / "config.json").write_text(json.dumps(config))
    manifest = json.loads((ckpt / "manifest.json").read_text())  # the edit, recorded as a writer would
    manifest["files"] = digests(ckpt)
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    demo, client = launch(Settings(image=ModelChoice(str(ckpt), "test fixture")))
    try:
        answers = {n: client.predict(_upload(tmp_path / n), 3, api_name="/classify_image")
                   for n in ("shirt.png", "blank.png")}
        infos = {n: client.predict(_upload(tmp_path / n), 3, api_name="/predict_image")[1]
                 for n in ("shirt.png", "blank.png")}
    finally:
        demo.close()
    inside, outside = ("shirt.png", "blank.png") if scores[0] < scores[1] else ("blank.png", "shirt.png")
    assert answers[inside]["known"] is True and answers[inside]["verdict"] == "known"
    assert answers[outside]["known"] is False and answers[outside]["verdict"] == UNKNOWN
    for name, score in zip(("shirt.png", "blank.png"), scores, strict=True):
        assert answers[name]["ood_score"] == pytest.approx(score, abs=1e-3)
        assert len(answers[name]["labels"]) == 3  # the top guesses, either way
    assert UNKNOWN in infos[outside] and UNKNOWN not in infos[inside]


def test_bad_images_get_a_clear_message_and_the_app_keeps_serving(app, tmp_path):
    from gradio_client.exceptions import AppError

    client, labels = app
    cases = write_refused(tmp_path)
    assert len(cases) >= 10
    for path, message in cases.items():
        with pytest.raises(AppError) as err:
            client.predict(_upload(path), 5, api_name="/predict_image")
        assert message in str(err.value), (path.name, str(err.value))
    photo().save(tmp_path / "good.png")
    label, _ = client.predict(_upload(tmp_path / "good.png"), 5, api_name="/predict_image")
    assert label["label"] in labels


def test_odd_images_are_converted_and_say_how(app, tmp_path):
    client, labels = app
    results = {}
    for path, note in write_converted(tmp_path).items():
        label, info = client.predict(_upload(path), len(labels), api_name="/predict_image")
        assert label["label"] in labels and note in info, (path.name, info)
        results[path.name] = _probs(label)
    assert set(results) == set(CONVERTED)
    # the model saw the first GIF frame, and the photo turned upright
    from PIL import Image, ImageOps

    Image.open(tmp_path / "animated.gif").convert("RGB").save(tmp_path / "frame0.png")
    ImageOps.exif_transpose(Image.open(tmp_path / "rotated.jpg")).save(tmp_path / "upright.png")
    for name, reference in (("animated.gif", "frame0.png"), ("rotated.jpg", "upright.png")):
        label, _ = client.predict(_upload(tmp_path / reference), len(labels), api_name="/predict_image")
        assert _probs(label) == pytest.approx(results[name], abs=1e-6), name


def test_batch_endpoint_answers_each_request_and_isolates_a_bad_one(app, tmp_path):
    client, labels = app
    for i in range(5):
        photo(seed=i).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    names = [f"{i}.png" for i in range(5)] + ["bad.png"]
    with ThreadPoolExecutor(len(names)) as pool:
        jobs = [pool.submit(client.predict, _upload(tmp_path / n), len(labels), api_name="/predict_image_batch")
                for n in names]
        results = dict(zip(names, (j.result() for j in jobs), strict=True))
    for name in names[:-1]:
        label, message = results[name]
        assert message == "" and set(_probs(label)) == set(labels)
        single, _ = client.predict(_upload(tmp_path / name), len(labels), api_name="/predict_image")
        assert _probs(label) == pytest.approx(_probs(single), abs=1e-5)  # batching changes nothing
    assert REFUSED["text.png"].split(": ", 1)[1] in results["bad.png"][1]


def test_batch_endpoint_runs_concurrent_requests_in_fewer_forward_passes(app, smoke_run, tmp_path):
    """Requests that arrive while a batch runs wait and go through the model together: 8 concurrent callers, fewer
    than 8 forward passes, every request in exactly one of them."""
    import time

    from space import classifier

    client, labels = app
    n = 8
    for i in range(n):
        photo(seed=i).save(tmp_path / f"{i}.png")
    clf = classifier.load_classifier(str(smoke_run), "image")  # the instance the in-process server uses
    sizes = []

    def slow_forward(_module, args, _output):
        sizes.append(len(args[0]))
        time.sleep(0.5)  # as under real load: a forward long enough for the other callers to queue behind it

    hook = clf.model.register_forward_hook(slow_forward)
    try:
        with ThreadPoolExecutor(n) as pool:
            jobs = [pool.submit(client.predict, _upload(tmp_path / f"{i}.png"), 3, api_name="/predict_image_batch")
                    for i in range(n)]
            answers = [j.result() for j in jobs]
    finally:
        hook.remove()
    assert all(message == "" and len(_probs(label)) == 3 for label, message in answers)
    assert sum(sizes) == n and len(sizes) < n, sizes


def test_with_tta_the_ood_verdict_scores_the_view_its_threshold_was_fitted_on(app, smoke_run, tmp_path, monkeypatch):
    """The threshold is fitted on plain validation logits; with TTA on, the label comes from the averaged views but
    the verdict from the plain view's score. A threshold between the plain and the flip-averaged scores tells
    which one was used."""
    import numpy as np
    import torch
    from PIL import Image

    from space import classifier
    from space.image_uploads import decode_image
    from trainer.evaluation.ood import UNKNOWN, energy_score
    from trainer.evaluation.tta import TTA

    client, _labels = app
    clf = classifier.load_classifier(str(smoke_run), "image")
    half = np.zeros((32, 32, 3), np.uint8)
    half[:, :16] = 255  # a mirror changes it a lot
    scores = {}
    for name, im in (("half.png", Image.fromarray(half)), *((f"{s}.png", photo(seed=s)) for s in range(3))):
        im.save(tmp_path / name)
        x = clf.transform(decode_image(str(tmp_path / name))[0])[None]
        with torch.inference_mode():  # (plain, flip-averaged) energy
            scores[name] = tuple(float(energy_score(m(x).numpy())[0]) for m in (clf.model, TTA(clf.model, "flip")))
    name = max(scores, key=lambda n: abs(scores[n][0] - scores[n][1]))  # the upload whose two scores differ most
    plain, flip = scores[name]
    assert abs(plain - flip) > 1e-4  # far over float noise, so the threshold between them splits them
    threshold = (plain + flip) / 2
    monkeypatch.setattr(clf, "config", {**clf.config, "ood": {**clf.config["ood"], "threshold": threshold}})
    _label, info = client.predict(_upload(tmp_path / name), 3, "flip", api_name="/predict_image")
    assert (UNKNOWN in info) == (plain > threshold), (plain, flip, info)
    assert f"out-of-distribution score {plain:.2f} (threshold {threshold:.2f})" in info
    answer = client.predict(_upload(tmp_path / name), 3, api_name="/classify_image")
    assert answer["known"] == (plain <= threshold)  # the same verdict as without TTA


def test_metrics_come_from_the_checkpoint_eval_artifacts(app, smoke_run):
    client, labels = app
    expected = json.loads((smoke_run / "eval" / "metrics.json").read_text())
    got = client.predict("image", api_name="/metrics")
    assert got["test"]["accuracy"] == expected["test"]["accuracy"]
    view = client.predict("image", api_name="/metrics_view")
    (status, summary, headline, per_class, matrix, pairs, cell, note, cell_samples, top_loss, explained, calibration,
     _rel, preflight, _hist) = view
    assert "evaluated on the **test** split" in status
    rows = dict(summary["data"])
    assert rows["architecture"] == "test_resnet (image)" and "fashion-mnist" in rows["dataset"]
    assert "p50" in rows["eval latency"] and "preprocessing + forward" in rows["eval latency"]
    accuracy_row = next(row for row in headline["data"] if row[0] == "accuracy")
    assert accuracy_row[headline["headers"].index("test")] == round(expected["test"]["accuracy"], 4)
    assert [row[0] for row in per_class["data"]] == labels
    assert per_class["headers"] == ["label", "precision", "recall", "f1", "specificity", "support"]
    assert pairs["data"] and "Temperature" in calibration and top_loss
    assert cell["value"] and cell_samples and "sample(s)" in note
    assert "No file is in more than one split" in preflight and "| test | 128 |" in preflight
    # the matrix: a label column, then one column per predicted class, counts summing to the test size
    assert matrix["headers"][1:] == labels and [row[0] for row in matrix["data"]] == labels
    assert sum(sum(row[1:]) for row in matrix["data"]) == expected["test"]["num_samples"]
    recall = client.predict("image", "rows (recall)", api_name="/confusion_matrix")
    assert all(abs(sum(row[1:]) - 1) < 0.01 for row in recall["data"] if sum(row[1:]))
    confused = next(c[1] for c in cell["choices"] if c[1].split(",")[0] != c[1].split(",")[1])
    for key in (confused, cell["choices"][-1][1]):  # a confused cell, and the last (a correct one when kept)
        samples = client.predict("image", key, api_name="/confused_samples")
        true, pred = (labels[int(i)] for i in key.split(","))
        assert samples and all(s["caption"].startswith(f"{true} → {pred} · p ") for s in samples)
    # Grad-CAM overlays of the highest-loss samples, explaining the class each was mistaken for
    assert explained and all(e["caption"].endswith(f"where it saw {e['caption'].split(' → ')[1].split(':')[0]}")
                             for e in explained)


def test_audio_tab_without_an_audio_model_says_so(app, tmp_path):
    from gradio_client.exceptions import AppError

    client, _ = app
    assert "No audio model configured" in client.predict(api_name="/audio_model")
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    with pytest.raises(AppError, match="No audio model configured"):
        client.predict(_upload(tmp_path / "clip.wav"), api_name="/predict_audio")


def test_app_without_any_model_serves_clear_messages(tmp_path):
    from gradio_client.exceptions import AppError

    from space.settings import NO_IMAGE_MODEL, Settings

    demo, client = launch(Settings())
    try:
        assert NO_IMAGE_MODEL in client.predict(api_name="/image_model")[0]
        photo().save(tmp_path / "x.png")
        with pytest.raises(AppError, match="No image model configured"):
            client.predict(_upload(tmp_path / "x.png"), 5, api_name="/predict_image")
        assert NO_IMAGE_MODEL in client.predict("image", api_name="/metrics_view")[0]
        with pytest.raises(AppError, match="No image model configured"):
            client.predict("image", api_name="/metrics")
    finally:
        demo.close()


def test_repo_as_a_space_without_model_id_says_what_to_configure(tmp_path):
    """The repo itself is a Space (README front matter): without MODEL_ID it opens and names the variable to set."""
    from space.settings import parse_args, resolve

    settings = resolve(parse_args([]), env={"SPACE_ID": "org/timm-space"}, root=tmp_path)
    assert settings.on_space and settings.image.ref is None and settings.audio.ref is None
    demo, client = launch(settings)
    try:
        status = client.predict(api_name="/image_model")[0]
        assert "No image model configured for this Space" in status and "MODEL_ID" in status
        assert "AUDIO_MODEL_ID" in client.predict(api_name="/audio_model")
    finally:
        demo.close()


def test_importing_app_builds_the_layout_and_loads_no_model(smoke_run):
    code = ("import app\nfrom space import classifier\n"
            "assert classifier.loaded() == [] and classifier._CHECKPOINTS == {}, classifier.loaded()\n"
            "print(type(app.demo).__name__, app.settings.image.ref, app.settings.image.source)\n")
    env = cli_env(MODEL_ID=str(smoke_run), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Blocks", str(smoke_run), "MODEL_ID"]


def test_model_choice_order_flags_env_space_config_default(tmp_path):
    from space.settings import DEFAULT_IMAGE, parse_args, resolve

    args = parse_args(["--model", "flag-dir", "-q", "tests/x.py"])  # foreign arguments are ignored
    assert resolve(args, {"MODEL_ID": "org/env"}, tmp_path).image.ref == "flag-dir"
    none = parse_args([])
    assert resolve(none, {"MODEL_ID": "org/env"}, tmp_path).image.ref == "hf-hub:org/env"
    env = {"MODEL_ID": "hf-hub:org/env", "MODEL_REVISION": "v2"}
    assert resolve(none, env, tmp_path).image.ref == "hf-hub:org/env@v2"
    assert resolve(none, {**env, "MODEL_ID": "org/env@abc"}, tmp_path).image.ref == "hf-hub:org/env@abc"
    assert resolve(none, {}, tmp_path).image.ref is None
    (tmp_path / "space_config.json").write_text(json.dumps({"model": "hf-hub:org/space@sha1"}))
    assert resolve(none, {}, tmp_path).image.ref == "hf-hub:org/space@sha1"
    assert resolve(none, {"MODEL_REVISION": "main"}, tmp_path).image.ref == "hf-hub:org/space@main"
    assert resolve(none, {"MODEL_ID": "org/env"}, tmp_path).image.source == "MODEL_ID"
    (tmp_path / "space_config.json").unlink()
    (tmp_path / DEFAULT_IMAGE).mkdir(parents=True)
    (tmp_path / DEFAULT_IMAGE / "config.json").write_text("{}")
    assert resolve(none, {"MODEL_ID": " "}, tmp_path).image.ref == str(tmp_path / DEFAULT_IMAGE)
    assert resolve(parse_args(["--audio-model", "a", "--server-port", "7999"]), {}, tmp_path).server_port == 7999
