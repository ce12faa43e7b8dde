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
Issue 7 suites (pattn-bench --suite fa2 / f32acc):
  fa2         attn and attn_bwd at FlashAttention-2's benchmark shapes, bf16 and f16, causal
              and not, through SDPA with each backend forced by sdpa_kernel: flash
              (FlashAttention-2), efficient, cudnn, math; backward timed as FlashAttention's
              benchmark does: grad of the output wrt q, k, v given dout
  f32acc      attn f32 at the seed-003 shapes through the forced backends (and math with TF32
              matmuls), each with its error against a float64 reference on the device, on
              the same inputs (hash_inputs) and output sub-block as pattn-bench
A backend that refuses a shape or dtype gives a row with status "unsupported" (✗ in
pattn-bench), not an error.
Timing: warm-up, then the median of --reps runs, std and min; on CUDA each run is timed with
CUDA events around the call (device time, as pattn-bench times its own runs), on the CPU with
a clock.
Memory: on CUDA the peak torch allocated from before the inputs were made (inputs
included), as pattn-bench counts; on CPU 0 (not measured).

usage: run_peers.py --suite quick [--device cpu|cuda] [--out peers.json] [--reps 10]
                    [--max-seconds S] [--threads N] [--compile|--no-compile] [--dtype T]
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings

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


# what SDPA raises when the forced backend cannot take the inputs (CUDA, CPU wording)
_REFUSED = ("No available kernel", "No viable backend")


class Runner:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.rows = []
        self.est = {}  # (suite, op, impl, dtype) -> (cost, seconds): skip what will not fit
        self.max_seconds = args.max_seconds or 30.0
        # as pattn-bench: a scratch fill on the stream before each timed run (cold L2, and the
        # GPU still busy while the host issues the op)
        mb = args.flush_mb if self.cuda else 0
        self.flush = torch.empty(int(mb * 2**20) // 4 + 1024, dtype=torch.float32, device=self.dev) if mb > 0 else None

    def dt(self, default):
        """the suite's dtype, unless --dtype overrides it (as pattn-bench's --dtype)"""
        return self.args.dtype or default

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def would_skip(self, suite, op, impl, dtype, cost):
        c0, t0 = self.est.get((suite, op, impl, dtype), (0, 0))
        return bool(cost and c0 > 0 and t0 * cost / c0 > self.max_seconds)

    def timed(self, fn):
        """one run in ms: CUDA events around the call on CUDA, a clock on the CPU"""
        if self.cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if self.flush is not None:
                self.flush.zero_()
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            return e0.elapsed_time(e1)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def row(self, suite, op, impl, dtype, shape, make, cost=0.0, check=None, probe=None):
        """make() builds the inputs and returns fn; fn() is timed. check(fn), when given, runs
        after the timing and returns fields to add to the row (f32acc: the error). probe(),
        when given, runs first on tiny inputs: a forced SDPA backend that refuses them is
        reported before gigabytes of inputs are made for it."""
        r = {"suite": suite, "op": op, "impl": impl, "backend": "torch-" + self.dev.type,
             "device": torch.cuda.get_device_name() if self.cuda else "cpu", "dtype": dtype,
             "shape": shape, "key": shape_key(shape),
             "time_ms": {"median": 0, "mean": 0, "std": 0, "min": 0}, "runs": 0,
             "memory_mb": 0, "status": "ok", "reason": "", "note": ""}
        label = (suite, op, impl, dtype)
        if self.would_skip(suite, op, impl, dtype, cost):
            c0, t0 = self.est[label]
            r["status"] = "skipped"
            r["reason"] = "skipped: over time budget (estimated %.3g s per run)" % (t0 * cost / c0)
            return self.done(r)
        caught = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")  # SDPA says why a forced backend refuses
                if self.cuda:
                    torch.cuda.empty_cache()
                    base = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                if probe is not None:
                    with torch.no_grad():
                        probe()
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
                    if t_warm * reps > self.max_seconds:
                        reps = max(1, int(self.max_seconds / max(t_warm, 1e-9)))
                    for _ in range(reps):
                        t.append(self.timed(fn))
                    if check is not None:
                        r.update(check(fn))
                del fn
            r["time_ms"] = {"median": statistics.median(t), "mean": statistics.fmean(t),
                            "std": statistics.stdev(t) if len(t) > 1 else 0.0, "min": min(t)}
            r["runs"] = len(t)
            if len(t) < 10:
                r["note"] = "%d runs" % len(t)
            if cost:
                self.est[label] = (cost, r["time_ms"]["median"] / 1e3)
        except Exception as e:  # OOM, unsupported backend/dtype: a ✗ row, the run goes on
            text = str(e)
            msg = text.splitlines()[0][:200] if text else type(e).__name__
            oom = "out of memory" in text.lower() or isinstance(e, MemoryError)
            if any(s in text for s in _REFUSED):
                # the backend refuses these inputs: not supported, not a failure; SDPA's
                # warnings say why
                why = []
                for w in caught:
                    m = " ".join(str(w.message).split())
                    if m and m not in why and "not used because" not in m:
                        why.append(m)
                r["status"] = "unsupported"
                r["reason"] = ("; ".join(why) or msg)[:200]
            else:
                r["status"] = "failed"
                r["reason"] = ("out of memory: " if oom else "") + msg
        finally:
            if self.cuda:
                torch.cuda.empty_cache()
        return self.done(r)

    def done(self, r):
        self.rows.append(r)
        if not self.args.quiet:
            t = r["time_ms"]["median"]
            why = r["reason"] if r["reason"].startswith(r["status"]) else \
                "%s: %s" % (r["status"], r["reason"])
            msg = "%.3f ms" % t if r["status"] == "ok" else "✗ " + why
            if "max_abs_err" in r:
                msg += ", max abs err %.3g, rel-L2 %.3g" % (r["max_abs_err"], r["rel_l2_err"])
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


def sdpa_forced(R, tf32_math=False):
    """(name, context manager factory) for SDPA with each backend forced by sdpa_kernel, on
    any device (a backend the device lacks refuses: an "unsupported" row). tf32_math adds
    the math backend with TF32 matmuls (torch.set_float32_matmul_precision("high"))."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
             ("cudnn", getattr(SDPBackend, "CUDNN_ATTENTION", None)), ("math", SDPBackend.MATH)]
    out = []
    for n, be in names:
        if be is None:  # a torch without cuDNN attention: every row says so
            out.append(("torch sdpa (%s)" % n, _no_backend))
        else:
            out.append(("torch sdpa (%s)" % n, (lambda be=be: sdpa_kernel(be))))
    if tf32_math:
        out.append(("torch sdpa (math, tf32)", lambda: _tf32_math(sdpa_kernel, SDPBackend.MATH)))
    return out


@contextlib.contextmanager
def _tf32_math(sdpa_kernel, be):
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32 tensor cores for f32 matmuls
    try:
        with sdpa_kernel(be):
            yield
    finally:
        torch.set_float32_matmul_precision(prev)


@contextlib.contextmanager
def _no_backend():
    raise RuntimeError("No available kernel: this torch has no SDPBackend.CUDNN_ATTENTION")
    yield  # noqa: unreachable (a generator)


# ---- the issue 7 inputs and errors: the same as pattn-bench's (bench/suite_util.c,
# bench_hash_fill; bench/suite_f32acc.c) ----
def hash_inputs(count, stream, device):
    """count f32 values of stream (0 q, 1 k, 2 v, 3 dout): element i is the PCG hash of
    (i + stream * 0x9E3779B9) mod 2^32, its top 24 bits u, (u - 8388607.5) / 2^23 * sqrt(3):
    uniform with unit variance. int64 arithmetic keeps every product below 2^63, and each
    float64 step but the last multiply is exact, so the floats equal pattn-bench's bit for bit."""
    M = 0xFFFFFFFF
    x = (torch.arange(count, dtype=torch.int64, device=device) + stream * 0x9E3779B9) & M
    st = (x * 747796405 + 2891336453) & M
    del x
    w = (((st >> ((st >> 28) + 4)) ^ st) * 277803737) & M
    del st
    u = (((w >> 22) ^ w) & M) >> 8
    del w
    return ((u.double() - 8388607.5) * (1.0 / 8388608.0) * 1.7320508075688772).float()


F32ACC_ROWS = 64


def sample_rows(n):
    """the query rows of the error sub-block: 64 evenly spaced over n (bench/suite_f32acc.c)"""
    R = min(n, F32ACC_ROWS)
    return [j * (n - 1) // (R - 1) if R > 1 else 0 for j in range(R)]


def f64_reference(b, h, n, d, device):
    """float64 attention of batch 0, every head, the sample rows (non-causal); [h, R, d]"""
    q, k, v = (hash_inputs(h * n * d, s, device).view(h, n, d).double() for s in range(3))
    rows = torch.tensor(sample_rows(n), device=device)
    s = torch.matmul(q[:, rows], k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def sdpa_probe(R, ctxm, d, dt, causal):
    """SDPA on [1, 1, 128, d] under the forced backend: refuses what the full shape would"""
    F = torch.nn.functional

    def probe():
        q = R.randn(1, 1, 128, d, dtype=DTYPES[dt])
        with ctxm():
            F.scaled_dot_product_attention(q, q, q, is_causal=bool(causal))
    return probe


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
    bench_attn(R, "quick", 1, 8, 2048, 64, R.dt("f32"), compiled=False)
    bench_attn(R, "quick", 1, 1, 16384, 64, R.dt("f32"), reference=False, compiled=False)
    bench_attn_bwd(R, "quick", 1, 8, 1024, 64, R.dt("f32"))
    bench_ring(R, "quick", 1, 8, 2048, 64, R.dt("f32"), 4)
    bench_dilated(R, "quick", "dilated", 1, 2048, 8, 64, R.dt("f32"), [512, 1024, 2048], [1, 2, 4])
    bench_block_sparse(R, "quick", 1, 2048, 8, 64, R.dt("f32"), 64, 1, [2, 4])
    bench_mha(R, "quick", "mha_dilated", 1, 1024, 8, 64, R.dt("f32"),
              lambda q, k, v: ref_ops.dilated_head_groups(q, k, v, [256, 512, 1024], [1, 2, 4]))
    bench_lrpe(R, "quick", 2, 12, 128, 1, 4096, 0, R.dt("bf16"))
    bench_lrpe(R, "quick", 2, 12, 128, 2, 64, 10, R.dt("bf16"), passes=("fwd",))


def suite_seed000(R):
    for b in (1, 2):
        for n in (512, 1024):
            for h in (8, 16):
                segs, rates = [n // 4, n // 2, n], [1, 2, 4]
                bench_attn(R, "seed000", b, h, n, 64, R.dt("f32"))
                bench_dilated(R, "seed000", "dilated", b, n, h, 64, R.dt("f32"), segs, rates)
                bench_mha(R, "seed000", "mha_dilated", b, n, h, 64, R.dt("f32"),
                          lambda q, k, v, s=segs, r=rates: ref_ops.dilated_head_groups(q, k, v, s, r))
                bench_ring(R, "seed000", b, h, n, 64, R.dt("f32"), 1)
                bench_block_sparse(R, "seed000", b, n, h, 64, R.dt("f32"), 64, 1, [2, 4])
                lay = ref_ops.block_layout(n, n, 64, 1, [2, 4])
                bench_mha(R, "seed000", "mha_block_sparse", b, n, h, 64, R.dt("f32"),
                          ref_ops.bhnd_core(lambda q, k, v, lay=lay: ref_ops.block_sparse(q, k, v, lay, 64)),
                          {"bs": 64})


def suite_seed001(R):
    for b in (1, 2, 4):
        for n in (2048, 4096, 8192):
            segs, rates = [min(s, n // 2) for s in (1024, 2048, 4096)], [1, 2, 4]
            bench_dilated(R, "seed001", "dilated", b, n, 8, 64, R.dt("f32"), segs, rates)
            bench_dilated(R, "seed001", "dilated_lse", b, n, 8, 64, R.dt("f32"), segs, rates)
            bench_dilated(R, "seed001", "ring_dilated", b, n, 8, 64, R.dt("f32"), segs, rates)
            bench_mha(R, "seed001", "mha_dilated", b, n, 8, 64, R.dt("f32"),
                      lambda q, k, v, s=segs, r=rates: ref_ops.dilated_head_groups(q, k, v, s, r))


def suite_seed002(R):
    ns = {1: [256 << i for i in range(8)], 2: [16, 32, 64, 128], 3: [4, 8, 16, 32]}
    for dims in (1, 2, 3):
        for l in (0, 10):
            for g in ns[dims]:
                bench_lrpe(R, "seed002", 12, 12, 128, dims, g, l, R.dt("bf16"))


def suite_seed003(R):
    for d, h, b in ((64, 12, 1), (64, 12, 8), (128, 12, 1), (256, 24, 2)):
        for n in (512, 1024, 2048, 4096, 8192, 16384):
            bench_attn(R, "seed003", b, h, n, d, R.dt("f32"))


def suite_seed004(R):
    for n in (1024, 2048, 4096, 8192):
        bench_attn(R, "seed004", 1, 8, n, 64, R.dt("f16"))
        for ring in (1, 2, 4, 8, 16):
            bench_ring(R, "seed004", 1, 8, n, 64, R.dt("f16"), ring)


FA2_TOKENS, FA2_HIDDEN = 16384, 2048


def suite_fa2(R):
    """bench/suite_fa2.c: FlashAttention-2's benchmark shapes, forward and backward, through
    every SDPA backend forced (FlashAttention's benchmark_forward/benchmark_backward)."""
    F = torch.nn.functional
    dts = [R.args.dtype] if R.args.dtype else ["bf16", "f16"]
    for dt in dts:
        for causal in (0, 1):
            for d in (64, 128, 256):
                for n in (512, 1024, 2048, 4096, 8192, 16384):
                    b, h = FA2_TOKENS // n, FA2_HIDDEN // d
                    shape = attn_shape(b, h, n, d, causal)
                    cost = 4.0 * b * h * n * n * d / (2 if causal else 1)
                    for bwd in (0, 1):
                        for name, ctxm in sdpa_forced(R):
                            def make(ctxm=ctxm, bwd=bwd):
                                q, k, v = (R.randn(b, h, n, d, dtype=DTYPES[dt], grad=bool(bwd))
                                           for _ in range(3))
                                if not bwd:
                                    def fn():
                                        with ctxm():
                                            return F.scaled_dot_product_attention(
                                                q, k, v, is_causal=bool(causal))
                                    return fn
                                with ctxm():
                                    out = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
                                dout = torch.randn_like(out)
                                return lambda: torch.autograd.grad(out, (q, k, v), dout,
                                                                   retain_graph=True)
                            R.row("fa2", "attn_bwd" if bwd else "attn", name, dt, shape, make,
                                  cost * (2.5 if bwd else 1.0),
                                  probe=sdpa_probe(R, ctxm, d, dt, causal))


def suite_f32acc(R):
    """bench/suite_f32acc.c: f32 forward at the seed-003 shapes through the forced backends
    (and math with TF32), each with its error against a float64 reference of the same inputs
    on the same sub-block as pattn-bench (batch 0, every head, 64 query rows)."""
    F = torch.nn.functional
    dt = R.dt("f32")
    for d, h, b in ((64, 12, 1), (64, 12, 8), (128, 12, 1), (256, 24, 2)):
        for n in (512, 1024, 2048, 4096, 8192, 16384):
            shape = attn_shape(b, h, n, d)
            cost = 4.0 * b * h * n * n * d
            rows = sample_rows(n)
            ref = {}

            def reference(b=b, h=h, n=n, d=d, ref=ref):
                if "r" not in ref:  # once per shape, when the first row gets this far
                    ref["r"] = f64_reference(b, h, n, d, R.dev)
                    ref["norm"] = torch.linalg.vector_norm(ref["r"]).item()
                return ref["r"], ref["norm"]

            def check(fn, rows=rows, reference=reference):
                r, norm = reference()
                o = fn()[0][:, rows].double()
                if not bool(torch.isfinite(o).all()):
                    raise RuntimeError("output has NaN or Inf where the f64 reference is finite")
                e = o - r
                return {"max_abs_err": e.abs().max().item(),
                        "rel_l2_err": torch.linalg.vector_norm(e).item() / norm if norm else 0.0,
                        "ref_norm": norm,
                        "err_sample": "batch 0, all %d heads, query rows j*(n-1)//%d for j < %d"
                                      % (h, len(rows) - 1, len(rows))}
            for name, ctxm in sdpa_forced(R, tf32_math=True):
                def make(ctxm=ctxm, b=b, h=h, n=n, d=d):
                    count = b * h * n * d
                    q, k, v = (hash_inputs(count, s, R.dev).view(b, h, n, d).to(DTYPES[dt])
                               for s in range(3))

                    def fn():
                        with ctxm():
                            return F.scaled_dot_product_attention(q, k, v)
                    return fn
                R.row("f32acc", "attn", name, dt, shape, make, cost, check=check,
                      probe=sdpa_probe(R, ctxm, d, dt, 0))
            ref.clear()


SUITES = {"quick": suite_quick, "seed000": suite_seed000, "seed001": suite_seed001,
          "seed002": suite_seed002, "seed003": suite_seed003, "seed004": suite_seed004,
          "fa2": suite_fa2, "f32acc": suite_f32acc}
# --max-seconds per row when not given: fa2 has 576 small rows (~4 minutes with pattn's side)
SUITE_MAX_SECONDS = {"fa2": 0.75, "f32acc": 10.0}
ALL = ("quick", "seed000", "seed001", "seed002", "seed003", "seed004")  # as pattn-bench's "all"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="quick",
                    help="quick, seed000..seed004, all (those), fa2 or f32acc")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="-", help="JSON file (default: stdout)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="time budget per row (default 30; fa2 0.75, f32acc 10, as pattn-bench)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                    help="override every suite's dtype (as pattn-bench --dtype)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default 2 for the quick suite on CPU, as pattn)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="add torch.compile rows (default on CUDA; --no-compile skips them)")
    ap.add_argument("--flush-mb", type=float, default=256.0,
                    help="CUDA: zero an MB scratch tensor before each timed run (0: off), as pattn-bench")
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
    names = list(ALL) if args.suite == "all" else [args.suite]
    for s in names:
        if s not in SUITES:
            ap.error("unknown suite %s" % s)
        R.max_seconds = args.max_seconds or SUITE_MAX_SECONDS.get(s, 30.0)
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
