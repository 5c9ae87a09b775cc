"""The soak runner (soak/run.py, `make soak`) for 60 seconds with 100 clients.

Same run and same pass/fail rules as the long soak: the service as a subprocess on the FUSE
fake cameras, 2 client processes with mixed methods and reconnect churn (connections live
2..8 s), a hot-plug every 3 s; after the warm-up (here: until half the run, 30 s) the
server's RSS may grow by at most 15 MB and 20 %, its fd count by at most 20; no client may see a failure; the final camera list must match what is
plugged in; the server must exit 0 on SIGTERM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camera_service.testing.fakecams import fuse_unavailable_reason

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"ping", "get_camera_list", "get_camera_status", "get_metrics"}


@pytest.mark.timeout(115)
def test_soak_60_seconds_100_clients(tmp_path):
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(f"FUSE fake cameras unavailable: {reason}")
    out = tmp_path / "soak"
    proc = subprocess.run(
        [sys.executable, "-m", "soak", "--minutes", "1", "--clients", "100", "--out", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=105,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    report_path = out / "report.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    print(proc.stdout[-2500:])
    assert report["problems"] == [], report["problems"]
    assert (proc.returncode, report["verdict"], report["server_exit_code"]) == (0, "PASS", 0)

    growth = report["growth"]
    assert growth["rss_growth_mb"] <= 15.0 and growth["rss_growth_pct"] <= 20.0, growth
    assert growth["fd_growth"] <= 20, growth
    steady = [s for s in report["samples"] if s["phase"] == "steady"]
    assert len(steady) >= 20  # one sample a second for the ~30 s after the warm-up
    # Every client connection shows up as one server fd while they are all connected, and
    # all of them are released once the clients have gone.
    assert growth["fds_end"] - report["before_load"]["fds"] >= 90
    assert report["after_clients_left"]["fds"] - report["before_load"]["fds"] <= 20

    assert report["client_failures"] == {}
    assert set(report["requests_by_method"]) == METHODS
    assert report["requests"] >= 100 * 30  # ~1 request per client per second
    assert set(report["expected_errors"]) <= {"camera_not_found"}
    assert report["connects"] > 100  # reconnect churn happened
    assert report["hotplugs"] >= 15
    assert report["notifications"] > 0
