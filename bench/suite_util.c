/* pattn-bench: what every suite does for a row: describe it, measure it, say how it went.
 * The shape fields per op are the matching key with the peers (bench/peers/run_peers.py
 * builds the same fields), so change them in both places. */
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

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

int64_t row_shape_of(const bench_row *r, const char *name) {
  for (int k = 0; k < r->nshape; k++)
    if (!strcmp(r->shape_name[k], name)) return r->shape_val[k];
  return 0;
}

static bench_row *fallback_row(void) {
  static bench_row dummy; /* only when the row array cannot grow: keeps callers simple */
  memset(&dummy, 0, sizeof(dummy));
  dummy.status = ROW_FAIL;
  return &dummy;
}

/* 1 if line contains one of the '|'-separated alternatives of word (n characters) */
static int has_any(const char *line, const char *word, size_t n) {
  char alt[128];
  for (size_t i = 0; i < n;) {
    size_t m = strcspn(word + i, "| ");
    if (m > n - i) m = n - i;
    snprintf(alt, sizeof alt, "%.*s", (int)(m < sizeof alt - 1 ? m : sizeof alt - 1), word + i);
    if (m && strstr(line, alt)) return 1;
    i += m + 1;
  }
  return 0;
}

/* $PATTN_BENCH_ONLY="w1 w2 ..": run only the rows whose "impl key dtype" contains every
 * word, where a word "a|b" means a or b (for tuning sweeps on a GPU, e.g. "d=128
 * nq=512|nq=1024"); unset: every row. Plain substrings: "nq=512" also matches "nq=5120". */
static int row_selected(const bench_row *r) {
  const char *only = getenv("PATTN_BENCH_ONLY");
  if (!only || !*only) return 1;
  char line[512];
  snprintf(line, sizeof line, "%s %s %s", r->impl, r->key, r->dtype);
  for (const char *p = only; *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (!n) break;
    if (!has_any(line, p, n)) return 0;
    p += n;
  }
  return 1;
}

bench_row *bench_do(bench_env *env, pattn_context *ctx, const char *suite, const char *op,
                    const char *impl, const op_spec *s) {
  bench_row *r = row_new(env, suite, op, impl, s->dtype);
  if (!r) return fallback_row();
  spec_row_shape(r, s);
  if (!row_selected(r)) { /* dropped: not measured, not reported */
    env->nrows--;
    return fallback_row();
  }
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

double peer_rate(const bench_env *env, const bench_row *r, const peer_row *q) {
  if (!q || !q->ok || q->median <= 0 || r->flops <= 0) return 0;
  return r->flops / (q->median * 1e-3) / (env->is_cpu ? 1e9 : 1e12);
}

/* ---- host work spread over the cores ---- */
typedef struct pfor {
  int64_t n, next;
  void (*fn)(int64_t, void *);
  void *arg;
  pthread_mutex_t mu;
} pfor;

static void *pfor_worker(void *p) {
  pfor *w = p;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    int64_t i = w->next++;
    pthread_mutex_unlock(&w->mu);
    if (i >= w->n) return NULL;
    w->fn(i, w->arg);
  }
}

void bench_parallel_for(int64_t n, void (*fn)(int64_t i, void *arg), void *arg) {
  enum { MAXT = 64 };
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = cores < 1 ? 1 : cores > MAXT ? MAXT : (int)cores, started = 0;
  if (nt > n) nt = (int)(n > 0 ? n : 1);
  pfor w = {n, 0, fn, arg, PTHREAD_MUTEX_INITIALIZER};
  pthread_t th[MAXT];
  for (int t = 1; t < nt; t++)
    if (pthread_create(&th[started], NULL, pfor_worker, &w) == 0) started++;
  pfor_worker(&w); /* this thread works too; without threads it does everything */
  for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
  pthread_mutex_destroy(&w.mu);
}

/* ---- counter-based inputs (run_peers.py: hash_inputs) ----
 * element i of stream t: x = (i + t * 0x9E3779B9) mod 2^32, h = PCG hash of x (Jarzynski and
 * Olano, "Hash Functions for GPU Rendering"), u = h >> 8 (24 bits), value =
 * (float)(((double)u - 8388607.5) / 2^23 * sqrt(3)). Every step but the last multiply and
 * the cast to float is exact, so C and PyTorch (int64 ops, then float64) agree bit for bit. */
static uint32_t pcg_hash(uint32_t x) {
  uint32_t st = x * 747796405u + 2891336453u;
  uint32_t w = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
  return (w >> 22u) ^ w;
}

typedef struct hash_job {
  float   *dst;
  size_t   n;
  uint32_t stream;
} hash_job;

#define HASH_CHUNK ((size_t)1 << 20)

static void hash_chunk(int64_t c, void *arg) {
  const hash_job *j = arg;
  size_t lo = (size_t)c * HASH_CHUNK, hi = lo + HASH_CHUNK < j->n ? lo + HASH_CHUNK : j->n;
  uint32_t off = j->stream * 0x9E3779B9u;
  for (size_t i = lo; i < hi; i++) {
    uint32_t u = pcg_hash((uint32_t)i + off) >> 8;
    j->dst[i] = (float)(((double)u - 8388607.5) * (1.0 / 8388608.0) * 1.7320508075688772);
  }
}

void bench_hash_fill(float *dst, size_t n, uint32_t stream) {
  hash_job j = {dst, n, stream};
  bench_parallel_for((int64_t)((n + HASH_CHUNK - 1) / HASH_CHUNK), hash_chunk, &j);
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

/* a reason without its figures: "skipped: over time budget (estimated 3 s per run)" and
 * the same with 5 s are one reason */
static size_t reason_stem(const char *r) {
  const char *p = strstr(r, " (");
  return p ? (size_t)(p - r) : strlen(r);
}

void print_peer_failures(FILE *f, const char *suite, const peer_row *p, int np) {
  int any = 0;
  for (int i = 0; i < np; i++) {
    if (strcmp(p[i].suite, suite) || p[i].ok) continue;
    size_t ni = reason_stem(p[i].reason);
    int seen = 0, count = 0;
    for (int j = 0; j < np; j++) {
      if (strcmp(p[j].suite, suite) || p[j].ok || strcmp(p[j].impl, p[i].impl) ||
          reason_stem(p[j].reason) != ni || strncmp(p[j].reason, p[i].reason, ni))
        continue;
      if (j < i) seen = 1;
      count++;
    }
    if (seen) continue;
    if (!any) fprintf(f, "\n✗ peers (each peer and reason once, with the first row it concerns):\n");
    any = 1;
    fprintf(f, "  %s, %d row%s: %s%s [first: %s %s]\n", p[i].impl, count, count == 1 ? "" : "s",
            p[i].unsupported ? "not supported: " : "", p[i].reason, p[i].key, p[i].dtype);
  }
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
