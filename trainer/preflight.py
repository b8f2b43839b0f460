"""Check a dataset before training: `python trainer/preflight.py --dataset X [the data flags of train.py]`.

Loads the splits exactly as trainer/train.py would (same flags, holdout and caps), then reports class counts and
imbalance, image sizes and modes, exact duplicates within and across splits (leakage) and files under two labels
(trainer/data/audit.py). Prints a summary, writes the full report as JSON (--output), and exits 1 when it
finds leakage or conflicting labels, so that a pipeline can stop there.

--near-duplicates adds perceptual near duplicates: every image is decoded for its 64-bit pHash, and pairs whose
hashes differ in at most k bits (--near-duplicates-distance, default 4; it implies --near-duplicates) are reported
within a split, across splits (near leakage) and under two labels. They are warnings for a person to read, not
a verdict: on small silhouettes (Fashion-MNIST) different items of one shape share a hash, so near findings do
not change the exit status. Exit status: 0 clean, 1 exact leakage or conflicting labels, 2 a usage or data error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainer.errors import CLIParser, exit_on_user_error

# pHash sets the bits above the median, nearly always 32 of 64, so distances are even: 4 and 5 find the same
# pairs. On Fashion-MNIST, k=4 matches 95-99% of images to their JPEG re-encoded or resized copies (k=6: 98-99.8%)
# while the unrelated look-alikes within k grow ~5x from 4 to 6.
DEFAULT_K = 4
MAX_K = 16  # beyond this the 64 bits cut into chunks too small to index, and unrelated images start to match


def main(argv: list[str] | None = None) -> dict:
    """Parse --output and --near-duplicates, hand the rest to train.py's flags, build the splits, report."""
    # imported here, not at the top: --help and flag errors answer before datasets loads
    from trainer.checkpoint.write import write_json
    from trainer.data.audit import preflight, summary_lines
    from trainer.data.bundle import build_data
    from trainer.flags import parse_config

    own = CLIParser(prog="trainer/preflight.py", description=__doc__.split("\n\n")[0], add_help=False)
    own.add_argument("--output", type=Path, help="where the JSON report goes (default: print the summary only)")
    own.add_argument("--near-duplicates", action="store_true",
                     help="also find perceptual near duplicates (pHash; decodes every image)")
    own.add_argument("--near-duplicates-distance", type=int, metavar="K",
                     help=f"largest pHash Hamming distance (of 64 bits) that counts as near, 0..{MAX_K} "
                          f"(default {DEFAULT_K}; implies --near-duplicates)")
    args, rest = own.parse_known_args(argv)
    k = args.near_duplicates_distance
    if k is not None and not 0 <= k <= MAX_K:
        own.error(f"--near-duplicates-distance must be in 0..{MAX_K}: unrelated images are ~32 bits apart")
    if args.near_duplicates and k is None:
        k = DEFAULT_K
    cfg = parse_config(rest)
    report = preflight(build_data(cfg.data, cfg.seed), near_duplicates=k)
    for line in summary_lines(report):
        print(line, flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, report)
        print(f"report written to {args.output}", flush=True)
    if report.get("leakage") or report.get("label_conflicts", {}).get("count"):  # exact findings only: see above
        sys.exit(1)
    return report


def cli() -> None:
    """The `timm-space-preflight` console script."""
    exit_on_user_error(main)


if __name__ == "__main__":
    cli()
