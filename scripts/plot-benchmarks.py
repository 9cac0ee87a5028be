#!/usr/bin/env python3
"""Draws docs/benchmarks/*.png from a `strata-bench run` results.json.

Usage: scripts/plot-benchmarks.py RESULTS.json OUT_DIR
One bar chart per headline metric (absolute values, and Strata's ratio to each peer in the
title), and one chart of query latency p50/p99 per query group and mode.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = [
    ("ingest_samples_per_sec_per_core", "ingest: samples/s per core (higher is better)"),
    ("cpu_seconds_per_million_samples", "CPU seconds per million samples at a fixed rate (lower is better)"),
    ("bytes_per_sample", "bytes per sample on disk (lower is better)"),
    ("rss_bytes_per_series", "RSS bytes per active series (lower is better)"),
    ("query_p50_ms", "query latency p50, ms (lower is better)"),
    ("query_p99_ms", "query latency p99, ms (lower is better)"),
]
COLORS = {"strata": "#2b6cb0", "strata-cluster": "#4299e1", "prometheus": "#e6522c", "victoriametrics": "#6b46c1"}


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    systems = [r["system"] for r in results]
    strata = next((r for r in results if r["system"] == "strata"), None)
    for key, title in METRICS:
        vals = [r[key] for r in results]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(systems, vals, color=[COLORS.get(s, "gray") for s in systems])
        ratios = ""
        if strata:
            ratios = "  ".join(
                f"strata/{r['system']} {strata[key] / r[key]:.2f}×" for r in results if r is not strata and r[key]
            )
        ax.set_title(f"{title}\n{ratios}", fontsize=9)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:,.3g}", ha="center", va="bottom", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{key}.png", dpi=110)
        plt.close(fig)
    groups = list(results[0].get("query_groups", {}).keys())
    modes = ["instant", "range_1h", "range_6h", "range_24h"]
    if groups:
        fig, axes = plt.subplots(len(modes), 1, figsize=(10, 2.6 * len(modes)), sharex=True)
        width = 0.8 / len(results)
        for ax, mode in zip(axes, modes):
            for k, r in enumerate(results):
                xs = [i + k * width for i in range(len(groups))]
                p50 = [r["query_groups"][g][f"{mode}_p50_ms"] for g in groups]
                p99 = [r["query_groups"][g][f"{mode}_p99_ms"] for g in groups]
                ax.bar(xs, p99, width, color=COLORS.get(r["system"], "gray"), alpha=0.35)
                ax.bar(xs, p50, width, color=COLORS.get(r["system"], "gray"), label=r["system"])
            ax.set_ylabel(f"{mode}\nms (p50 solid, p99 light)", fontsize=8)
            ax.set_yscale("log")
        axes[0].legend(fontsize=8)
        axes[-1].set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
        axes[-1].set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "query_latency_by_group.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
