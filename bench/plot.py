#!/usr/bin/env python3
"""Plots of the seed003 attention sweep, as the seed published them:
attention_sweep_forward.png (time vs sequence length per kernel and config),
attention_sweep_heatmap.png (median ms, kernel x tier) and attention_sweep_scaling.png
(time relative to the smallest n, against the n^2 line).

usage: plot.py RESULTS.json [PEERS.json ...] [--outdir DIR]
RESULTS.json: pattn-bench --suite seed003 --out DIR writes DIR/seed003.json; peer JSON from
bench/peers/run_peers.py --suite seed003 adds the peers' curves. Without matplotlib the
script says so and exits 0 (plots are optional)."""
import argparse
import json
import os
import sys


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        rows += [r for r in (data["rows"] if isinstance(data, dict) else data)
                 if r.get("suite") == "seed003" and r.get("status") == "ok"]
    return rows


def config(r):
    s = r["shape"]
    return "d=%d h=%d b=%d" % (s["d"], s["h"], s["b"])


def config_order(c):
    """the seed's order: by head_dim, heads, batch as numbers"""
    return tuple(int(part.split("=")[1]) for part in c.split())


def main():
    ap = argparse.ArgumentParser(description="plots of the seed003 attention sweep")
    ap.add_argument("json", nargs="+")
    ap.add_argument("--outdir", default=None, help="default: the first JSON's folder")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (pip install matplotlib): no plots made")
        return 0
    rows = load(a.json)
    if not rows:
        print("plot.py: no successful seed003 rows in %s: no plots made" % ", ".join(a.json))
        return 0
    outdir = a.outdir or os.path.dirname(os.path.abspath(a.json[0]))
    os.makedirs(outdir, exist_ok=True)
    series = {}  # (impl, config) -> [(n, ms)]
    for r in rows:
        label = r["impl"] + (" [%s]" % r["backend"] if "backend" in r else "")
        series.setdefault((label, config(r)), []).append((r["shape"]["nq"], r["time_ms"]["median"]))
    configs = sorted({c for _, c in series}, key=config_order)

    # forward time: one panel per config
    fig, axes = plt.subplots(1, len(configs), figsize=(5 * len(configs), 4), squeeze=False)
    for ax, c in zip(axes[0], configs):
        for (label, cc), pts in sorted(series.items()):
            if cc != c:
                continue
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(c)
        ax.set_xlabel("sequence length (Q_N = K_N)")
        ax.set_ylabel("forward time (ms, median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "attention_sweep_forward.png"), dpi=110)
    plt.close(fig)

    # heatmap: kernel x (config, n)
    labels = sorted({l for l, _ in series})
    cols = sorted({(c, n) for (l, c), pts in series.items() for n, _ in pts},
                  key=lambda cn: (config_order(cn[0]), cn[1]))
    grid = [[float("nan")] * len(cols) for _ in labels]
    for (l, c), pts in series.items():
        for n, ms in pts:
            grid[labels.index(l)][cols.index((c, n))] = ms
    import math
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(cols)), 1 + 0.5 * len(labels)))
    im = ax.imshow([[math.log10(v) if v == v else float("nan") for v in row] for row in grid],
                   aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(len(cols)), ["%s n=%d" % cn for cn in cols], rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, label="log10(ms)")
    ax.set_title("attention forward, median ms")
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "attention_sweep_heatmap.png"), dpi=110)
    plt.close(fig)

    # scaling: time / time at the smallest n, against n^2
    fig, ax = plt.subplots(figsize=(6, 4))
    nmin = None
    for (label, c), pts in sorted(series.items()):
        pts.sort()
        if len(pts) < 2:
            continue
        n0, t0 = pts[0]
        nmin = n0 if nmin is None else min(nmin, n0)
        ax.plot([p[0] for p in pts], [p[1] / t0 for p in pts], marker=".", label="%s %s" % (label, c))
    if nmin:
        ns = sorted({n for pts in series.values() for n, _ in pts})
        ax.plot(ns, [(n / nmin) ** 2 for n in ns], "k--", label="n^2")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("time relative to the smallest n")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "attention_sweep_scaling.png"), dpi=110)
    plt.close(fig)
    for name in ("forward", "heatmap", "scaling"):
        print("wrote %s" % os.path.join(outdir, "attention_sweep_%s.png" % name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
