"""Load test of the Gradio app through gradio_client, all in one run (`make bench-app`, `--quick` for a smoke).

Measures, each as the latency a gradio_client caller sees (upload + queue + run + result):
  floor    a no-op endpoint with the same image input (a separate tiny gr.Blocks): the framework's own cost
  forward  the raw model forward pass at batch 1 (in this process, no server), plus decode and transform
  ours     /predict_image and /predict_image_batch at concurrency 1 → target p50 ≤ floor + forward + 30 ms
  load     N concurrent callers for D seconds on the floor, /predict_image and /predict_image_batch: errors,
           p50/p95, throughput, and server/client CPU per request → batch=True vs batch=False ratios
The servers run as subprocesses (`python app.py`, the real entry point) so that the callers' threads do not
share a GIL with them. Results: a table, and JSON in bench/results/ (--quick: bench/results/tmp/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.loadgen import load, sequential, start_server  # noqa: E402  (needs the repo on sys.path)

DEFAULT_MODELS = ("outputs/fashion-mnist-lite0", "outputs/smoke")  # the demo's model, else the smoke run
TARGET_SLACK_MS = 30.0


def serve_floor(port: int) -> None:
    """The framework floor: a no-op endpoint with our image input (filepath, preprocess=False) and outputs."""
    import gradio as gr

    from space.ui import IMAGE_CONCURRENCY, QUEUE_MAX

    with gr.Blocks() as demo:
        image, top_k = gr.Image(type="filepath"), gr.Number(value=5)
        label, info = gr.Label(), gr.Markdown()
        image.change(lambda _image, _k: ({"noop": 1.0}, ""), inputs=[image, top_k], outputs=[label, info],
                     api_name="noop", preprocess=False, concurrency_limit=IMAGE_CONCURRENCY)
    demo.queue(max_size=QUEUE_MAX).launch(server_name="127.0.0.1", server_port=port, quiet=True)


def forward_profile(ref: str, image: Path, n: int, warmup: int = 5) -> dict:
    """In-process p50 per server-side step at batch 1: decode, transform, raw forward, predict_images."""
    # predict_images = what the handler calls: transform + forward + calibrated softmax + label dict.
    import torch

    from space import classifier
    from space.image_uploads import decode_image

    clf = classifier.load_classifier(ref, "image")
    steps: dict[str, list[float]] = {"decode": [], "transform": [], "forward": [], "predict_images": []}
    for i in range(warmup + n):
        t = [time.perf_counter()]
        rgb, _ = decode_image(str(image))
        t.append(time.perf_counter())
        batch = clf.transform(rgb).unsqueeze(0)
        t.append(time.perf_counter())
        with torch.inference_mode():
            clf.model(batch)
        t.append(time.perf_counter())
        clf.predict_images([rgb])
        t.append(time.perf_counter())
        if i >= warmup:  # the first calls allocate and are not what a warm server pays
            for key, a, b in zip(steps, t, t[1:], strict=False):
                steps[key].append(1000 * (b - a))
    return {f"{k}_ms": round(float(np.median(v)), 3) for k, v in steps.items()} | {
        "torch_threads": torch.get_num_threads()}


def pick_model(arg: str | None) -> str:
    """--model, else the demo checkpoint, else outputs/smoke; trains the smoke one (`make smoke`) if neither."""
    if arg:
        return arg
    for rel in DEFAULT_MODELS:
        if (REPO / rel / "config.json").is_file():
            return str(REPO / rel)
    print("no checkpoint found: training the 4-step smoke model (make smoke)", flush=True)
    subprocess.run(["make", "--no-print-directory", "smoke"], cwd=REPO, check=True)
    return str(REPO / DEFAULT_MODELS[-1])


def make_image(checkpoint: Path, size: int, folder: Path) -> Path:
    """The upload used everywhere: an evaluation image the checkpoint ships (else noise), as a size² PNG."""
    from PIL import Image

    examples = sorted((checkpoint / "eval" / "samples").glob("example_*.png"))
    if examples:
        image = Image.open(examples[0]).convert("RGB")
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload_{size}.png"
    image.resize((size, size), Image.Resampling.BILINEAR).save(path)
    return path


def environment(model: str) -> dict:
    """Versions, cores, load and the model served: what a reader needs to compare runs."""
    from importlib.metadata import version

    config = json.loads((Path(model) / "config.json").read_text())
    sha = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "git_sha": sha.strip(),
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "versions": {p: version(p) for p in ("torch", "timm", "gradio", "gradio_client")},
            "model": {"ref": model, "architecture": config.get("architecture"),
                      "input_size": config.get("pretrained_cfg", {}).get("input_size"),
                      "num_classes": config.get("num_classes")}}


def run(args: argparse.Namespace, model: str, image: Path) -> dict:
    """Every measurement, in order: in-process profile, then both servers at concurrency 1 and under load."""
    results = {"forward": forward_profile(model, image, args.n)}
    floor_proc, floor_url = start_server(["bench/bench_app.py", "--serve-floor"])
    app_proc, app_url = start_server(["app.py", "--model", model, "--server-name", "127.0.0.1"])
    try:
        print("servers up; measuring at concurrency 1", flush=True)
        results |= sequential({"floor": (floor_url, "/noop"), "predict_image": (app_url, "/predict_image"),
                               "predict_image_batch": (app_url, "/predict_image_batch")}, image, args.n)
        for name, url, api, proc in (("floor", floor_url, "/noop", floor_proc),
                                     ("predict_image", app_url, "/predict_image", app_proc),
                                     ("predict_image_batch", app_url, "/predict_image_batch", app_proc)):
            print(f"{args.callers} callers × {args.duration:.0f} s on {api}", flush=True)
            results[f"load/{name}"] = load(url, api, image, args.callers, args.duration, proc.pid)
    finally:
        for proc in (floor_proc, app_proc):
            proc.terminate()
            proc.wait(timeout=30)
    return results


def verdict(r: dict) -> dict:
    """The acceptance checks: p50 target at concurrency 1, zero errors under load, the batch speed-up."""
    budget = r["floor"]["p50_ms"] + r["forward"]["forward_ms"] + TARGET_SLACK_MS
    single, batched = r["load/predict_image"], r["load/predict_image_batch"]
    return {"target_p50_ms": round(budget, 2), "predict_image_p50_ms": r["predict_image"]["p50_ms"],
            "target_met": r["predict_image"]["p50_ms"] <= budget,
            "overhead_vs_floor_ms": round(r["predict_image"]["p50_ms"] - r["floor"]["p50_ms"], 2),
            "load_errors": single["errors"] + batched["errors"],
            # what the callers saw (bounded by gradio_client's own CPU when it shares the box) …
            "batch_throughput_ratio": round(batched["throughput_rps"] / max(single["throughput_rps"], 1e-9), 2),
            # … and the server's capacity: requests per server-CPU-second, batch=True over batch=False
            "batch_server_capacity_ratio": round(single["server_cpu_ms_per_request"]
                                                 / max(batched["server_cpu_ms_per_request"], 1e-9), 2)}


def table(r: dict) -> str:
    """The results as a plain-text table."""
    f = r["forward"]
    rows = [("forward (raw, batch 1, in-process)", f["forward_ms"], None, None,
             f"decode {f['decode_ms']} + transform {f['transform_ms']} ms, {f['torch_threads']} torch thread(s)")]
    rows += [(f"{k} (concurrency 1)", r[k]["p50_ms"], r[k]["p95_ms"], None,
              f"handler {r[k]['handler_p50_ms']} ms" if "handler_p50_ms" in r[k] else "")
             for k in ("floor", "predict_image", "predict_image_batch")]
    rows += [(f"{k} ({r[k]['callers']} callers)", r[k]["p50_ms"], r[k]["p95_ms"], r[k]["throughput_rps"],
              f"{r[k]['errors']} errors / {r[k]['n']} ok; CPU ms/req server {r[k]['server_cpu_ms_per_request']}"
              f" client {r[k]['client_cpu_ms_per_request']}") for k in r if k.startswith("load/")]
    lines = [f"{'':44} {'p50 ms':>9} {'p95 ms':>9} {'req/s':>8}"]
    for name, p50, p95, rps, note in rows:
        cells = [f"{v:>9.1f}" if v is not None else f"{'':>9}" for v in (p50, p95)]
        lines.append(f"{name:44} {' '.join(cells)} {rps if rps is not None else '':>8} {note}")
    v = r["verdict"]
    lines.append(f"target p50 ≤ floor + forward + {TARGET_SLACK_MS:.0f} ms = {v['target_p50_ms']} ms: "
                 f"{'met' if v['target_met'] else 'NOT met'} ({v['predict_image_p50_ms']} ms); "
                 f"load errors {v['load_errors']}; batch/single throughput ×{v['batch_throughput_ratio']} "
                 f"(server capacity ×{v['batch_server_capacity_ratio']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run everything once, print the table and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help=f"checkpoint to serve (default: the first of {DEFAULT_MODELS} that exists)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 8 callers × 5 s, 10 samples")
    ap.add_argument("--callers", type=int, default=32, help="concurrent callers in the load phase")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per endpoint")
    ap.add_argument("-n", type=int, default=50, help="requests per concurrency-1 measurement")
    ap.add_argument("--image-size", type=int, default=224, help="side of the uploaded PNG")
    ap.add_argument("--out", type=Path, help="JSON path (default bench/results/app_<date>.json)")
    ap.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)  # internal: the floor server
    ap.add_argument("--server-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_floor:
        return serve_floor(args.server_port)
    if args.quick:
        args.callers, args.duration, args.n = min(args.callers, 8), min(args.duration, 5.0), min(args.n, 10)
    model = pick_model(args.model)
    image = make_image(Path(model), args.image_size, REPO / "bench" / "results" / "tmp")
    results = {"environment": environment(model), "settings": {k: v for k, v in vars(args).items()
                                                                 if k not in ("serve_floor", "server_port", "out")}}
    results["settings"]["upload_bytes"] = image.stat().st_size
    results |= run(args, model, image)
    results["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["verdict"] = verdict(results)
    print(table(results))
    folder = REPO / "bench" / "results" / ("tmp" if args.quick else "")
    out = args.out or folder / f"app_{date.today().isoformat()}{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main()
