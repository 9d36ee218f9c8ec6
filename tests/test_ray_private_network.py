"""Runs tests/test_ray_scoring.py inside a private network namespace (`unshare --net`, loopback only).

A local Ray cluster's gRPC servers (GCS, raylet, workers) listen on every interface: Ray 2.58 ignores a
127.0.0.1 node address for them (checked with `ss -ltnp`). Servers our tests start must be reachable from this
machine only, so the Ray tests run where loopback is the only interface there is. They skip themselves when run
directly, outside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

PRIVATE = "TURNLENS_PRIVATE_NETWORK"


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def test_the_ray_tests_pass_in_a_network_namespace_with_loopback_only():
    pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")
    if os.environ.get(PRIVATE) == "1":
        pytest.skip("already inside the private network namespace")
    if not _can_unshare():
        pytest.skip("cannot make a private network namespace here (unshare --net needs root and iproute2's ip): "
                    "the Ray tests would start a cluster listening on every interface, so they do not run")
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider tests/test_ray_scoring.py'
    run = subprocess.run(["unshare", "--net", "sh", "-c", script, sys.executable], cwd=ROOT,
                         env={**os.environ, PRIVATE: "1"}, capture_output=True, text=True, timeout=1800)
    summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line]
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]
    assert summary and " skipped" not in summary[-1], run.stdout[-3000:]
