"""The app's own serving latency: rolling p50/p95 over its most recent requests, per endpoint."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

WINDOW = 500  # requests: recent enough to follow load, enough for a stable p95


class Latency:
    """Thread-safe rolling window of request times (ms) per endpoint (e.g. 'image', 'audio')."""

    def __init__(self, window: int = WINDOW) -> None:
        self._times: dict[str, deque] = {}
        self._window = window
        self._lock = threading.Lock()

    def record(self, endpoint: str, ms: float) -> None:
        """Add one request's time."""
        with self._lock:
            self._times.setdefault(endpoint, deque(maxlen=self._window)).append(float(ms))

    def summary(self, endpoint: str) -> dict:
        """{requests, p50_ms, p95_ms} over the window (requests 0 and no percentiles before the first one)."""
        with self._lock:
            times = np.asarray(self._times.get(endpoint, ()), dtype=np.float64)
        if not len(times):
            return {"requests": 0}
        return {"requests": int(len(times)), "p50_ms": round(float(np.percentile(times, 50)), 2),
                "p95_ms": round(float(np.percentile(times, 95)), 2)}

    def line(self, endpoint: str) -> str:
        """'serving p50 X ms · p95 Y ms (last N requests)', or '' before the first request."""
        s = self.summary(endpoint)
        if not s["requests"]:
            return ""
        return f"serving p50 {s['p50_ms']:.1f} ms · p95 {s['p95_ms']:.1f} ms (last {s['requests']} requests)"
