"""Check a dataset before training: `python trainer/preflight.py --dataset X [the data flags of train.py]`.

Loads the splits exactly as trainer/train.py would (same flags, holdout and caps), then reports class counts and
imbalance, image sizes and modes, exact duplicates within and across splits (leakage) and files under two labels
(trainer/data/preflight.py). Prints a summary, writes the full report as JSON (--output), and exits 1 when it
finds leakage or conflicting labels, so that a pipeline can stop there.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python trainer/preflight.py` puts trainer/ (not the repo root) on sys.path; the package imports need the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.errors import CLIParser, exit_on_user_error  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Parse --output, hand the rest to train.py's flags, build the splits, report."""
    # imported here, not at the top: --help and flag errors answer before datasets loads
    from trainer.checkpoint.write import write_json
    from trainer.config import parse_config
    from trainer.data.bundle import build_data
    from trainer.data.preflight import preflight, summary_lines

    own = CLIParser(prog="trainer/preflight.py", description=__doc__.split("\n\n")[0], add_help=False)
    own.add_argument("--output", type=Path, help="where the JSON report goes (default: print the summary only)")
    args, rest = own.parse_known_args(argv)
    cfg = parse_config(rest)
    report = preflight(build_data(cfg.data, cfg.seed))
    for line in summary_lines(report):
        print(line, flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, report)
        print(f"report written to {args.output}", flush=True)
    if report.get("leakage") or report.get("label_conflicts", {}).get("count"):
        sys.exit(1)
    return report


if __name__ == "__main__":
    exit_on_user_error(main)
