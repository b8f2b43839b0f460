"""Soak: 16 well-behaved callers and 1 hostile caller cycling the hostile corpus against one app server for 60 s.

The server is `python app.py` in its own process (image + audio checkpoints, corrections on, in a temp folder).
Well-behaved callers send a good image to /predict_image in a loop; the hostile caller sends every case of
tests/helpers/hostile.py (bad files, raw payloads with paths, URLs and wrong types) round and round. Recorded:
errors of the well-behaved callers (the target is 0), their latency, how the hostile requests were answered, and
the server's resident memory (sampled every 0.5 s, and its peak via /proc/<pid>/clear_refs + VmHWM).
Writes bench/results/hostile_<date>.json.

    python bench/bench_hostile.py [--model outputs/smoke] [--audio-model outputs/spoken-digits] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.loadgen import REPO, client_for, start_server, stats  # noqa: E402
from bench.report import save_result  # noqa: E402
from tests.helpers import hostile  # noqa: E402
from tests.helpers.app import photo  # noqa: E402
from tests.helpers.memory import kib, reset_peak  # noqa: E402


def _hostile_call(client, url: str, case) -> str:
    """One corpus case: 'refused' (an error answer), 'answered' (a result), or 'http <code>'."""
    from gradio_client import handle_file

    if isinstance(case, hostile.Upload):
        try:
            client.predict(handle_file(str(case.path)), *case.extra, api_name=case.api)
            return "answered"
        except Exception:  # noqa: BLE001 - the refusal is the expected outcome
            return "refused"
    text = hostile.raw_call(url, case.api, case.data)
    if text.startswith("http "):
        return text.split(":", 1)[0]
    return "refused" if "event: error" in text else "answered"


def soak(url: str, pid: int, image: Path, cases: list, callers: int, seconds: float) -> dict:
    """Run the callers until the deadline; sample the server's memory meanwhile."""
    from gradio_client import handle_file

    good_clients = [client_for(url) for _ in range(callers)]
    bad_client = client_for(url)
    ms, errors, outcomes, rss = [], [], {}, []
    lock = threading.Lock()
    base = reset_peak(pid)  # the server's peak RSS := its RSS now
    deadline = time.perf_counter() + seconds

    def good(client) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                label, _ = client.predict(handle_file(str(image)), 3, api_name="/predict_image")
                assert label.get("label"), label
                with lock:
                    ms.append(1000 * (time.perf_counter() - t0))
            except Exception as e:  # noqa: BLE001 - counted: the target is none
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])

    def bad() -> None:
        i = 0
        while time.perf_counter() < deadline:
            outcome = _hostile_call(bad_client, url, cases[i % len(cases)])
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            i += 1

    threads = [threading.Thread(target=good, args=(c,)) for c in good_clients] + [threading.Thread(target=bad)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss.append(kib("VmRSS", pid))
        time.sleep(0.5)  # a sampling interval, not a measurement
    return {"well_behaved": {**stats(ms), "callers": callers, "errors": len(errors),
                             "error_samples": sorted(set(errors))[:5]},
            "hostile": {"requests": sum(outcomes.values()), "corpus_cases": len(cases), "outcomes": outcomes},
            "server_memory_mib": {"start": round(base / 1024), "max_sampled": round(max(rss) / 1024),
                                  "end": round(rss[-1] / 1024), "peak_over_start": round(
                                      (kib("VmHWM", pid) - base) / 1024)}}


def main() -> None:
    """Start the server, soak it, write the results JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--model", default="outputs/smoke")
    p.add_argument("--audio-model", default="outputs/spoken-digits")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--callers", type=int, default=16)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = (hostile.image_uploads(tmp / "img") + hostile.audio_uploads(tmp / "aud")
                 + hostile.raw_payloads(Path(args.model).resolve()))
        photo().save(tmp / "good.png")
        proc, url = start_server(["app.py", "--model", args.model, "--audio-model", args.audio_model,
                                  "--flywheel-dir", str(tmp / "corrections")])
        try:
            result = soak(url.rstrip("/"), proc.pid, tmp / "good.png", cases, args.callers, args.seconds)
        finally:
            proc.kill()
    result = {"date": date.today().isoformat(), "command": " ".join(["python bench/bench_hostile.py", *sys.argv[1:]]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": Path(args.model).name,
              "audio_model": Path(args.audio_model).name, "seconds": args.seconds, **result}
    save_result(result, args.out, "hostile")

if __name__ == "__main__":
    main()
