/* pattn-bench: what every suite does for a row: describe it, measure it, say how it went.
 * The shape fields per op are the matching key with the peers (bench/peers/run_peers.py
 * builds the same fields), so change them in both places. */
#include <string.h>

#include "bench.h"

op_spec spec_base(op_kind k, pattn_dtype dt, int64_t b, int64_t h, int64_t nq, int64_t nk,
                  int64_t d) {
  op_spec s;
  memset(&s, 0, sizeof(s));
  s.kind = k;
  s.dtype = dt;
  s.layout = (k == OP_DILATED || k == OP_RING_DILATED) ? PATTN_LAYOUT_BNHD : PATTN_LAYOUT_BHND;
  s.b = b;
  s.h = h;
  s.nq = nq;
  s.nk = nk;
  s.d = d;
  s.algo = PATTN_ALGO_AUTO;
  s.ring_size = 1;
  return s;
}

pattn_dtype suite_dtype(const bench_env *env, pattn_dtype dflt) {
  return env->opts->dtype_set ? env->opts->dtype : dflt;
}

void spec_row_shape(bench_row *r, const op_spec *s) {
  switch (s->kind) {
  case OP_ATTN:
  case OP_ATTN_BWD:
  case OP_RING:
    row_shape(r, "b", s->b);
    row_shape(r, "h", s->h);
    row_shape(r, "nq", s->nq);
    row_shape(r, "nk", s->nk);
    row_shape(r, "d", s->d);
    row_shape(r, "causal", s->causal);
    if (s->kind == OP_RING) row_shape(r, "ring", s->ring_size);
    break;
  case OP_DILATED:
  case OP_RING_DILATED:
  case OP_MHA:
    row_shape(r, "b", s->b);
    row_shape(r, "n", s->nq);
    row_shape(r, "h", s->h);
    row_shape(r, "d", s->d);
    row_shape(r, "causal", s->causal);
    if (s->kind == OP_MHA && s->mha_core == PATTN_MHA_BLOCK_SPARSE) row_shape(r, "bs", s->block_size);
    if (s->kind == OP_MHA && s->mha_core == PATTN_MHA_RING) row_shape(r, "ring", s->ring_size);
    break;
  case OP_BLOCK_SPARSE:
    row_shape(r, "b", s->b);
    row_shape(r, "n", s->nq);
    row_shape(r, "h", s->h);
    row_shape(r, "d", s->d);
    row_shape(r, "bs", s->block_size);
    row_shape(r, "causal", s->causal);
    break;
  case OP_LRPE_FWD:
  case OP_LRPE_BWD:
    row_shape(r, "b", s->b);
    row_shape(r, "h", s->h);
    row_shape(r, "d", s->d);
    row_shape(r, "dims", s->ndims);
    row_shape(r, "g", s->grid[0]);
    row_shape(r, "l", s->extra);
    break;
  }
  row_finish_key(r);
}

static bench_row *fallback_row(void) {
  static bench_row dummy; /* only when the row array cannot grow: keeps callers simple */
  memset(&dummy, 0, sizeof(dummy));
  dummy.status = ROW_FAIL;
  return &dummy;
}

bench_row *bench_do(bench_env *env, pattn_context *ctx, const char *suite, const char *op,
                    const char *impl, const op_spec *s) {
  bench_row *r = row_new(env, suite, op, impl, s->dtype);
  if (!r) return fallback_row();
  spec_row_shape(r, s);
  bench_measure(env, ctx, s, r);
  bench_progress(env, r);
  return r;
}

bench_row *bench_unavailable(bench_env *env, const char *suite, const char *op, const char *impl,
                             const op_spec *s, const char *reason) {
  bench_row *r = row_new(env, suite, op, impl, s->dtype);
  if (!r) return fallback_row();
  spec_row_shape(r, s);
  row_fail(r, ROW_FAIL, "%s", reason);
  bench_progress(env, r);
  return r;
}

const char *flops_unit(const bench_env *env) { return env->is_cpu ? "GFLOP/s" : "TFLOP/s"; }

void fmt_rate(char *buf, size_t n, const bench_env *env, const bench_row *r) {
  const char *unit;
  double v = throughput_flops(env, r, &unit);
  if (v <= 0) snprintf(buf, n, "-");
  else snprintf(buf, n, env->is_cpu ? "%.1f" : "%.3g", v); /* %.3g: an OpenCL CPU device too */
}

void fmt_gbs(char *buf, size_t n, const bench_row *r) {
  if (r->status != ROW_OK || r->bytes <= 0 || r->median <= 0) snprintf(buf, n, "-");
  else snprintf(buf, n, "%.1f", r->bytes / (r->median * 1e-3) / 1e9);
}

void print_failures(FILE *f, const bench_env *env) {
  int any = 0;
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    if (r->status == ROW_OK) continue;
    if (!any) fprintf(f, "\n✗ rows:\n");
    any = 1;
    fprintf(f, "  %s [%s %s]: %s\n", r->impl, r->key, r->dtype, r->reason);
  }
  int notes = 0;
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    if (r->status != ROW_OK || !r->note[0]) continue;
    if (!notes) fprintf(f, "\nRows timed with fewer than 10 runs:\n");
    notes = 1;
    fprintf(f, "  %s [%s %s]: %s\n", r->impl, r->key, r->dtype, r->note);
  }
  print_memory_check(f, env);
}

/* pattn_memory_stats against the driver's own count (cudaMemGetInfo), for the memory each
 * row's inputs took: the driver allocates in pages, so it may exceed pattn's count by its
 * granularity, but it must never be far below (memory pattn allocated but did not count
 * shows up as the driver exceeding pattn by more than the granularity). */
void print_memory_check(FILE *f, const bench_env *env) {
  int n = 0;
  double lo = 0, hi = 0;
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    if (r->status != ROW_OK || r->device_inputs_mb < 0) continue;
    double diff = r->device_inputs_mb - r->inputs_mb;
    if (!n || diff < lo) lo = diff;
    if (!n || diff > hi) hi = diff;
    n++;
  }
  if (n)
    fprintf(f, "\nMemory cross-check (cudaMemGetInfo): over %d rows, the device's count of the inputs minus pattn's is "
               "%+.1f to %+.1f MB\n", n, lo, hi);
}
