"""Prints the compiled-vs-Python ratio table after pytest-benchmark's own table.

Each benchmark in this directory records `extra_info["case"]` and `extra_info["impl"]`
("cython" or "python"); the hook pairs them by case and divides the medians.
"""

from __future__ import annotations

import pytest


def _collect(config) -> dict[str, dict[str, float]]:
    session = getattr(config, "_benchmarksession", None)
    by_case: dict[str, dict[str, float]] = {}
    for bench in getattr(session, "benchmarks", None) or []:
        info = getattr(bench, "extra_info", None) or {}
        case, impl = info.get("case"), info.get("impl")
        if not case or not impl or not bench:
            continue
        by_case.setdefault(case, {})[impl] = bench.stats.median
    return by_case


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    by_case = _collect(config)
    if not by_case:
        return
    tr = terminalreporter
    tr.write_sep("-", "compiled _jsonrpc vs plain-Python baseline (medians, same run)")
    tr.write_line(f"{'case':<28}{'cython ns':>12}{'python ns':>12}{'python/cython':>15}")
    for case, impls in by_case.items():
        cy, py = impls.get("cython"), impls.get("python")
        ratio = f"{py / cy:.2f}x" if cy and py else "n/a"
        cy_s = f"{cy * 1e9:.0f}" if cy else "-"
        py_s = f"{py * 1e9:.0f}" if py else "-"
        tr.write_line(f"{case:<28}{cy_s:>12}{py_s:>12}{ratio:>15}")
