"""Export a checkpoint to ONNX: `python trainer/export.py --checkpoint DIR [--opset N] [--dynamic-batch]`.

Writes DIR/model.onnx (one file, weights inside; temp file + rename) with torch's dynamo exporter (onnxscript),
checks it with onnx.checker, and compares it with the timm model on real inputs: the checkpoint's
eval/samples/*.png thumbnails through timm's eval transform when there are any, else seeded random inputs of the
input size. Exits 2 when the largest |Δlogit| exceeds 1e-4 (fp32): a wrong model.onnx is never left in place.
Reports batch-1 CPU latency of torch and ONNX Runtime (median of 20 runs after warm-up), prints a summary and
writes the numbers to DIR/eval/export.json. An audio checkpoint is exported on its spectrogram input: the log-mel
front end (trainer/audio/) stays in torch. model.onnx and eval/export.json are pushed with the checkpoint
(--push-to-hub, `python -m trainer.hub push`); `trainer/validate.py --backend onnx` evaluates model.onnx.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from trainer.errors import CLIParser, UserError, exit_on_user_error

TOLERANCE = 1e-4  # max |Δlogit| in fp32; kernels differ in summation order, a wrong graph is off by far more
MAX_SAMPLES = 64  # thumbnails used for the parity check
RANDOM_INPUTS = 8  # seeded random inputs when the checkpoint has no thumbnails (and for audio)
WARMUP, RUNS = 3, 20  # latency: median of RUNS single-input forwards after WARMUP
PROTOBUF_LIMIT = 2**31 - 2**26  # one .onnx file is a protobuf (2 GiB cap); keep headroom for the graph
REPORT = "export.json"  # in eval/, beside metrics.json
FRONT_END_NOTE = ("audio checkpoint: model.onnx takes the log-mel spectrogram {shape}; the log-mel front end "
                  "stays in torch: trainer/audio/")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Flags: checkpoint dir, opset, dynamic batch, output path."""
    p = CLIParser(prog="trainer/export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="local checkpoint dir (written by trainer/train.py)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the torch exporter's recommended one)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="any batch size (default: a fixed batch of 1, for single-input serving)")
    p.add_argument("--output", type=Path, help="where the .onnx goes (default: CHECKPOINT/model.onnx); elsewhere, "
                   "its report goes beside it as NAME.export.json instead of CHECKPOINT/eval/export.json")
    return p.parse_args(argv)


def checkpoint_dir(ref: str) -> Path:
    """The local dir to export from and write into (a Hub id is refused: the export is written beside it)."""
    if ref.startswith("hf-hub:"):
        raise UserError(f"{ref}: export writes model.onnx into the checkpoint dir; download it first "
                        "(`hf download ORG/NAME --local-dir DIR`) and pass --checkpoint DIR.")
    return Path(ref.removeprefix("local-dir:")).expanduser()


def export_onnx(model, example, dynamic: bool, opset: int | None, path: Path, arch: str) -> None:
    """torch.onnx.export with the dynamo exporter only; any failure is a UserError naming the architecture."""
    import torch

    batch = {0: torch.export.Dim("batch", min=1)} if dynamic else None
    try:
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=["input"],
                                    output_names=["logits"], dynamic_shapes=(batch,) if dynamic else None,
                                    external_data=False, verbose=False)
        program.save(str(path), external_data=False)  # one file: the Hub page and onnxruntime need no sidecar
    except Exception as e:  # noqa: BLE001 — whatever the exporter raises, the user needs the arch and the cause
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise UserError(f"ONNX export of {arch} failed (torch {torch.__version__}, dynamo exporter): "
                        f"{type(e).__name__}: {(lines[0] if lines else '')[:400]}") from None


def opset_of(path: Path) -> int:
    """The default-domain opset the file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def thumbnails(out: Path, pretrained_cfg: dict):
    """The checkpoint's eval/samples thumbnails through timm's eval transform (N, C, H, W), or None."""
    import torch
    from PIL import Image

    from trainer.data.images import eval_transform, to_rgb

    files = sorted(p for p in (out / "eval" / "samples").glob("*.png") if not p.name.startswith("explain_"))
    if not files:
        return None
    transform = eval_transform(pretrained_cfg)  # the float, normalised output: what the model is fed

    def load(file: Path):
        with Image.open(file) as image:
            return transform(to_rgb(image))

    return torch.stack([load(f) for f in files[:MAX_SAMPLES]])


def parity_inputs(out: Path, config: dict) -> tuple:
    """(inputs, where they came from): thumbnails for images; seeded waves through the log-mel front end for
    audio; seeded normal inputs of the input size when there is nothing better."""
    import torch

    generator = torch.Generator().manual_seed(0)
    if config.get("modality") == "audio":
        from trainer.audio.frontend import LogMel
        from trainer.config import AudioConfig

        cfg = AudioConfig.from_block(config["audio"])
        waves = 0.1 * torch.randn(RANDOM_INPUTS, cfg.clip_samples, generator=generator)
        with torch.no_grad():
            return LogMel(cfg)(waves), "seeded random waves through the log-mel front end"
    images = thumbnails(out, config["pretrained_cfg"])
    if images is not None:
        return images, "eval/samples thumbnails"
    size = tuple(config["pretrained_cfg"]["input_size"])
    return torch.randn(RANDOM_INPUTS, *size, generator=generator), "seeded random inputs"


def ort_session(path: Path, threads: int):
    """An ONNX Runtime CPU session with torch's thread count, so the latency comparison is like for like."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, x, dynamic: bool):
    """Logits of every input: one batch when the batch axis is dynamic, else one input at a time."""
    import numpy as np

    arr = x.numpy()
    name = session.get_inputs()[0].name
    if dynamic:
        return session.run(None, {name: arr})[0]
    return np.concatenate([session.run(None, {name: arr[i: i + 1]})[0] for i in range(len(arr))])


def median_ms(fn, x) -> float:
    """Median wall time (ms) of fn(x) over RUNS calls after WARMUP."""
    import time

    import numpy as np

    for _ in range(WARMUP):
        fn(x)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def check_and_compare(model, path: Path, x, dynamic: bool) -> dict:
    """onnx.checker, then max |Δlogit| against torch on x, then batch-1 latency of both (CPU)."""
    import onnx
    import torch

    from trainer.evaluation.predict import device_name

    onnx.checker.check_model(str(path))
    with torch.inference_mode():  # torch before the session exists: ONNX Runtime's idle threads spin for a while
        expected = model(x).numpy()
        torch_ms = median_ms(model, x[:1])
    session = ort_session(path, torch.get_num_threads())
    delta = float(abs(run_onnx(session, x, dynamic) - expected).max())
    name = session.get_inputs()[0].name
    onnx_ms = median_ms(lambda a: session.run(None, {name: a}), x[:1].numpy())
    return {"max_abs_logit_diff": delta, "max_abs_logit": float(abs(expected).max()),
            "latency_ms_batch1": {"torch": torch_ms, "onnxruntime": onnx_ms},
            "latency_runs": RUNS, "threads": torch.get_num_threads(), "latency_hardware": device_name("cpu"),
            "input": {"name": name, "shape": list(session.get_inputs()[0].shape)}}


def write_report(out: Path, target: Path, report: dict) -> Path:
    """eval/export.json for CHECKPOINT/model.onnx, else NAME.export.json beside the file; returns the path.

    eval/ is hashed as a whole in manifest.json (trainer/checkpoint/integrity.py), so the new report goes in the
    way the trainer writes a checkpoint: eval/ copied to .staging with the report, manifest.json with eval/'s new
    digest, both installed manifest last. A plain write would make the app refuse the checkpoint as tampered.
    """
    import json
    import shutil

    from trainer.checkpoint.contract import EVAL_DIR, MANIFEST, ONNX, STAGING_DIR
    from trainer.checkpoint.integrity import sha256_of
    from trainer.checkpoint.write import install, write_json

    if target.resolve() != (out / ONNX).resolve():
        path = target.with_name(f"{target.stem}.{REPORT}")
        write_json(path, report)
        return path
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).is_file() else {}
    files = manifest.get("files")
    if not isinstance(files, dict) or EVAL_DIR not in files:  # an older checkpoint without hashes
        (out / EVAL_DIR).mkdir(exist_ok=True)
        write_json(out / EVAL_DIR / REPORT, report)
        return out / EVAL_DIR / REPORT
    staging = out / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(out / EVAL_DIR, staging / EVAL_DIR)
    write_json(staging / EVAL_DIR / REPORT, report)
    files[EVAL_DIR] = sha256_of(staging / EVAL_DIR)
    write_json(staging / MANIFEST, manifest)
    install(staging, out)
    return out / EVAL_DIR / REPORT


def summary(path: Path, report: dict) -> str:
    """The one-line result: file, size, opset, batch, parity, latency."""
    p, lat = report["parity"], report["latency_ms_batch1"]
    batch = "dynamic batch" if report["dynamic_batch"] else "fixed batch 1"
    return (f"{path}: {report['bytes'] / 1e6:.2f} MB, opset {report['opset']}, {batch}; max |Δlogit| "
            f"{p['max_abs_logit_diff']:.2e} over {p['inputs']} inputs ({p['source']}); batch-1 CPU latency: "
            f"torch {lat['torch']:.2f} ms, ONNX Runtime {lat['onnxruntime']:.2f} ms (median of {RUNS}, "
            f"{report['threads']} thread{'s' if report['threads'] != 1 else ''})")


def torch_version() -> str:
    """The installed torch version (its exporter decides which opsets it can write)."""
    import torch

    return torch.__version__


def versions() -> dict:
    """The exporter's and runtime's versions (the numbers depend on them)."""
    from importlib import metadata

    return {pkg: metadata.version(pkg) for pkg in ("torch", "timm", "onnx", "onnxscript", "onnxruntime")}


def build(model, out: Path, config: dict, args: argparse.Namespace, tmp: Path) -> dict:
    """Export to tmp, check it, compare it with torch; the report (raises UserError above TOLERANCE)."""
    arch = config.get("architecture", "model")
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if size > PROTOBUF_LIMIT:
        raise UserError(f"{arch} has {size / 2**30:.1f} GiB of weights; a single-file ONNX holds under 2 GiB.")
    x, source = parity_inputs(out, config)
    n = 2 if args.dynamic_batch else 1  # an example batch of 2: torch.export would specialise a batch of 1
    example = x[:1].repeat(n, *[1] * (x.dim() - 1))
    export_onnx(model, example, args.dynamic_batch, args.opset, tmp, arch)
    opset = opset_of(tmp)
    if args.opset is not None and opset != args.opset:  # the exporter falls back to its own opset with a warning
        raise UserError(f"--opset {args.opset}: the torch {torch_version()} exporter wrote opset {opset} instead "
                        "(it converts only between the opsets it implements); nothing was written.")
    numbers = check_and_compare(model, tmp, x, args.dynamic_batch)
    report = {"bytes": tmp.stat().st_size, "opset": opset, "dynamic_batch": args.dynamic_batch,
              "architecture": arch, "modality": config.get("modality", "image"),
              "parity": {"max_abs_logit_diff": numbers.pop("max_abs_logit_diff"), "inputs": len(x),
                         "source": source, "tolerance": TOLERANCE, "max_abs_logit": numbers.pop("max_abs_logit")},
              **numbers, "versions": versions()}
    if report["modality"] == "audio":
        report["front_end"] = "log-mel spectrogram in torch: trainer/audio/ (model.onnx takes its output)"
    parity = report["parity"]
    if not parity["max_abs_logit_diff"] <= TOLERANCE:  # `not <=`: a NaN fails too
        raise UserError(f"ONNX parity check failed for {arch}: max |Δlogit| {parity['max_abs_logit_diff']:.3g} > "
                        f"{TOLERANCE:g} over {len(x)} inputs ({source}; logits up to {parity['max_abs_logit']:.3g})"
                        "; nothing was written. Try another --opset, or report the architecture and these numbers.")
    return report


def main(argv: list[str] | None = None) -> dict:
    """Open and check the checkpoint, export, verify, move the file into place, write and print the report."""
    args = parse(argv)
    out = checkpoint_dir(args.checkpoint)
    # imported here, not at the top: --help and flag errors answer before torch, timm and onnx load
    import torch

    from trainer.checkpoint.contract import ONNX, WEIGHTS
    from trainer.checkpoint.integrity import restore, sha256_of
    from trainer.checkpoint.read import load_model, open_checkpoint

    torch.set_flush_denormal(True)  # denormals slow x86 CPUs down ~4x: the latency would measure them
    if out.is_dir():
        restore(out)  # an interrupted write: put the set manifest.json trusts back first (as the pusher does)
    path, config = open_checkpoint(str(out))
    model = load_model(path)
    target = (args.output or out / ONNX).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")  # a leading dot and .tmp: the pusher skips it if left behind
    try:
        report = build(model, out, config, args, tmp)
        report.update(file=target.name, weights_sha256=sha256_of(out / WEIGHTS), onnx_sha256=sha256_of(tmp),
                      created=datetime.now(UTC).isoformat(timespec="seconds"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    where = write_report(out, target, report)
    print(summary(target, report), flush=True)
    if report["modality"] == "audio":
        print(FRONT_END_NOTE.format(shape=tuple(config["pretrained_cfg"]["input_size"])), flush=True)
    print(f"report: {where}", flush=True)
    return report


def cli() -> None:
    """The `timm-space-export` console script."""
    exit_on_user_error(main)


if __name__ == "__main__":
    cli()
