"""The load generator behind bench_app.py: server subprocesses, gradio_client callers, latency and CPU stats."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SERVER_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
# Our /predict_image info line: "model X ms (preprocess + forward) · Y ms with decoding" (space/handlers.py).
INFO_MS = re.compile(r"model ([\d.]+) ms .*· ([\d.]+) ms with decoding")


def _free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Start a server subprocess on a free port; (process, URL) once it answers HTTP."""
    port = _free_port()
    log = tempfile.TemporaryFile()  # not a pipe: nobody drains it during the run, and a full pipe blocks the server
    proc = subprocess.Popen([sys.executable, *args, "--server-port", str(port)], cwd=REPO,
                            env={**os.environ, **SERVER_ENV}, stdout=subprocess.DEVNULL, stderr=log)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server {args} exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.2)  # polling for the port to open, not a measurement
    proc.kill()
    raise SystemExit(f"server {args} did not answer within {timeout:.0f} s")


def stats(ms: list[float]) -> dict:
    """p50/p95/mean/max of latencies in milliseconds."""
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {"n": len(ms), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2), "mean_ms": round(float(a.mean()), 2),
            "max_ms": round(float(a.max()), 2)}


def client_for(url: str) -> Any:
    """A gradio_client.Client for one caller (its own session, as a separate user would have)."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


def sequential(targets: dict[str, tuple[str, str]], image: Path, n: int, warmup: int = 3) -> dict[str, dict]:
    """Concurrency-1 latency of each {name: (url, api)}, plus our handler's own time from its info line."""
    # Round-robin over the endpoints, not one after the other: on 2 shared cores the machine drifts.
    from gradio_client import handle_file

    clients = {url: client_for(url) for url, _api in targets.values()}
    ms: dict[str, list[float]] = {name: [] for name in targets}
    handler: dict[str, list[float]] = {name: [] for name in targets}
    for i in range(warmup + n):
        for name, (url, api) in targets.items():
            start = time.perf_counter()
            out = clients[url].predict(handle_file(str(image)), 5, api_name=api)
            if i < warmup:
                continue
            ms[name].append(1000 * (time.perf_counter() - start))
            if isinstance(out, tuple | list) and isinstance(out[1], str) and (m := INFO_MS.search(out[1])):
                handler[name].append(float(m.group(2)))
    results = {name: stats(ms[name]) for name in targets}
    for name, values in handler.items():
        if values:  # latency minus this = upload + queue + transport: the framework's part around our code
            results[name]["handler_p50_ms"] = round(float(np.median(values)), 2)
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, api: str, image: Path, callers: int, seconds: float, server_pid: int) -> dict:
    """`callers` clients calling in a loop for `seconds`: errors, latency, throughput, CPU per request."""
    # The CPU of the server and of this client process are both counted: on a small box they share the cores.
    from gradio_client import handle_file

    clients = [client_for(url) for _ in range(callers)]  # connect first: setup is not part of the load
    ms, errors, lock = [], [], threading.Lock()
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    deadline = start + seconds

    def caller(client) -> None:
        """Call until the deadline; record every latency or error."""
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                client.predict(handle_file(str(image)), 5, api_name=api)
                with lock:
                    ms.append(1000 * (time.perf_counter() - t0))
            except Exception as e:  # counted, not raised: the point is how many fail
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])

    threads = [threading.Thread(target=caller, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, done = time.perf_counter() - start, max(len(ms), 1)
    return {**stats(ms), "callers": callers, "seconds": round(elapsed, 1), "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], "throughput_rps": round(len(ms) / elapsed, 2),
            "server_cpu_ms_per_request": round(1000 * (cpu_seconds(server_pid) - server_cpu) / done, 1),
            "client_cpu_ms_per_request": round(1000 * (time.process_time() - client_cpu) / done, 1)}
