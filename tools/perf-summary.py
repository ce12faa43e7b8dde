#!/usr/bin/env python3
"""Writes README.md's performance section from the committed results in bench/results/,
so that no figure in the README is typed by hand.

  tools/perf-summary.py            print the section
  tools/perf-summary.py --update   replace the text between the perf markers of README.md

Every figure names the device, dtype, shape, the peer and the ratio, all from one run."""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = os.path.join(ROOT, "bench", "results")
BEGIN, END = "<!-- perf-begin (tools/perf-summary.py) -->", "<!-- perf-end -->"


def load(path):
    with open(path) as f:
        return json.load(f)


def median(row):
    return row["time_ms"]["median"] if row and row.get("status") == "ok" else None


def by_key(rows, impl):
    return {r["key"]: r for r in rows if r["impl"] == impl}


def cpu_section(out):
    for path in sorted(glob.glob(os.path.join(RES, "*-cpu-*-quick.json"))):
        peers_path = path.replace(".json", "-peers.json")
        if not os.path.exists(peers_path):
            continue
        rows, peers = load(path), load(peers_path)
        fast, ref = by_key(rows, "flash (fast mode)"), by_key(rows, "flash (reference mode)")
        sdpa = by_key(peers, "torch sdpa")
        name = os.path.basename(path)
        out.append("CPU (`%s`, 2 threads, f32; peer PyTorch CPU `scaled_dot_product_attention`, 2 threads, same run):\n" % name)
        out.append("| shape | pattn fast ms | pattn reference ms | torch SDPA ms | pattn / torch time |")
        out.append("|---|---:|---:|---:|---:|")
        for key, r in fast.items():
            t, tr, tp = median(r), median(ref.get(key)), median(sdpa.get(key))
            out.append("| %s | %.1f | %s | %s | %s |" % (key, t, "%.0f" % tr if tr else "-", "%.1f" % tp if tp else "-",
                                                     "%.2fx" % (t / tp) if tp else "-"))
        out.append("")


def gpu_dirs():
    return sorted(d for d in glob.glob(os.path.join(RES, "*-h200")) if os.path.isdir(d))


def flash_section(out, d, ceil):
    for be in ("opencl", "cuda"):
        # the f32acc suite's rows (the seed-003 shapes, every n) where they have peers of their
        # own run, else seed003's rows from n = 4096
        path = os.path.join(d, "f32acc-%s.json" % be)
        peers_path = os.path.join(d, "peers-f32acc-%s.json" % be)
        impl, nmin = "pattn flash", 0
        if not (os.path.exists(path) and os.path.exists(peers_path)):
            path = os.path.join(d, "seed003-%s.json" % be)
            peers_path = os.path.join(d, "peers-seed003-%s.json" % be)
            impl, nmin = "pattn_flash", 4096
        if not (os.path.exists(path) and os.path.exists(peers_path)):
            continue
        rows, peers = load(path), load(peers_path)
        eff, math_ = by_key(peers, "torch sdpa (efficient)"), by_key(peers, "torch sdpa (math)")
        out.append("Flash forward, f32, seed003 shapes, %s backend on %s (`%s`; peers PyTorch SDPA in the same run;"
                   " time ratio below 1 = pattn faster):\n" % (be, ceil["device"], os.path.relpath(path, ROOT)))
        out.append("| shape | pattn ms | TFLOP/s | / SDPA efficient | / SDPA math |")
        out.append("|---|---:|---:|---:|---:|")
        for r in rows:
            if r["impl"] != impl or r["shape"]["nq"] < nmin:
                continue
            t = median(r)
            if t is None:
                out.append("| %s | ✗ %s | | | |" % (r["key"], r.get("reason", "")))
                continue
            te, tm = median(eff.get(r["key"])), median(math_.get(r["key"]))
            out.append("| %s | %.3g | %.1f | %s | %s |" % (r["key"], t, r["flops"] / t / 1e9,
                                                          "%.2fx" % (t / te) if te else "✗", "%.2fx" % (t / tm) if tm else "✗"))
        out.append("")


def lrpe_section(out, d, ceil):
    out.append("md_lrpe_cosine, bf16, seed002 sizes (b=12, h=12, d=128), best and worst bandwidth (bytes read +"
               " written once) against the copy ceiling measured on the device (%d GB/s):\n" % ceil["copy_gbs"])
    out.append("| backend | best GB/s | of copy | at | worst GB/s | at |")
    out.append("|---|---:|---:|---|---:|---|")
    for be in ("opencl", "cuda"):
        path = os.path.join(d, "seed002-%s.json" % be)
        if not os.path.exists(path):
            continue
        ok = [(r["bytes"] / median(r) / 1e6, r) for r in load(path) if median(r)]
        ok.sort(key=lambda x: x[0])
        (lo, rlo), (hi, rhi) = ok[0], ok[-1]
        out.append("| %s | %.0f | %.0f%% | %s %s | %.0f | %s %s |" % (be, hi, 100 * hi / ceil["copy_gbs"], rhi["impl"], rhi["key"],
                                                                  lo, rlo["impl"], rlo["key"]))
    out.append("")


def fa2_section(out, d, ceil):
    """issue 7: bf16/f16 flash at FlashAttention's benchmark shapes against SDPA's FLASH
    backend (FlashAttention-2) and cuDNN, one line per (direction, dtype, d, causal)"""
    path, peers_path = os.path.join(d, "fa2-cuda.json"), os.path.join(d, "peers-fa2.json")
    if not (os.path.exists(path) and os.path.exists(peers_path)):
        return
    peers = load(peers_path)
    ref = {(r["op"], r["impl"], r["dtype"], r["key"]): median(r) for r in peers}
    out.append("bf16/f16 flash attention, cuda backend on %s, FlashAttention's benchmark shapes (b*n = 16k tokens,"
               " hidden 2048, n = 512 .. 16384; `%s`; peers PyTorch SDPA's FLASH (FlashAttention-2) and cuDNN backends"
               " in the same run). Speed ratio = peer time / pattn time, over the six n:\n" % (ceil["device"], os.path.relpath(path, ROOT)))
    out.append("| pass | dtype | d | causal | pattn TFLOP/s | pattn / FA2 (min-max) | pattn / cuDNN (min-max) |")
    out.append("|---|---|--:|--:|---|---|---|")
    groups = {}
    for r in load(path):
        t = median(r)
        if t is None:
            continue
        sh = r["shape"]
        g = groups.setdefault(("fwd" if r["op"] == "attn" else "bwd", r["dtype"], sh["d"], sh["causal"]), [])
        g.append((r["flops"] / t / 1e9, ref.get((r["op"], "torch sdpa (flash)", r["dtype"], r["key"])),
                  ref.get((r["op"], "torch sdpa (cudnn)", r["dtype"], r["key"])), t))
    def span(v):
        return "%.2f-%.2fx" % (min(v), max(v)) if v else "-"
    for (pas, dt, dd, c), g in sorted(groups.items(), key=lambda x: (x[0][0] != "fwd", x[0][1], x[0][2], x[0][3])):
        tf = [x[0] for x in g]
        out.append("| %s | %s | %d | %d | %.0f-%.0f | %s | %s |" % (pas, dt, dd, c, min(tf), max(tf),
                   span([x[1] / x[3] for x in g if x[1]]), span([x[2] / x[3] for x in g if x[2]])))
    out.append("")


def ring_section(out, d):
    for path in sorted(glob.glob(os.path.join(d, "ring-scaling-*.json"))):
        rows = load(path)
        base = {}
        for r in rows:
            if r["op"].startswith("flash") and median(r):
                base[(r["op"].split("-")[1], r["shape"]["causal"])] = r["flops"] / median(r) / 1e9
        out.append("Distributed ring attention over NCCL (`%s`, bf16, b=1, h=16, d=128), throughput against W x the"
                   " one-GPU flash throughput measured in the same run:\n" % os.path.relpath(path, ROOT))
        out.append("| ring | scaling | W | n total | TFLOP/s | efficiency |")
        out.append("|---|---|--:|--:|--:|--:|")
        for r in rows:
            if not r["op"].startswith("ring") or not median(r):
                continue
            kind, W = r["op"].split("-")[1], r["shape"]["W"]
            tf = r["flops"] / median(r) / 1e9
            b = base.get((kind, r["shape"]["causal"]))
            out.append("| %s | %s | %d | %d | %.0f | %s |" % (r["impl"], kind, W, r["shape"]["n"], tf,
                                                           "%.1f%%" % (100 * tf / (W * b)) if b else "-"))
        out.append("")


def section():
    out = [BEGIN, "", "Generated by `tools/perf-summary.py` from `bench/results/`; how each run was made is in the"
           " README.md beside its files.", ""]
    cpu_section(out)
    for d in gpu_dirs():
        ceil = load(os.path.join(d, "ceilings.json"))
        flash_section(out, d, ceil)
        lrpe_section(out, d, ceil)
        fa2_section(out, d, ceil)
        ring_section(out, d)
    out.append(END)
    return "\n".join(out)


def main():
    text = section()
    if "--update" not in sys.argv:
        print(text)
        return 0
    readme = os.path.join(ROOT, "README.md")
    with open(readme) as f:
        old = f.read()
    if BEGIN not in old or END not in old:
        sys.stderr.write("perf-summary: README.md has no perf markers\n")
        return 1
    new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    with open(readme, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
