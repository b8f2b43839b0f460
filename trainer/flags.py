"""Flat CLI flags generated from the config dataclasses (trainer/config.py), YAML/JSON overlays, and the saved
request read back."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

from trainer.config import SECTIONS_CLASSES, TrainConfig
from trainer.errors import CLIParser, UserError


def _flag_fields() -> list[tuple[str | None, dataclasses.Field, Any]]:
    """Every leaf field as (section or None, field, resolved type)."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in SECTIONS_CLASSES:
            cls = SECTIONS_CLASSES[f.name]
            hints = typing.get_type_hints(cls)
            out += [(f.name, sub, hints[sub.name]) for sub in dataclasses.fields(cls)]
        elif not f.metadata.get("internal"):
            out.append((None, f, typing.get_type_hints(TrainConfig)[f.name]))
    return out


def _add_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, tp: Any) -> None:
    """One flat --flag for a field, typed from its annotation."""
    flag = "--" + f.name.replace("_", "-")
    meta = dict(f.metadata)
    kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta.pop("help", "")}
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in args if a is not type(None))
        args = typing.get_args(tp)
    if tp is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        return
    if typing.get_origin(tp) is Literal:
        kw["choices"], tp = list(args), str
    kw["type"] = meta.pop("type", tp if tp in (int, float) else str)
    parser.add_argument(flag, **kw, **meta)


def build_parser() -> argparse.ArgumentParser:
    """Flat CLI flags generated from the config dataclasses."""
    parser = CLIParser(
        prog="trainer/train.py", description="Fine-tune a timm model on a datasets source.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="YAML file of options (flat or nested keys); CLI flags override it")
    for _, f, tp in _flag_fields():
        _add_flag(parser, f, tp)
    return parser


def add_section_flags(parser: argparse.ArgumentParser, section: str, names: tuple[str, ...]) -> None:
    """These fields of one config section as flags, spelled, typed and explained exactly as train.py has them
    (unset ones stay out of the parsed namespace), for the other CLIs."""
    for sec, f, tp in _flag_fields():
        if sec == section and f.name in names:
            _add_flag(parser, f, tp)


def _flatten(d: dict) -> dict:
    """Accept nested ({data: {dataset: x}}) or flat YAML keys; dashes or underscores."""
    flat: dict = {}
    for key, value in d.items():
        key = key.replace("-", "_")
        if key in SECTIONS_CLASSES and isinstance(value, dict):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


def _from_flat(flat: dict, explicit: list[str] | None = None, requested: dict | None = None) -> TrainConfig:
    """Build the nested config from flat keys, rejecting unknown ones by name; `explicit`: the ones the user set
    (default: every key given)."""
    known = _sections_of()
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise UserError(f"unknown option(s) {unknown}; see `python trainer/train.py --help` for the list.")
    sections: dict[str, dict] = {name: {} for name in SECTIONS_CLASSES}
    top: dict = {}
    for key, value in flat.items():
        (sections[known[key]] if known[key] else top)[key] = value
    try:
        return TrainConfig(**{name: SECTIONS_CLASSES[name](**vals) for name, vals in sections.items()}, **top,
                           explicit=sorted(flat) if explicit is None else sorted(explicit),
                           requested=dict(requested or {}))
    except TypeError as e:
        raise UserError(f"bad option value: {e}") from None


def _sections_of() -> dict[str, str | None]:
    """flag name → its section (None: a top-level option)."""
    return {f.name: section for section, f, _ in _flag_fields()}


def _saved_explicit(loaded: dict, where: str) -> list[str] | None:
    """The `explicit` list of a saved train_config.json / resolved_config.json (None: a plain options file, where
    every key given counts as set)."""
    explicit = loaded.pop("explicit", None)
    loaded.pop("requested", None)  # internal bookkeeping, never an option
    if explicit is None:
        return None
    if not isinstance(explicit, list) or not set(explicit) <= set(_sections_of()):
        raise UserError(f"{where}: 'explicit' must list option names (as train_config.json writes it).")
    return explicit


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < --config file (YAML/JSON; a saved train_config.json re-runs its request) < explicit CLI flags."""
    args = vars(build_parser().parse_args(argv))
    flat: dict = {}
    explicit: list[str] | None = None
    yaml_path = args.pop("config", None)
    if yaml_path:
        import yaml

        try:
            text = Path(yaml_path).read_text()
            # JSON (a saved train_config.json) as JSON: YAML 1.1 would read its 1e-06 as the string "1e-06"
            loaded = (json.loads(text) if yaml_path.endswith(".json") else _numbers(yaml.safe_load(text))) or {}
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise UserError(f"cannot read --config {yaml_path}: {e}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--config {yaml_path} must hold a mapping of option: value.")
        flat.update(_flatten(loaded))
        explicit = _saved_explicit(flat, f"--config {yaml_path}")
    flat.update(args)
    return _from_flat(flat, None if explicit is None else [*explicit, *args])


def _numbers(loaded: Any) -> Any:
    """A YAML mapping with the float fields' exponent-only numbers (`min_lr: 1e-6`, which YAML 1.1 reads as text)
    as floats."""
    if not isinstance(loaded, dict):
        return loaded
    floats = {f.name for _, f, tp in _flag_fields() if float in (tp, *typing.get_args(tp))}
    out = {}
    for key, value in loaded.items():
        if isinstance(value, dict):
            value = _numbers(value)
        elif key.replace("-", "_") in floats and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass  # the field's own check names it
        out[key] = value
    return out


def load_train_config(path: Path) -> TrainConfig:
    """Read a saved train_config.json (the request) or resolved_config.json back into a TrainConfig."""
    flat = _flatten(json.loads(Path(path).read_text()))
    return _from_flat(flat, _saved_explicit(flat, str(path)) or [])


def with_choices(cfg: TrainConfig, choices: dict[str, Any]) -> TrainConfig:
    """A new config: `cfg` with these flat options set by the trainer (its defaults, the LR test, the time plan).
    `cfg` itself is never changed, and the new one remembers each option's requested value."""
    section_of = _sections_of()
    unknown = sorted(set(choices) - set(section_of))
    if unknown:
        raise ValueError(f"not options: {unknown}")
    before = {key: getattr(getattr(cfg, section_of[key]) if section_of[key] else cfg, key) for key in choices}
    by_section: dict[str | None, dict] = {}
    for key, value in choices.items():
        by_section.setdefault(section_of[key], {})[key] = value
    top = by_section.pop(None, {})
    sections = {name: dataclasses.replace(getattr(cfg, name), **vals) for name, vals in by_section.items()}
    return dataclasses.replace(cfg, **sections, **top, explicit=list(cfg.explicit),
                               requested={**before, **cfg.requested})  # the first value seen is the asked one


def request_dict(cfg: TrainConfig) -> dict:
    """train_config.json: what was asked (the flags given + the defaults of the rest) and which were given, so
    `--config <run>/train_config.json` re-runs the request, choices made afresh (secrets removed)."""
    d = cfg.to_dict()
    section_of = _sections_of()
    for key, value in d.pop("requested").items():
        (d[section_of[key]] if section_of[key] else d)[key] = value
    return d


def resolved_dict(cfg: TrainConfig) -> dict:
    """resolved_config.json: the run as it was trained, every option fixed (all explicit, the time plan as its
    step count and no deadline), so `--config <run>/resolved_config.json` repeats it without choosing again."""
    d = cfg.to_dict()
    d.pop("requested")
    d["time_budget"] = None  # the plan's steps are in max_steps; a deadline would plan again
    d["explicit"] = sorted(_sections_of())
    return d
