"""The public app against hostile callers: raw API payloads (paths, URLs, wrong types), formats PIL must not open,
upload size caps, and checkpoints whose config.json or samples.json someone else controls."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.helpers.app import free_port, launch, photo
from tests.helpers.hostile import raw_call
from tests.test_app import _probs, _upload

MAX_FILE = "64kb"


@pytest.fixture(scope="module")
def guarded(smoke_run):
    """(client, url, labels) of the app serving the smoke checkpoint with a 64 KB upload cap."""
    from space.settings import ModelChoice, Settings

    settings = Settings(image=ModelChoice(str(smoke_run), "test fixture"), max_file_size=MAX_FILE)
    demo, client = launch(settings)
    yield client, client.src.rstrip("/"), json.loads((smoke_run / "config.json").read_text())["label_names"]
    demo.close()


def test_a_payload_path_outside_the_upload_folder_is_refused(guarded, smoke_run, tmp_path):
    client, url, labels = guarded
    secret = tmp_path / "secret.png"
    photo().save(secret)  # a real image that the server could read, had it trusted the path
    for path in (str(secret), str(smoke_run / "config.json"), "/etc/passwd", "../../../etc/passwd"):
        answer = raw_call(url, "predict_image", [{"path": path, "meta": {"_type": "gradio.FileData"}}, 3])
        assert "event: error" in answer and "label" not in answer, (path, answer[:300])
        assert '"num_classes"' not in answer and "root:" not in answer
    label, _ = client.predict(_upload(secret), 3, api_name="/predict_image")  # the same file, uploaded: fine
    assert label["label"] in labels


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_url_payload_is_not_fetched_from_a_private_address(guarded):
    client, url, _ = guarded
    server = HTTPServer(("127.0.0.1", free_port()), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = f"http://127.0.0.1:{server.server_port}/internal.png"
        for payload in ({"path": target, "meta": {"_type": "gradio.FileData"}},
                        {"url": target, "path": None, "meta": {"_type": "gradio.FileData"}}, target):
            answer = raw_call(url, "predict_image", [payload, 3])
            assert "event: error" in answer, answer[:300]
        assert _Recorder.hits == []  # the server never reached into the private network
    finally:
        server.shutdown()


def test_wrong_types_for_every_argument_get_a_message_and_the_next_call_works(guarded, tmp_path):
    client, url, labels = guarded
    for data in ([12345, 3], [["a", "list"], 3], [{"path": 7}, 3], [None, "five"], ["data:image/png;base64,!!", 3],
                 [{"url": "data:image/png;base64,AAAA"}, 3]):
        answer = raw_call(url, "predict_image", data)
        assert "event: error" in answer or '"label"' not in answer, (data, answer[:300])
    photo().save(tmp_path / "ok.png")
    label, _ = client.predict(_upload(tmp_path / "ok.png"), 3, api_name="/predict_image")
    assert label["label"] in labels


def test_a_bad_top_k_in_the_batch_api_fails_only_its_own_request(guarded, tmp_path):
    client, _url, labels = guarded
    for i in range(4):
        photo(seed=i).save(tmp_path / f"{i}.png")
    ks = [3, "abc", -7, 10**9]
    with ThreadPoolExecutor(len(ks)) as pool:
        jobs = [pool.submit(client.predict, _upload(tmp_path / f"{i}.png"), k, api_name="/predict_image_batch")
                for i, k in enumerate(ks)]
        results = [j.result() for j in jobs]
    assert len(_probs(results[0][0])) == 3 and results[0][1] == ""
    assert not results[1][0].get("confidences") and "top_k must be a whole number" in results[1][1]
    assert len(_probs(results[2][0])) == 1 and len(_probs(results[3][0])) == len(labels)  # clamped, not failed


def test_the_batch_handler_isolates_each_bad_top_k(smoke_run, tmp_path, monkeypatch):
    """The handler itself (gradio passes raw values with preprocess=False): NaN, inf, text, a list, a bool."""
    from space.handlers import Handlers
    from space.settings import ModelChoice, Settings

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the files below count as uploads

    handlers = Handlers(Settings(image=ModelChoice(str(smoke_run), "test")))
    ks = [2, float("nan"), float("inf"), "x", [1], True, None]
    images = []
    for i in range(len(ks)):
        photo(seed=i).save(tmp_path / f"{i}.png")
        images.append({"path": str(tmp_path / f"{i}.png"), "orig_name": f"{i}.png"})
    labels, messages = handlers.predict_image_batch(images, ks)
    assert len(labels[0]) == 2 and messages[0] == ""
    for i in (1, 2, 3, 4, 5):
        assert labels[i] == {} and "top_k must be a whole number" in messages[i], (ks[i], messages[i])
    assert len(labels[6]) == 5 and messages[6] == ""  # missing: the default


def test_formats_outside_the_allowlist_are_not_opened(guarded, tmp_path):
    from gradio_client.exceptions import AppError
    from PIL import Image

    client, _url, labels = guarded
    eps = tmp_path / "drawing.png"  # renamed: the extension must not matter
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "image.ppm")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "image.tga")
    for path in (eps, tmp_path / "image.ppm", tmp_path / "image.tga"):
        with pytest.raises(AppError, match="not an image file that can be read"):
            client.predict(_upload(path), 3, api_name="/predict_image")
    photo().save(tmp_path / "ok.webp")
    assert client.predict(_upload(tmp_path / "ok.webp"), 3, api_name="/predict_image")[0]["label"] in labels


def test_uploads_over_max_file_size_are_refused_before_our_code(guarded, tmp_path):
    import numpy as np
    from PIL import Image

    client, _url, labels = guarded
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")  # ~190 KB of incompressible pixels
    assert (tmp_path / "big.png").stat().st_size > 64 * 1024
    with pytest.raises(Exception, match="(?i)exceeds the maximum file size|file size|too large"):
        client.predict(_upload(tmp_path / "big.png"), 3, api_name="/predict_image")
    photo().save(tmp_path / "small.png")
    assert client.predict(_upload(tmp_path / "small.png"), 3, api_name="/predict_image")[0]["label"] in labels


def test_storage_settings_from_flags_and_env():
    from space.settings import DELETE_CACHE_S, MAX_FILE_SIZE, parse_args, resolve
    from space.ui import build_demo

    default = resolve(parse_args([]), env={})
    assert default.max_file_size == MAX_FILE_SIZE and default.delete_cache_s == DELETE_CACHE_S
    assert default.launch_options()["max_file_size"] == MAX_FILE_SIZE
    assert build_demo(default).delete_cache == (DELETE_CACHE_S, DELETE_CACHE_S)
    env = resolve(parse_args([]), env={"MAX_FILE_SIZE": "5 MB", "DELETE_CACHE": "0"})
    assert env.max_file_size == "5mb" and env.delete_cache_s == 0 and build_demo(env).delete_cache is None
    assert resolve(parse_args(["--max-file-size", "2gb", "--delete-cache", "60"]), env={}).delete_cache_s == 60
    for argv, env in ((["--max-file-size", "lots"], {}), ([], {"DELETE_CACHE": "-1"}), ([], {"DELETE_CACHE": "x"})):
        with pytest.raises(SystemExit, match="error: "):
            resolve(parse_args(argv), env=env)


def test_an_unpinned_hub_model_on_a_space_warns_in_the_status_line():
    from space.handlers import pin_warning
    from space.settings import ModelChoice

    assert "not pinned" in pin_warning(ModelChoice("hf-hub:org/model", "MODEL_ID"))
    assert pin_warning(ModelChoice("hf-hub:org/model@3f2a9c1", "MODEL_ID")) == ""
    assert pin_warning(ModelChoice("/data/ckpt", "--model")) == ""


def _tampered(smoke_run, tmp_path, **changes):
    """A copy of the smoke checkpoint with config.json keys replaced (a repo someone else controls)."""
    out = tmp_path / "ckpt"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("state", "logs"))
    cfg = json.loads((out / "config.json").read_text())
    for key, value in changes.items():
        if key == "input_size":
            cfg["pretrained_cfg"]["input_size"] = value
        else:
            cfg[key] = value
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.mark.parametrize("changes, message", [
    ({"label_names": [f"c{i}" for i in range(100_001)], "num_classes": 100_001}, "label_names must be 2 to"),
    ({"label_names": ["only"], "num_classes": 1}, "label_names must be 2 to"),
    ({"label_names": ["a", 7], "num_classes": 2}, "label_names must be 2 to"),
    ({"input_size": [3, 30000, 30000]}, "input_size"),
    ({"input_size": [64, 32, 32]}, "input_size"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": 1e9}, "temperature"),
    ({"ood": {"score": "energy", "threshold": "NaN"}}, "ood` block"),
    ({"ood": {"score": "energy", "threshold": float("inf")}}, "ood` block"),
    ({"ood": ["energy"]}, "ood` block"),
    ({"modality": "audio", "audio": {"sample_rate": 10**9}}, "audio` block"),
    ({"modality": "audio", "audio": {"clip_seconds": 60.0, "hop_length": 1}}, "audio` block"),
])
def test_an_untrusted_config_json_out_of_bounds_is_refused(smoke_run, tmp_path, changes, message):
    from trainer.checkpoint.read import check_checkpoint
    from trainer.errors import UserError

    with pytest.raises(UserError, match=message):
        check_checkpoint(_tampered(smoke_run, tmp_path, **changes), "org/model")


def test_samples_json_cannot_point_outside_the_checkpoint(smoke_run, tmp_path):
    from space import eval_results

    root = tmp_path / "served"
    (root / "samples").mkdir(parents=True)
    photo().save(root / "samples" / "ok.png")
    photo().save(tmp_path / "outside.png")
    entries = [{"file": "samples/ok.png", "label": "a"}, {"file": "../outside.png", "label": "b"},
               {"file": str(tmp_path / "outside.png"), "label": "c"}, {"file": 5, "label": "d"}, "junk"]
    items = eval_results.example_items(root, {"examples": entries})
    assert [caption for _, caption in items] == ["a"]


def test_user_text_is_inert_markdown():
    from space.image_uploads import md_escape

    name = "<img src=x onerror=alert(1)>[click](http://evil)\n**bold**.wav"
    out = md_escape(name)
    import re

    assert "\n" not in out and re.search(r"(?<!\\)[<>\[\]()*]", out) is None  # every markup character escaped
    assert out.replace("\\", "") == " ".join(name.split())[:120]  # nothing lost but the markup
    assert len(md_escape("x" * 1000)) == 120
