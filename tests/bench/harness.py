"""Benchmarks: run by `make bench`, never by `make test`. Each reports its figures as ratios to a baseline
measured in the same run, prints a table, and writes bench-results/<name>.json."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"
TURNS = int(os.environ.get("TURNLENS_BENCH_TURNS", "1000000"))


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Best wall time of repeat runs (seconds), and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def report(name: str, rows: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "turns": TURNS, "python": sys.version.split()[0],
               "machine": platform.machine(), "cpus": os.cpu_count(), **rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    width = max(len(k) for k in rows)
    print(f"\n== {name} ({TURNS:,} turns)")
    for key, value in rows.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"   {key.ljust(width)}  {shown}")


# --- memory (Linux /proc; getrusage elsewhere) -------------------------------------------------------------

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(key: str) -> float | None:
    """A `VmRSS`/`VmHWM` line of /proc/self/status in MB, or None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / 1e6  # kB
    except OSError:
        pass
    return None


def ru_maxrss_mb() -> float:
    """The process's peak RSS (getrusage): kilobytes on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def rss_mb() -> float | None:
    return _status_mb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the peak-RSS high-water mark to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else ru_maxrss_mb()
