"""Hub round trip against the local Hub-API test double: push, model card, pull by revision, Space, offline, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes.hub.server import LocalHub
from tests.helpers.cli import REPO, SMOKE, cli_env, tree_hash

TOKEN = "hf_timmspaceSECRET0123456789abcdef"  # a distinctive value, searched for everywhere afterwards
USER = "testuser"


@pytest.fixture
def hub(tmp_path):
    """A running local Hub that accepts TOKEN for USER; stopped at the end."""
    server = LocalHub(tmp_path / "hub", tokens={TOKEN: USER})
    server.start()
    yield server
    server.stop()


def hub_env(hub: LocalHub, home: Path, token: str | None = TOKEN, **extra: str) -> dict:
    """Environment of a client process: our endpoint, LFS (not Xet), an isolated HF_HOME, online."""
    env = cli_env(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0",
                  HF_HUB_DISABLE_TELEMETRY="1", **extra)
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def run(args: list[str], env: dict, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python <args>` from the repo root; on unexpected failure show its output."""
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


# Loads a model through plain timm (hf-hub: or local-dir:) and prints its logits on a fixed input.
LOGITS = """
import json, sys, timm, torch
torch.manual_seed(0)
m = timm.create_model(sys.argv[1], pretrained=True).eval()
x = torch.randn(2, *m.pretrained_cfg["input_size"])
with torch.no_grad():
    y = m(x)
print(json.dumps({"logits": y.tolist(), "labels": m.pretrained_cfg["label_names"]}))
"""


def logits(ref: str, env: dict) -> dict:
    """Logits and label names of `ref` loaded with plain timm in a fresh process."""
    return json.loads(run(["-c", LOGITS, ref], env).stdout.strip().splitlines()[-1])


def upload_commits(hub: LocalHub, repo: str, repo_type: str = "model", revision: str = "main") -> list[dict]:
    """The repo's commits made by our code (the Hub's own 'initial commit' on create excluded)."""
    return [c for c in hub.commits(repo, repo_type, revision) if "initial" not in c["title"].lower()]


@pytest.mark.slow
def test_train_push_pull_round_trip(hub, tmp_path, smoke_run):
    """2-step train → one commit → fresh cache loads identical logits; card metrics; revision pin; no state/."""
    out, repo = tmp_path / "run", f"{USER}/fmnist-tiny"
    env = hub_env(hub, tmp_path / "home_train", token=None)
    proc = run(["trainer/train.py", *SMOKE, "--max-steps", "2", "--output-dir", str(out), "--push-to-hub",
                "--hub-model-id", repo, "--hub-token", TOKEN, "--log-with", "tensorboard"], env)
    commits = upload_commits(hub, repo)
    assert len(commits) == 1, commits
    assert "test accuracy" in commits[0]["title"]
    files = hub.files(repo)
    assert not [f for f in files if f.startswith("state/")] and (out / "state").is_dir()
    for name in ("config.json", "model.safetensors", "README.md", "manifest.json", "train_config.json",
                 "resolved_config.json",
                 "eval/metrics.json", "eval/confusion_matrix.png", "eval/predictions.parquet"):
        assert name in files, name

    fresh = hub_env(hub, tmp_path / "home_fresh", token=None)  # empty cache, anonymous read of a public repo
    pulled, local = logits(f"hf-hub:{repo}", fresh), logits(f"local-dir:{out}", fresh)
    assert pulled == local
    assert pulled["labels"] == json.loads((out / "config.json").read_text())["label_names"]

    card_script = ("import json, sys\nfrom huggingface_hub import ModelCard\n"
                   "from huggingface_hub.repocard_data import model_index_to_eval_results\n"
                   "card = ModelCard.load(sys.argv[1])\n"
                   "_, res = model_index_to_eval_results(card.data.to_dict()['model-index'])\n"
                   "print(json.dumps({'library': card.data.library_name, 'pipeline': card.data.pipeline_tag,"
                   " 'results': [[r.dataset_split, r.metric_name, r.metric_value] for r in res]}))")
    card = json.loads(run(["-c", card_script, repo], fresh).stdout.strip().splitlines()[-1])
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert card["library"] == "timm" and card["pipeline"] == "image-classification"
    got = {(split, name): value for split, name, value in card["results"]}
    assert got[("test", "Accuracy (test)")] == round(metrics["test"]["accuracy"], 4)
    assert got[("validation", "Macro F1 (val)")] == round(metrics["val"]["f1_macro"], 4)

    first = commits[0]["id"]
    run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", repo], hub_env(hub, tmp_path / "h2"))
    assert len(upload_commits(hub, repo)) == 2
    assert logits(f"hf-hub:{repo}@{first}", fresh) == local
    assert logits(f"hf-hub:{repo}", fresh) == logits(f"local-dir:{smoke_run}", fresh)
    assert "***" in json.loads((out / "manifest.json").read_text())["command"]  # --hub-token was on the CLI
    assert list((out / "logs").rglob("*tfevents*"))  # tracker hparams are among the files searched
    assert_no_token(out, proc.stdout + proc.stderr, hub, repo)


def assert_no_token(out: Path, logs: str, hub: LocalHub, *repos: str) -> None:
    """The token is in no output file (tracker logs included), no log line and no pushed file."""
    assert TOKEN not in logs
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.parent.name == "logs" or "tfevents" in p.name for p in files) or "logs" not in {
        p.relative_to(out).parts[0] for p in files}
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    for repo in repos:
        for repo_type in ("model", "space"):
            for name, data in hub.files(repo, repo_type).items() if hub.has_repo(repo, repo_type) else ():
                assert TOKEN.encode() not in data, (repo, name)


@pytest.mark.slow
def test_create_space_files_pin_the_pushed_revision(hub, tmp_path, smoke_run):
    """--create-space: gradio front matter at our pin, packages.txt, app files, model pinned at the pushed sha."""
    repo, space = f"{USER}/fmnist-space-model", f"{USER}/fmnist-demo"
    proc = run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", repo, "--create-space", space],
               hub_env(hub, tmp_path / "home"))
    model_sha = upload_commits(hub, repo)[0]["id"]
    files = hub.files(space, "space")
    front = yaml.safe_load(files["README.md"].decode().split("---")[1])
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line)
    assert front["sdk"] == "gradio" and front["sdk_version"] == pins["gradio"] and front["app_file"] == "app.py"
    assert front["models"] == [repo] and front["python_version"] == "3.11"
    assert front["preload_from_hub"] == [f"{repo} config.json,model.safetensors {model_sha}"]
    assert "trainer/audio/frontend.py" in files and "trainer/checkpoint/read.py" in files
    assert not [f for f in files if f.startswith(("trainer/engine/", "trainer/hub/", "trainer/data/loaders"))]
    assert files["packages.txt"].decode().split() == ["ffmpeg"]
    reqs = files["requirements.txt"].decode()
    assert "timm==" + pins["timm"] in reqs and "gradio" not in reqs
    assert files["app.py"] == (REPO / "app.py").read_bytes() and "space/__init__.py" in files
    config = json.loads(files["space_config.json"])
    assert config["model"] == f"hf-hub:{repo}@{model_sha}"
    assert len(upload_commits(hub, space, "space")) == 1
    assert_no_token(smoke_run, proc.stdout + proc.stderr, hub, repo, space)
    served = serve_space(files, tmp_path / "space", hub_env(hub, tmp_path / "visitor", token=None))
    assert served["ref"] == config["model"] and served["source"] == "space_config.json"
    assert served["status"].startswith("✅") and served["label"] in served["labels"]
    assert served["labels"] == json.loads((smoke_run / "config.json").read_text())["label_names"]
    assert served["accuracy"] == json.loads((smoke_run / "eval" / "metrics.json").read_text())["test"]["accuracy"]


# Runs the pushed Space's own app.py (cwd = the Space checkout, so its copies of space/ and trainer/ are the
# ones imported), launches it and classifies an image through gradio_client, as a visitor of the Space would.
SERVE_SPACE = """
import json, sys
assert sys.path[0] in ("", sys.argv[1]) and "trainer" not in sys.modules
import app, trainer
from space import classifier
assert trainer.__file__.startswith(sys.argv[1]), trainer.__file__
from gradio_client import Client, handle_file
from PIL import Image
Image.new("RGB", (40, 40), (200, 30, 30)).save("probe.png")
_, url, _ = app.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
client = Client(url, verbose=False)
status = client.predict(api_name="/image_model")[0]
label, _ = client.predict(handle_file("probe.png"), 3, api_name="/predict_image")
metrics = client.predict("image", api_name="/metrics")
app.demo.close()
print(json.dumps({"ref": app.settings.image.ref, "source": app.settings.image.source, "status": status,
                  "label": label["label"], "labels": classifier.load_classifier(app.settings.image.ref).labels,
                  "accuracy": metrics["test"]["accuracy"]}))
"""


def serve_space(files: dict[str, bytes], root: Path, env: dict) -> dict:
    """Write a Space repo's files to root, run its app.py there against the Hub, and report what it served."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    env = dict(env, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", SERVE_SPACE, str(root)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_cached_model_loads_with_the_server_stopped(hub, tmp_path, smoke_run):
    """Once downloaded, hf-hub: loads (timm and our reader) from the cache while the Hub is unreachable."""
    repo = f"{USER}/cached"
    run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", repo], hub_env(hub, tmp_path / "push"))
    env = hub_env(hub, tmp_path / "home", token=None)
    online = logits(f"hf-hub:{repo}", env)
    reader = ("import sys\nfrom trainer.checkpoint.read import open_checkpoint\n"
              "path, cfg = open_checkpoint(sys.argv[1])\nprint(sorted(p.name for p in (path / 'eval').iterdir()))")
    assert "metrics.json" in run(["-c", reader, f"hf-hub:{repo}"], env).stdout
    hub.stop()
    assert logits(f"hf-hub:{repo}", env) == online
    assert "metrics.json" in run(["-c", reader, f"hf-hub:{repo}"], env).stdout


@pytest.mark.slow
def test_push_with_hub_down_keeps_checkpoint_and_retry_works(hub, tmp_path, smoke_run):
    """Unreachable Hub: exit 2 with a retry command, checkpoint untouched; the retry pushes once."""
    repo, before = f"{USER}/retry", tree_hash(smoke_run)
    env = hub_env(hub, tmp_path / "home")
    hub.stop()
    proc = run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", repo], env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "could not reach" in proc.stderr and "is complete and unchanged" in proc.stderr
    assert tree_hash(smoke_run) == before and TOKEN not in proc.stderr
    retry = proc.stderr.split("push it again with: ")[1].strip().split()
    assert retry[:3] == ["python", "-m", "trainer.hub"]
    hub.start(port=int(hub.url.rsplit(":", 1)[1]))
    run(retry[1:], env)
    assert len(upload_commits(hub, repo)) == 1


def test_bad_tokens_fail_before_training(hub, tmp_path):
    """No token / a wrong token: one clear line, exit 2, nothing trained or written."""
    out = tmp_path / "run"
    args = ["trainer/train.py", *SMOKE, "--output-dir", str(out), "--push-to-hub", "--hub-model-id", f"{USER}/x"]
    none = run(args, hub_env(hub, tmp_path / "empty_home", token=None), check=False)
    assert none.returncode == 2 and "needs a Hub token" in none.stderr and "hf auth login" in none.stderr
    wrong = run(args + ["--hub-token", "hf_wrong_token"], hub_env(hub, tmp_path / "home2", token=None), check=False)
    assert wrong.returncode == 2 and "rejected the token (401)" in wrong.stderr
    assert "hf_wrong_token" not in wrong.stderr + wrong.stdout
    assert not (out / "manifest.json").exists() and not (out / "state").exists()


# Opens references with our reader and prints each outcome (the error text when it fails).
OPEN = """
import json, sys
from trainer.errors import UserError
from trainer.checkpoint.read import open_checkpoint
res = {}
for ref in sys.argv[1:]:
    try:
        path, cfg = open_checkpoint(ref)
        res[ref] = "ok " + ",".join(cfg["label_names"][:2])
    except UserError as e:
        res[ref] = "error " + str(e)
print(json.dumps(res))
"""


@pytest.mark.slow
def test_pull_errors_are_clear(hub, tmp_path, smoke_run):
    """Unknown repo, private without token, not our checkpoint, newer schema, bad revision → clear messages."""
    env = hub_env(hub, tmp_path / "home")
    run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", f"{USER}/private", "--hub-private"], env)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 2}))
    (plain / "model.safetensors").write_bytes(b"\0" * 16)
    newer = tmp_path / "newer"
    subprocess.run(["cp", "-r", str(smoke_run), str(newer)], check=True)
    (newer / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    refs = [f"hf-hub:{USER}/missing", f"hf-hub:{USER}/private", f"hf-hub:{USER}/private@nobranch", str(plain),
            str(newer), f"{USER}/private"]
    anon = json.loads(run(["-c", OPEN, *refs], hub_env(hub, tmp_path / "anon", token=None)).stdout.splitlines()[-1])
    assert "repository not found" in anon[refs[0]]
    assert "repository not found" in anon[refs[1]] and "HF_TOKEN" in anon[refs[1]]
    assert "without label_names" in anon[refs[3]] and "schema 99" in anon[refs[4]]
    assert f"write hf-hub:{USER}/private" in anon[refs[5]]
    authed = json.loads(run(["-c", OPEN, *refs[1:3]], env).stdout.splitlines()[-1])
    assert authed[refs[1]].startswith("ok T-shirt/top,Trouser")
    assert "revision 'nobranch' not found" in authed[refs[2]]


@pytest.mark.slow
def test_every_epoch_pushes_snapshots_then_the_final_checkpoint(hub, tmp_path):
    """--hub-strategy every_epoch: a servable snapshot per epoch (in the background), the full checkpoint last."""
    out, repo = tmp_path / "run", f"{USER}/every-epoch"
    proc = run(["trainer/train.py", *SMOKE, "--max-steps", "8", "--output-dir", str(out), "--push-to-hub",
                "--hub-model-id", repo, "--hub-strategy", "every_epoch"], hub_env(hub, tmp_path / "home"))
    titles = [c["title"] for c in reversed(upload_commits(hub, repo))]  # oldest first
    assert titles[0].startswith("Epoch 1: val accuracy") and titles[-1].startswith("Upload test_resnet: test acc")
    assert len(titles) in (2, 3), titles  # epoch 2's push is skipped if epoch 1's is still running
    first = hub.files(repo, revision=list(reversed(upload_commits(hub, repo)))[0]["id"])
    assert {"config.json", "model.safetensors", "train_config.json"} <= set(first)
    assert hub.files(repo)["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert "push failed" not in proc.stdout + proc.stderr
    assert not [p for p in out.rglob("epoch_*") if "state" not in p.parts]  # no model left behind per epoch


def test_failed_background_push_never_stops_training(tmp_path, capsys):
    """An unreachable Hub inside EpochPusher: False and a logged line, no exception (training goes on)."""
    from huggingface_hub import HfApi

    from trainer.config import HubConfig
    from trainer.hub.push import EpochPusher

    hub = HubConfig(push_to_hub=True, hub_model_id=f"{USER}/x", hub_token=TOKEN)
    pusher = EpochPusher(hub, tmp_path / "snap", "accuracy", lambda d: (d / "config.json").write_text("{}"))
    pusher.api = HfApi(endpoint="http://127.0.0.1:9", token=TOKEN)  # port 9 (discard): connection refused
    assert pusher(0, {"val_accuracy": 0.5}) is False
    pusher.wait()
    logged = capsys.readouterr().out
    assert "epoch 1 push failed, training goes on" in logged and TOKEN not in logged


def test_hub_revision_pushes_to_that_branch_only(hub, tmp_path, smoke_run):
    """--hub-revision dev: the checkpoint lands on branch dev (created from main); main keeps what it had."""
    repo = f"{USER}/branch-push"
    env = hub_env(hub, tmp_path / "home")
    run(["-m", "trainer.hub", "push", str(smoke_run), "--hub-model-id", repo, "--hub-revision", "dev"], env)
    dev = hub.files(repo, revision="dev")
    assert dev["model.safetensors"] == (smoke_run / "model.safetensors").read_bytes()
    assert "model.safetensors" not in hub.files(repo)  # main: only what create_repo made
    assert upload_commits(hub, repo, revision="dev") and not upload_commits(hub, repo)
    fresh = hub_env(hub, tmp_path / "fresh", token=None)
    assert logits(f"hf-hub:{repo}@dev", fresh) == logits(f"local-dir:{smoke_run}", fresh)


PLANT = """
import sys
from huggingface_hub import HfApi
HfApi().upload_file(path_or_fileobj=b"cos\\nsystem\\n(S'echo owned'\\ntR.", path_in_repo="state/evil.pkl",
                    repo_id=sys.argv[1], revision="training-state")
"""


@pytest.mark.slow
def test_training_state_round_trip_through_a_hub_branch(hub, tmp_path):
    """--hub-push-state pushes pickle-free state to a branch (main untouched); another machine (fresh HF_HOME and
    output dir) continues with --resume hf-hub:…; a pickle planted on the branch is refused before any download."""
    from trainer.engine.portable_state import FILES

    repo = f"{USER}/stateful"
    base = [a for a in SMOKE if a not in ("--max-steps", "4", "--tta", "flip")]  # 256 samples: 4 steps an epoch
    first = run(["trainer/train.py", *base, "--epochs", "1", "--hub-model-id", repo, "--hub-push-state",
                 "--output-dir", str(tmp_path / "a")], hub_env(hub, tmp_path / "home"))
    assert "pushed training state (step 4)" in first.stdout
    branch = hub.files(repo, revision="training-state")
    assert {f"state/{name}" for name in FILES} | {"state/best_model.safetensors"} <= set(branch)
    assert not [f for f in branch if f.endswith((".pkl", ".bin", ".pt"))]
    assert not [f for f in hub.files(repo) if f.startswith("state/")]  # main never gets state
    other = hub_env(hub, tmp_path / "elsewhere")
    cont = run(["trainer/train.py", *base, "--epochs", "2", "--resume", f"hf-hub:{repo}@training-state",
                "--output-dir", str(tmp_path / "b")], other)
    assert f"resumed from hf-hub:{repo}@training-state (epoch 1 done, step 4)" in cont.stdout
    before = json.loads((tmp_path / "a" / "eval" / "history.json").read_text())
    after = json.loads((tmp_path / "b" / "eval" / "history.json").read_text())
    assert [r["epoch"] for r in after] == [1, 2] and after[0] == before[0] and after[1]["step"] == 8
    run(["-c", PLANT, repo], other)
    refused = run(["trainer/train.py", *base, "--epochs", "2", "--resume", f"hf-hub:{repo}@training-state",
                   "--output-dir", str(tmp_path / "c")], hub_env(hub, tmp_path / "third"), check=False)
    assert refused.returncode == 2 and "could run code when loaded (state/evil.pkl)" in refused.stderr
    assert "Nothing was downloaded" in refused.stderr and not list((tmp_path / "third").rglob("*.safetensors"))
