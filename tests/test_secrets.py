"""Secrets by value: a Hub token from any flag spelling, a YAML config, HF_TOKEN or the stored login never reaches an
artifact, a tracker, a stream or a message; abbreviated flags are refused without echoing their value."""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.cli import SMOKE, run_cli

HF_SHAPED = st.text(alphabet=string.ascii_letters + string.digits, min_size=20, max_size=40).map(lambda s: "hf_" + s)
# any other value (a self-hosted endpoint's token): only its registration can find it, not its shape
OTHER = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=10, max_size=40).filter(
    lambda s: not s.startswith(("hf_", "-")) and len(set(s)) > 4)
SOURCES = ["--hub-token VALUE", "--hub-token=VALUE", "yaml", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "stored login"]
ABBREVIATED = ["--hub-tok", "--hub-tok=", "--hub-t", "--hub-to"]


def _write_everything(argv: list[str], out: Path) -> str:
    """Parse argv and write what a run writes from its config: train_config, manifest, tracker hparams, card; plus
    a log line and an error message that quote the token. Returns the captured stream text."""
    from trainer.checkpoint.card import write_card
    from trainer.checkpoint.write import manifest, write_json
    from trainer.errors import ScrubbedStream, explain
    from trainer.flags import parse_config
    from trainer.train import _flat_hparams

    cfg = parse_config(argv)
    stored = Path(os.environ["HF_HOME"]) / "token"
    token = (cfg.hub.hub_token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
             or stored.read_text())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train_config.json", cfg.to_dict())
    write_json(out / "manifest.json", manifest(["trainer/train.py", *argv], cfg.to_dict(),
                                               {"dataset": cfg.data.dataset}, 1.0, {}))
    write_json(out / "hparams.json", _flat_hparams(cfg))
    write_card(out)
    buf = io.StringIO()
    stream = ScrubbedStream(buf)
    print(f"loading {cfg.data.dataset} with {token}", file=stream)
    print(f"error: {explain(OSError(f'bad header Authorization: Bearer {token}'), 'push', None)}", file=stream)
    return buf.getvalue()


@settings(derandomize=True, max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(token=st.one_of(HF_SHAPED, OTHER), source=st.sampled_from(SOURCES))
def test_a_token_from_any_source_reaches_no_file_and_no_stream(token, source):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        tmp = Path(tmp)
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
            mp.delenv(key, raising=False)
        mp.setenv("HF_HOME", str(tmp / "hf_home"))
        # the token also sits inside another value, so that only scrubbing by value can catch it there
        argv = ["--dataset", f"/data/{token}/images", "--output-dir", str(tmp / "run")]
        if source.startswith("--hub-token"):
            argv += [f"--hub-token={token}"] if "=" in source else ["--hub-token", token]
        elif source == "yaml":
            (tmp / "cfg.yaml").write_text(yaml.safe_dump({"hub": {"hub_token": token}}))
            argv += ["--config", str(tmp / "cfg.yaml")]
        elif source == "stored login":
            (tmp / "hf_home").mkdir()
            (tmp / "hf_home" / "token").write_text(token)
        else:
            mp.setenv(source, token)
        from trainer.errors import _stored_token

        _stored_token.cache_clear()
        streams = _write_everything(argv, tmp / "run")
        assert token not in streams and "***" in streams
        for path in (tmp / "run").rglob("*"):
            assert token.encode() not in path.read_bytes(), (source, path.name)
        assert "/data/***/images" in json.loads((tmp / "run" / "manifest.json").read_text())["command"]


@settings(derandomize=True, max_examples=20, deadline=None)
@given(token=st.one_of(HF_SHAPED, OTHER), spelling=st.sampled_from(ABBREVIATED))
def test_an_abbreviated_token_flag_is_refused_without_echoing_it(token, spelling):
    from trainer.flags import build_parser

    argv = [spelling + token] if spelling.endswith("=") else [spelling, token]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2 and token not in err.getvalue()
    assert "unrecognized arguments: " + spelling.rstrip("=") in err.getvalue()


def test_hub_tok_on_the_smoke_cli_leaves_the_token_nowhere(tmp_path):
    """The reproduction: `--hub-tok <token>` once set the token and escaped redaction (manifest, card)."""
    token = "hf_timmspaceABBREV0123456789abcdefXYZ"
    out = tmp_path / "run"
    proc = run_cli("trainer/train.py", *SMOKE, "--output-dir", str(out), "--hub-tok", token, check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --hub-tok" in proc.stderr
    assert token not in proc.stdout + proc.stderr and not out.exists()


def test_local_paths_are_relative_or_under_tilde_in_artifacts(monkeypatch, tmp_path):
    from trainer.errors import scrub_artifact

    monkeypatch.setenv("HOME", str(tmp_path / "alice"))
    (tmp_path / "alice" / "work").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "alice" / "work")
    got = scrub_artifact({"command": ["--dataset", f"{tmp_path}/alice/photos/birds", "--output-dir",
                                      f"{tmp_path}/alice/work/outputs/run"], "n": 3})
    assert got == {"command": ["--dataset", "~/photos/birds", "--output-dir", "outputs/run"], "n": 3}


def test_the_apps_own_token_never_reaches_a_caller(monkeypatch):
    """A Space holds HF_TOKEN to pull a private model: no error text or metrics view may show it."""
    from space import eval_results
    from space.handlers import user_error
    from trainer.errors import UserError, _stored_token

    token = "space-secret-0123456789"  # not Hub-shaped: only its value identifies it
    monkeypatch.setenv("HF_TOKEN", token)
    _stored_token.cache_clear()
    err = user_error(UserError(f"could not pull org/model: 401 for Bearer {token}"))
    assert token not in err.message and "***" in err.message
    config = {"label_names": ["a", "b"], "pretrained_cfg": {"input_size": [3, 8, 8]}}
    ev = {"manifest": {"command": ["trainer/train.py", "--dataset", f"/x/{token}"]}}
    summary = eval_results.summary_frame("local-dir:/ckpt", config, ev).to_string()
    assert token not in summary and "/x/***" in summary
