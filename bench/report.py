"""Turning raw runs into medians and ratios, and printing them."""

from __future__ import annotations

import statistics
from typing import Any

from bench.peers import REFERENCE


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median ops/s, spread and median extra metrics over a peer's successful runs."""
    ops = [r["ops_per_s"] for r in runs]
    median = statistics.median(ops)
    metric_names = sorted({k for r in runs for k, v in r["metrics"].items() if _is_number(v)})
    return {
        "median_ops_per_s": median,
        # Range over median: a quick noise gauge, meaningful even with three runs.
        "spread": (max(ops) - min(ops)) / median,
        "metrics_median": {
            name: statistics.median(r["metrics"][name] for r in runs if name in r["metrics"])
            for name in metric_names
        },
    }


def ratios(peer_results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"nettools/gevent": 2.13, ...}``: reference median over each peer's median."""
    ref = peer_results.get(REFERENCE, {}).get("median_ops_per_s")
    if not ref:
        return {}
    return {
        f"{REFERENCE}/{peer}": ref / result["median_ops_per_s"]
        for peer, result in peer_results.items()
        if peer != REFERENCE and result.get("median_ops_per_s")
    }


def metric_ratios(peer_results: dict[str, dict[str, Any]],
                  names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{"p99_us": {"nettools/gevent": 0.8, ...}}`` for lower-is-better metrics."""
    ref = peer_results.get(REFERENCE, {}).get("metrics_median", {})
    out: dict[str, dict[str, float]] = {}
    for name in names:
        if not ref.get(name):
            continue
        out[name] = {
            f"{REFERENCE}/{peer}": ref[name] / result["metrics_median"][name]
            for peer, result in peer_results.items()
            if peer != REFERENCE and result.get("metrics_median", {}).get(name)
        }
    return out


def format_header(machine: dict[str, Any], versions: dict[str, str],
                  unavailable: list[str], repeat: int) -> str:
    cores = machine["cores"]
    usable = machine["usable_cores"]
    usable_note = ""
    if usable and len(usable) != cores:
        usable_note = f", usable {','.join(map(str, usable))}"
    load = " ".join(f"{x:.2f}" for x in machine["loadavg"]) if machine["loadavg"] else "n/a"
    pinned = (f"core {machine['pinned_core']} (taskset -c {machine['pinned_core']})"
              if machine["pinned_core"] is not None
              else "not pinned (needs taskset and a usable core 1)")
    peers = ", ".join(f"{peer} {version}" for peer, version in versions.items()) or "none"
    lines = [
        f"machine   {machine['cpu_model']}, {cores} cores{usable_note}, load {load}",
        f"python    {machine['python']} on {machine['platform']}",
        f"pinned    {pinned}",
        f"peers     {peers}",
    ]
    if unavailable:
        lines.append(f"missing   {', '.join(unavailable)} (unavailable, skipped)")
    lines.append(f"each figure is the median of {repeat} fresh-process runs; "
                 f"spread = (max-min)/median; ratio > 1 means {REFERENCE} is faster")
    return "\n".join(lines)


def format_case(name: str, case: dict[str, Any]) -> str:
    lines = [f"{name}  (n={case['n']:,}, {case['unit']}/s)"]
    lines.append(f"  {'peer':<13} {'median/s':>14} {'spread':>7}  {'runs':>5}")
    for peer, result in case["peers"].items():
        runs = f"{len(result['runs'])}/{result['attempts']}"
        if result["status"] == "unavailable":
            lines.append(f"  {peer:<13} {'unavailable':>14}")
        elif "median_ops_per_s" not in result:
            last_line = (result["errors"] or [""])[-1].strip().splitlines()[-1:] or [""]
            lines.append(f"  {peer:<13} {'failed':>14} {'':>7}  {runs:>5}  {last_line[0]}")
        else:
            extra = "  ".join(f"{k}={_short(v)}" for k, v in result["metrics_median"].items())
            lines.append(f"  {peer:<13} {result['median_ops_per_s']:>14,.0f} "
                         f"{result['spread']:>6.1%}  {runs:>5}  {extra}".rstrip())
    if case["ratios"]:
        lines.append("  " + "   ".join(f"{k} {v:.2f}x" for k, v in case["ratios"].items()))
    else:
        lines.append(f"  ratios n/a (no {REFERENCE} result)")
    for name, by_peer in case.get("metric_ratios", {}).items():
        lines.append(f"  {name} (lower is better): "
                     + "   ".join(f"{k} {v:.2f}x" for k, v in by_peer.items()))
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
