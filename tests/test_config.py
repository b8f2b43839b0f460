"""The one config: flat CLI flags from nested dataclasses, YAML overlay, validation, secrets never saved."""

from __future__ import annotations

import dataclasses
import json

import pytest

from trainer.config import TrainConfig
from trainer.errors import UserError
from trainer.flags import build_parser, load_train_config, parse_config, request_dict, resolved_dict, with_choices


def test_flat_flags_fill_nested_sections():
    cfg = parse_config(["--dataset", "beans", "--model", "resnet18", "--lr", "0.01", "--no-pretrained",
                        "--scale", "0.5", "1", "--balance", "loss", "--max-steps", "7"])
    assert cfg.data.dataset == "beans" and cfg.model.model == "resnet18" and cfg.model.pretrained is False
    assert cfg.optim.lr == 0.01 and cfg.augment.scale == [0.5, 1.0] and cfg.balance == "loss" and cfg.max_steps == 7


def test_every_field_has_a_flag_with_help():
    help_text = build_parser().format_help()
    for flag in ("--dataset", "--val-pct", "--img-size", "--aa", "--freeze-epochs", "--model-ema", "--folds",
                 "--resume", "--hub-token", "--decode-cache", "--grad-accum", "--mixed-precision"):
        assert flag in help_text, flag


def test_yaml_overlay_then_cli_wins(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 0.005\n  opt: sgd\nepochs: 4\nbatch-size: 16\n")
    cfg = parse_config(["--config", str(path), "--epochs", "9"])
    assert (cfg.optim.lr, cfg.optim.opt, cfg.epochs, cfg.batch_size) == (0.005, "sgd", 9, 16)


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"unknown option\(s\) \['learning_rate'\]"):
        parse_config(["--config", str(path)])


@pytest.mark.parametrize("argv, message", [
    (["--val-pct", "1.5"], "--val-pct must be between 0 and 1 (exclusive), got 1.5"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--scale", "0.9", "0.2"], "--scale needs 0 < min <= max <= 1"),
    (["--lr", "-1"], "--lr must be > 0"),
])
def test_validation_messages(argv, message):
    with pytest.raises(UserError) as e:
        parse_config(argv)
    assert message in str(e.value)


def test_saved_config_round_trips_without_the_token(tmp_path):
    cfg = parse_config(["--hub-token", "hf_secret_value", "--lr", "0.02"])
    cfg.save(tmp_path / "train_config.json")
    text = (tmp_path / "train_config.json").read_text()
    assert "hf_secret_value" not in text and json.loads(text)["hub"]["hub_token"] is None
    again = load_train_config(tmp_path / "train_config.json")
    assert again.optim.lr == 0.02 and isinstance(again, TrainConfig)


def test_default_workers_share_the_cores_among_local_processes(monkeypatch):
    from trainer.config import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers() == 8  # capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers() == 3  # 16 cores / 4 processes, one for the process itself
    assert parse_config([]).data.num_workers == 3 and parse_config(["--num-workers", "0"]).data.num_workers == 0


def test_choices_make_a_new_config_and_the_request_stays_readable():
    asked = parse_config(["--epochs", "3", "--lr", "auto"])
    chosen = with_choices(with_choices(asked, {"lr": 0.01, "img_size": 64}), {"lr": 0.02, "max_steps": 7})
    assert (asked.optim.lr, asked.model.img_size, asked.max_steps) == ("auto", None, None)  # never changed
    assert (chosen.optim.lr, chosen.model.img_size, chosen.max_steps) == (0.02, 64, 7)
    assert chosen.requested == {"lr": "auto", "img_size": None, "max_steps": None}  # the first value is the asked one
    assert request_dict(chosen) == request_dict(asked)
    resolved = resolved_dict(chosen)
    assert resolved["optim"]["lr"] == 0.02 and resolved["max_steps"] == 7 and resolved["time_budget"] is None
    assert "requested" not in resolved and set(resolved["explicit"]) >= {"lr", "img_size", "dataset", "seed"}
    with pytest.raises(dataclasses.FrozenInstanceError):  # nothing mutates a config after parsing
        chosen.optim.lr = 1.0


def test_a_saved_request_reruns_with_its_choices_open_and_a_resolved_run_is_fixed(tmp_path):
    from types import SimpleNamespace

    from trainer.engine.defaults import choose

    asked = parse_config(["--dataset", "x", "--batch-size", "32", "--no-pretrained"])
    run = with_choices(asked, {"lr": 3e-3, "time_budget": 5.0, "max_steps": 90})
    (tmp_path / "train_config.json").write_text(json.dumps(request_dict(run)))
    (tmp_path / "resolved_config.json").write_text(json.dumps(resolved_dict(run)))
    again = parse_config(["--config", str(tmp_path / "train_config.json"), "--seed", "1"])  # once refused: 'explicit'
    assert sorted(again.explicit) == ["batch_size", "dataset", "pretrained", "seed"] and again.seed == 1
    assert again.to_dict() == parse_config(["--dataset", "x", "--batch-size", "32", "--no-pretrained", "--seed",
                                            "1"]).to_dict()
    bundle = SimpleNamespace(modality="audio", train=None, input_column="audio")
    assert choose(again, bundle, cuda=False).keys() >= {"time_budget", "lr"}  # chosen afresh, as the first time
    fixed = parse_config(["--config", str(tmp_path / "resolved_config.json")])
    assert (fixed.optim.lr, fixed.max_steps, fixed.time_budget, fixed.batch_size) == (3e-3, 90, None, 32)
    assert choose(fixed, bundle, cuda=False) == {}  # every option fixed: nothing is chosen again
    (tmp_path / "bad.json").write_text(json.dumps({"explicit": ["no_such_flag"]}))
    with pytest.raises(UserError, match="'explicit' must list option names"):
        parse_config(["--config", str(tmp_path / "bad.json")])
