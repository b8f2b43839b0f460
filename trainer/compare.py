"""Pick a checkpoint: `python trainer/compare.py CKPT [CKPT ...] [--metric accuracy] [--latency-budget-ms N]`.

Accuracy is the optimising metric, latency the satisficing one: among the checkpoints whose single-input p95
latency (eval/metrics.json, measured on the device each was trained on) is within the budget, the best by
--metric wins. Prints a table (within budget first) with the hardware of each latency, and the pick; exits 1 when
none meets the budget. A budget over latencies measured on different (or unrecorded) hardware is refused unless
--allow-mixed-hardware. A checkpoint is a local dir or hf-hub:org/name[@revision], opened and checked as the app
opens it.
"""

from __future__ import annotations

import sys

from trainer.errors import CLIParser, UserError, exit_on_user_error

LOWER_IS_BETTER = {"loss", "ece", "nll"}


def row(ref: str, metric: str, split: str | None) -> dict:
    """The numbers compare needs from one checkpoint's eval/metrics.json."""
    import json

    from trainer.checkpoint.read import open_checkpoint

    path, config = open_checkpoint(ref)
    metrics_file = path / "eval" / "metrics.json"
    if not metrics_file.is_file():
        raise UserError(f"{ref}: no eval/metrics.json (was it written by trainer/train.py?).")
    metrics = json.loads(metrics_file.read_text())
    split = split or metrics.get("primary_split", "test")
    numbers = metrics.get(split)
    if not isinstance(numbers, dict) or metric not in numbers:
        raise UserError(f"{ref}: eval/metrics.json has no {metric!r} for the {split} split.")
    p95 = numbers.get("latency_ms_p95_batch1", numbers.get("latency_ms_batch1"))  # older runs: the median only
    # written beside the latency by trainer.evaluation.predict.measure_latency; older runs recorded "device" only
    return {"checkpoint": ref, "architecture": config.get("architecture"), "split": split,
            metric: float(numbers[metric]), "latency_ms_p95": p95, "device": numbers.get("device"),
            "hardware": numbers.get("latency_hardware")}


def mixed_hardware(rows: list[dict]) -> str | None:
    """Which hardware each latency was measured on, when not all on the same recorded hardware (None when they
    are, or when fewer than two checkpoints have a latency)."""
    measured = [r for r in rows if r["latency_ms_p95"] is not None]
    kinds = {r["hardware"] for r in measured}
    if len(measured) < 2 or (len(kinds) == 1 and None not in kinds):
        return None
    return "; ".join(f"{r['checkpoint']}: {r['hardware'] or 'hardware not recorded'}" for r in measured)


def rank(rows: list[dict], metric: str, budget: float | None) -> list[dict]:
    """Within budget first (best --metric first), then the rest; each row says whether it meets the budget."""
    sign = 1 if metric in LOWER_IS_BETTER else -1
    for r in rows:
        r["within_budget"] = budget is None or (r["latency_ms_p95"] is not None and r["latency_ms_p95"] <= budget)
    return sorted(rows, key=lambda r: (not r["within_budget"], sign * r[metric]))


def main(argv: list[str] | None = None) -> dict | None:
    """Rank the checkpoints, print the table and the pick."""
    p = CLIParser(prog="trainer/compare.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="checkpoint dirs or hf-hub:org/name[@revision]")
    p.add_argument("--metric", default="accuracy", help="the optimising metric in eval/metrics.json")
    p.add_argument("--split", help="the split to compare (default: each checkpoint's primary split)")
    p.add_argument("--latency-budget-ms", type=float, help="single-input p95 latency budget (ms)")
    p.add_argument("--allow-mixed-hardware", action="store_true",
                   help="apply the latency budget even when the latencies were measured on different hardware")
    args = p.parse_args(argv)
    rows = [row(ref, args.metric, args.split) for ref in args.checkpoints]
    mixed = mixed_hardware(rows) if args.latency_budget_ms is not None else None
    if mixed and not args.allow_mixed_hardware:
        raise UserError(f"the latencies were measured on different or unrecorded hardware ({mixed}), so a latency "
                        "budget would rank the machines, not the models. Train the candidates on one machine, "
                        "or pass --allow-mixed-hardware to rank them anyway.")
    if mixed:
        print(f"warning: latencies from different hardware ranked as if on one machine ({mixed})", flush=True)
    ranked = rank(rows, args.metric, args.latency_budget_ms)
    for r in ranked:
        latency = f"{r['latency_ms_p95']:.1f} ms" if r["latency_ms_p95"] is not None else "unknown"
        flag = "" if r["within_budget"] else "  (over budget)"
        print(f"{r[args.metric]:.4f}  p95 {latency:>10}  {r['checkpoint']}  [{r['architecture']}, {r['split']}]"
              f"  on {r['hardware'] or 'hardware not recorded'}{flag}", flush=True)
    pick = ranked[0] if ranked and ranked[0]["within_budget"] else None
    if pick is None:
        print(f"none of {len(ranked)} checkpoint(s) meets the {args.latency_budget_ms:g} ms budget", flush=True)
        sys.exit(1)
    latency = f"{pick['latency_ms_p95']:.1f} ms" if pick["latency_ms_p95"] is not None else "unknown"
    where = f" on {pick['hardware']}" if pick["hardware"] else ""
    print(f"pick: {pick['checkpoint']} ({args.metric} {pick[args.metric]:.4f}, p95 {latency}{where})", flush=True)
    return pick


def cli() -> None:
    """The `timm-space-compare` console script."""
    exit_on_user_error(main)


if __name__ == "__main__":
    cli()
