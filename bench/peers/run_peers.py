#!/usr/bin/env python3
"""pattn-bench peers: the seed suites' shapes through PyTorch, as JSON rows that
`pattn-bench --compare FILE` matches by (suite, op, shape, dtype) and prints as ratios.

Implementations per op:
  attn        torch SDPA (on CUDA: each of the math, efficient, flash, cuDNN backends; on CPU:
              the default SDPA), the reference formula, torch.compile of it (--compile;
              default on CUDA)
  attn_bwd    SDPA backward (autograd.grad of the forward)
  ring        chunked online softmax (reference formula of SPEC.md section 3)
  dilated / dilated_lse / ring_dilated   the two merges of SPEC.md section 2
  block_sparse, mha_*   reference formulas; block-sparse also as SDPA with a block mask
  lrpe_fwd / lrpe_bwd   the seed's Tor and Tor C: the formula and torch.compile of it
Timing: warm-up, then the median of --reps runs (CUDA synchronised), std and min.
Memory: on CUDA the peak torch allocated from before the inputs were made (inputs
included), as pattn-bench counts; on CPU 0 (not measured).

usage: run_peers.py --suite quick [--device cpu|cuda] [--out peers.json] [--reps 10]
                    [--max-seconds 30] [--threads N] [--compile]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
except ImportError as e:  # the peers need PyTorch; say so instead of a traceback
    sys.stderr.write("run_peers.py: cannot import PyTorch (pip install torch): %s\n" % e)
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_ops  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


# ---- rows ----
def shape_key(shape):
    """the same key pattn-bench builds: fields sorted by name, 'name=value' joined by spaces"""
    return " ".join(f"{k}={v}" for k, v in sorted(shape.items()))


class Runner:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.rows = []
        self.est = {}  # (suite, op, impl, dtype) -> (cost, seconds): skip what will not fit

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def row(self, suite, op, impl, dtype, shape, make, cost=0.0):
        """make() builds the inputs and returns fn; fn() is timed."""
        r = {"suite": suite, "op": op, "impl": impl, "backend": "torch-" + self.dev.type,
             "device": torch.cuda.get_device_name() if self.cuda else "cpu", "dtype": dtype,
             "shape": shape, "key": shape_key(shape),
             "time_ms": {"median": 0, "mean": 0, "std": 0, "min": 0}, "runs": 0,
             "memory_mb": 0, "status": "ok", "reason": "", "note": ""}
        label = (suite, op, impl, dtype)
        if cost and label in self.est:
            c0, t0 = self.est[label]
            if c0 > 0 and t0 * cost / c0 > self.args.max_seconds:
                r["status"] = "skipped"
                r["reason"] = "skipped: over time budget (estimated %.3g s per run)" % (t0 * cost / c0)
                return self.done(r)
        try:
            if self.cuda:
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            fn = make()
            t = []
            with torch.no_grad() if op not in ("attn_bwd",) else _null():
                for _ in range(2):  # warm-up (and compile for torch.compile)
                    t0 = time.perf_counter()
                    fn()
                    self.sync()
                    t_warm = time.perf_counter() - t0
                if self.cuda:
                    r["memory_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                reps = self.args.reps
                if t_warm > 2.0:
                    reps = min(reps, 3)
                if t_warm * reps > self.args.max_seconds:
                    reps = max(1, int(self.args.max_seconds / max(t_warm, 1e-9)))
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn()
                    self.sync()
                    t.append((time.perf_counter() - t0) * 1e3)
            del fn
            r["time_ms"] = {"median": statistics.median(t), "mean": statistics.fmean(t),
                            "std": statistics.stdev(t) if len(t) > 1 else 0.0, "min": min(t)}
            r["runs"] = len(t)
            if len(t) < 10:
                r["note"] = "%d runs" % len(t)
            if cost:
                self.est[label] = (cost, r["time_ms"]["median"] / 1e3)
        except Exception as e:  # OOM, unsupported backend/dtype: a ✗ row, the run goes on
            r["status"] = "failed"
            msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            oom = "out of memory" in str(e).lower() or isinstance(e, MemoryError)
            r["reason"] = ("out of memory: " if oom else "") + msg
        finally:
            if self.cuda:
                torch.cuda.empty_cache()
        return self.done(r)

    def done(self, r):
        self.rows.append(r)
        if not self.args.quiet:
            t = r["time_ms"]["median"]
            msg = "%.3f ms" % t if r["status"] == "ok" else "✗ " + r["reason"]
            sys.stderr.write("[peers %s] %s %s %s %s: %s\n" % (r["suite"], r["op"], r["impl"],
                                                              r["key"], r["dtype"], msg))
        return r

    def randn(self, *shape, dtype=torch.float32, grad=False):
        return torch.randn(*shape, device=self.dev, dtype=dtype, requires_grad=grad)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---- op families ----
def sdpa_impls(R):
    """(name, context manager factory or None) for SDPA on this device"""
    if not R.cuda:
        return [("torch sdpa", None)]
    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = [("math", SDPBackend.MATH), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
             ("flash", SDPBackend.FLASH_ATTENTION)]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        names.append(("cudnn", SDPBackend.CUDNN_ATTENTION))
    return [("torch sdpa (%s)" % n, (lambda be=be: sdpa_kernel(be))) for n, be in names]


def attn_shape(b, h, n, d, causal=0):
    return {"b": b, "h": h, "nq": n, "nk": n, "d": d, "causal": causal}


def bench_attn(R, suite, b, h, n, d, dt, causal=0, reference=True, compiled=None):
    F = torch.nn.functional
    shape = attn_shape(b, h, n, d, causal)
    cost = 4.0 * b * h * n * n * d
    for name, ctxm in sdpa_impls(R):
        def make(ctxm=ctxm):
            q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt]) for _ in range(3))

            def fn():
                if ctxm is None:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
                with ctxm():
                    return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
            return fn
        R.row(suite, "attn", name, dt, shape, make, cost)
    if reference:
        R.row(suite, "attn", "torch reference", dt, shape,
              lambda: _ref_attn(R, b, h, n, d, dt, causal, False), cost)
    if compiled if compiled is not None else R.args.compile:
        R.row(suite, "attn", "torch.compile reference", dt, shape,
              lambda: _ref_attn(R, b, h, n, d, dt, causal, True), cost)


def _ref_attn(R, b, h, n, d, dt, causal, compiled):
    q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt]) for _ in range(3))
    f = torch.compile(ref_ops.attention) if compiled else ref_ops.attention
    return lambda: f(q, k, v, causal=bool(causal))


def bench_attn_bwd(R, suite, b, h, n, d, dt):
    F = torch.nn.functional

    def make():
        q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt], grad=True) for _ in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        dout = torch.randn_like(out)
        return lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)
    R.row(suite, "attn_bwd", "torch sdpa backward", dt, attn_shape(b, h, n, d), make,
          10.0 * b * h * n * n * d)


def bench_ring(R, suite, b, h, n, d, dt, ring):
    shape = dict(attn_shape(b, h, n, d), ring=ring)
    for compiled in ([False, True] if R.args.compile else [False]):
        def make(compiled=compiled):
            q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt]) for _ in range(3))
            f = torch.compile(ref_ops.ring_attention) if compiled else ref_ops.ring_attention
            return lambda: f(q, k, v, ring_size=ring)
        R.row(suite, "ring", "torch.compile ring (online softmax)" if compiled else
              "torch ring (online softmax)", dt, shape, make, 4.0 * b * h * n * n * d)


def dil_shape(b, n, h, d, **extra):
    s = {"b": b, "n": n, "h": h, "d": d, "causal": 0}
    s.update(extra)
    return s


def bench_dilated(R, suite, op, b, n, h, d, dt, segs, rates):
    fn_ref = ref_ops.dilated_lse if op == "dilated_lse" else ref_ops.dilated_head_groups
    cost = 4.0 * b * h * n * d * max(segs)  # for extrapolation only
    for compiled in ([False, True] if R.args.compile else [False]):
        def make(compiled=compiled):
            q, k, v = (R.randn(b, n, h, d, dtype=DTYPES[dt]) for _ in range(3))
            f = torch.compile(fn_ref) if compiled else fn_ref
            return lambda: f(q, k, v, segs, rates)
        R.row(suite, op, ("torch.compile " if compiled else "torch ") +
              ("dilated (LSE merge)" if op == "dilated_lse" else "dilated (head groups)"),
              dt, dil_shape(b, n, h, d), make, cost)


def bench_block_sparse(R, suite, b, n, h, d, dt, bs, window, rates):
    F = torch.nn.functional
    shape = {"b": b, "n": n, "h": h, "d": d, "bs": bs, "causal": 0}
    lay = ref_ops.block_layout(n, n, bs, window, rates)
    cost = 4.0 * b * h * n * n * d

    def make_ref():
        q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt]) for _ in range(3))
        return lambda: ref_ops.block_sparse(q, k, v, lay, bs)

    def make_sdpa():
        q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt]) for _ in range(3))
        mask = ref_ops.block_mask(lay, n, n, bs, R.dev).to(DTYPES[dt])
        return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    R.row(suite, "block_sparse", "torch reference (dense + block mask)", dt, shape, make_ref, cost)
    R.row(suite, "block_sparse", "torch sdpa + block mask", dt, shape, make_sdpa, cost)


def bench_mha(R, suite, op, b, n, h, d, dt, core, extra_shape=None):
    shape = dil_shape(b, n, h, d, **(extra_shape or {}))
    E = h * d

    def make():
        m = ref_ops.MHA(E, h, core, R.dev, DTYPES[dt])
        x = R.randn(b, n, E, dtype=DTYPES[dt])
        return lambda: m(x)
    R.row(suite, op, "torch reference MHA", dt, shape, make, 8.0 * b * n * E * E + 4.0 * b * h * n * n * d)


def bench_lrpe(R, suite, b, h, d, dims, g, l, dt, passes=("fwd", "bwd")):
    shape = {"b": b, "h": h, "d": d, "dims": dims, "g": g, "l": l}
    grid = [g] * dims
    n = l + g ** dims
    e = ref_ops.lrpe_e(d, dims)
    cost = float(b * h * n * d)
    for compiled in ([False, True] if (R.args.compile or R.cuda) else [False]):
        name = "torch.compile" if compiled else "torch"
        theta = (10000.0 ** (-torch.arange(e, dtype=torch.float32) / e)).repeat(h, 1).to(R.dev)
        if "fwd" in passes:
            def make_f(compiled=compiled):
                x = R.randn(b, h, n, d, dtype=DTYPES[dt])
                f = torch.compile(ref_ops.lrpe_forward) if compiled else ref_ops.lrpe_forward
                return lambda: f(x, theta, grid, l)
            R.row(suite, "lrpe_fwd", name, dt, shape, make_f, cost)
        if "bwd" in passes:
            def make_b(compiled=compiled):
                dout = R.randn(b, h, n, 2 * d, dtype=DTYPES[dt])
                f = torch.compile(ref_ops.lrpe_backward) if compiled else ref_ops.lrpe_backward
                return lambda: f(dout, theta, grid, l)
            R.row(suite, "lrpe_bwd", name, dt, shape, make_b, cost)


# ---- suites: the same shapes as bench/suite_*.c ----
def suite_quick(R):
    bench_attn(R, "quick", 1, 8, 2048, 64, "f32", compiled=False)
    bench_attn(R, "quick", 1, 1, 16384, 64, "f32", reference=False, compiled=False)
    bench_attn_bwd(R, "quick", 1, 8, 1024, 64, "f32")
    bench_ring(R, "quick", 1, 8, 2048, 64, "f32", 4)
    bench_dilated(R, "quick", "dilated", 1, 2048, 8, 64, "f32", [512, 1024, 2048], [1, 2, 4])
    bench_block_sparse(R, "quick", 1, 2048, 8, 64, "f32", 64, 1, [2, 4])
    bench_mha(R, "quick", "mha_dilated", 1, 1024, 8, 64, "f32",
              lambda q, k, v: ref_ops.dilated_head_groups(q, k, v, [256, 512, 1024], [1, 2, 4]))
    bench_lrpe(R, "quick", 2, 12, 128, 1, 4096, 0, "bf16")
    bench_lrpe(R, "quick", 2, 12, 128, 2, 64, 10, "bf16", passes=("fwd",))


def suite_seed000(R):
    for b in (1, 2):
        for n in (512, 1024):
            for h in (8, 16):
                segs, rates = [n // 4, n // 2, n], [1, 2, 4]
                bench_attn(R, "seed000", b, h, n, 64, "f32")
                bench_dilated(R, "seed000", "dilated", b, n, h, 64, "f32", segs, rates)
                bench_mha(R, "seed000", "mha_dilated", b, n, h, 64, "f32",
                          lambda q, k, v, s=segs, r=rates: ref_ops.dilated_head_groups(q, k, v, s, r))
                bench_ring(R, "seed000", b, h, n, 64, "f32", 1)
                bench_block_sparse(R, "seed000", b, n, h, 64, "f32", 64, 1, [2, 4])
                lay = ref_ops.block_layout(n, n, 64, 1, [2, 4])
                bench_mha(R, "seed000", "mha_block_sparse", b, n, h, 64, "f32",
                          ref_ops.bhnd_core(lambda q, k, v, lay=lay: ref_ops.block_sparse(q, k, v, lay, 64)),
                          {"bs": 64})


def suite_seed001(R):
    for b in (1, 2, 4):
        for n in (2048, 4096, 8192):
            segs, rates = [min(s, n // 2) for s in (1024, 2048, 4096)], [1, 2, 4]
            bench_dilated(R, "seed001", "dilated", b, n, 8, 64, "f32", segs, rates)
            bench_dilated(R, "seed001", "dilated_lse", b, n, 8, 64, "f32", segs, rates)
            bench_dilated(R, "seed001", "ring_dilated", b, n, 8, 64, "f32", segs, rates)
            bench_mha(R, "seed001", "mha_dilated", b, n, 8, 64, "f32",
                      lambda q, k, v, s=segs, r=rates: ref_ops.dilated_head_groups(q, k, v, s, r))


def suite_seed002(R):
    ns = {1: [256 << i for i in range(8)], 2: [16, 32, 64, 128], 3: [4, 8, 16, 32]}
    for dims in (1, 2, 3):
        for l in (0, 10):
            for g in ns[dims]:
                bench_lrpe(R, "seed002", 12, 12, 128, dims, g, l, "bf16")


def suite_seed003(R):
    for d, h, b in ((64, 12, 1), (64, 12, 8), (128, 12, 1), (256, 24, 2)):
        for n in (512, 1024, 2048, 4096, 8192, 16384):
            bench_attn(R, "seed003", b, h, n, d, "f32")


def suite_seed004(R):
    for n in (1024, 2048, 4096, 8192):
        bench_attn(R, "seed004", 1, 8, n, 64, "f16")
        for ring in (1, 2, 4, 8, 16):
            bench_ring(R, "seed004", 1, 8, n, 64, "f16", ring)


SUITES = {"quick": suite_quick, "seed000": suite_seed000, "seed001": suite_seed001,
          "seed002": suite_seed002, "seed003": suite_seed003, "seed004": suite_seed004}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="quick", help="quick, seed000..seed004, or all")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="-", help="JSON file (default: stdout)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="time budget per row")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default 2 for the quick suite on CPU, as pattn)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="add torch.compile rows (default on CUDA; --no-compile skips them)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.compile is None:
        args.compile = args.device.startswith("cuda")
    if args.device == "cpu":
        threads = args.threads or (2 if args.suite == "quick" else 0)
        if threads:
            torch.set_num_threads(threads)
    torch.manual_seed(0)
    R = Runner(args)
    names = list(SUITES) if args.suite == "all" else [args.suite]
    for s in names:
        if s not in SUITES:
            ap.error("unknown suite %s" % s)
        SUITES[s](R)
    text = json.dumps(R.rows, indent=1)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        if not args.quiet:
            sys.stderr.write("wrote %s (%d rows)\n" % (args.out, len(R.rows)))


if __name__ == "__main__":
    main()
