/* pattn-bench: time and memory of one op.
 *
 * Memory: in_use before setup is the base; inputs are created; the peak is reset; one run;
 * peak - base is the row's memory (inputs included, as the seeds counted it) and
 * peak - (in_use after setup) the workspace the op itself allocated.
 * Time: that first run is a warm-up (kernel builds, first touch); a second warm-up follows
 * when the first was short; then `reps` runs, each timed by device events around the op
 * (or, where the backend has none, bracketed by pattn_synchronize and CLOCK_MONOTONIC),
 * summarised as median, mean, std and min. On GPU backends each run is preceded, on the
 * same queue, by a fill of a --flush-mb scratch tensor (default 256 MB, several times an
 * H100/H200's L2): the op starts with none of its inputs in L2, and the device is still
 * busy with the fill while the host issues the op, so the start event is not taken on an
 * idle device that then waits for the host to launch the first kernel. Runs over ~2 s get 3 runs, and
 * --max-seconds caps the total; the row's note says when fewer than 10 runs were taken.
 * Before anything is created, a row whose run time, extrapolated from a smaller row of the
 * same implementation, exceeds --max-seconds is skipped, as is one whose memory estimate
 * exceeds --max-mem. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define MB (1024.0 * 1024.0)

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_stats(const double *t, int n, double *median, double *mean, double *std, double *min) {
  double *s = malloc((size_t)(n > 0 ? n : 1) * sizeof(double)), sum = 0, sq = 0;
  if (!s || n <= 0) {
    free(s);
    *median = *mean = *std = *min = 0;
    return;
  }
  memcpy(s, t, (size_t)n * sizeof(double));
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  *median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  *min = s[0];
  for (int i = 0; i < n; i++) sum += s[i];
  *mean = sum / n;
  for (int i = 0; i < n; i++) sq += (s[i] - *mean) * (s[i] - *mean);
  *std = n > 1 ? sqrt(sq / (n - 1)) : 0.0;
  free(s);
}

/* ---- run-time extrapolation per implementation (within one process run) ---- */
typedef struct est_entry {
  char   label[160];
  double cost, seconds;
} est_entry;
static est_entry g_est[256];
static int g_nest;

/* A row's statistics from its runs' times in seconds: median, mean, std and min in ms. */
void row_times(bench_row *row, const double *t, int runs) {
  bench_stats(t, runs, &row->median, &row->mean, &row->std, &row->min);
  row->median *= 1e3;
  row->mean *= 1e3;
  row->std *= 1e3;
  row->min *= 1e3;
  row->runs = runs;
  row->status = ROW_OK;
}

static void est_label(const bench_row *r, char *buf, size_t n) {
  snprintf(buf, n, "%s|%s|%s|%s", r->suite, r->op, r->impl, r->dtype);
}

static double est_lookup(const bench_row *r, double cost) {
  char l[160];
  est_label(r, l, sizeof(l));
  for (int i = 0; i < g_nest; i++)
    if (!strcmp(g_est[i].label, l) && g_est[i].cost > 0) return g_est[i].seconds * cost / g_est[i].cost;
  return -1;
}

static void est_store(const bench_row *r, double cost, double seconds) {
  char l[160];
  int i;
  est_label(r, l, sizeof(l));
  for (i = 0; i < g_nest; i++)
    if (!strcmp(g_est[i].label, l)) break;
  if (i == g_nest) {
    if (g_nest == (int)(sizeof(g_est) / sizeof(g_est[0]))) return;
    g_nest++;
  }
  snprintf(g_est[i].label, sizeof(g_est[i].label), "%s", l);
  /* keep the largest measured cost: extrapolating from nearer sizes is more accurate */
  if (cost >= g_est[i].cost) {
    g_est[i].cost = cost;
    g_est[i].seconds = seconds;
  }
}

static void fail_status(bench_row *row, pattn_context *ctx, pattn_status st, const char *where) {
  const char *msg = pattn_last_error(ctx);
  if (st == PATTN_ERR_OUT_OF_MEMORY && ops_host_oom())
    row_fail(row, ROW_FAIL, "out of memory (%s): host buffer for the random inputs", where);
  else if (st == PATTN_ERR_OUT_OF_MEMORY)
    row_fail(row, ROW_FAIL, "out of memory (%s)%s%s", where, msg && *msg ? ": " : "", msg ? msg : "");
  else
    row_fail(row, ROW_FAIL, "%s: %s%s%s", where, pattn_status_string(st), msg && *msg ? ": " : "",
             msg ? msg : "");
}

/* ---- the scratch fill before each timed run ---- */
#define FLUSH_MB_DEFAULT 256.0
static pattn_tensor  *g_flush;
static pattn_context *g_flush_ctx;

void bench_flush_release(void) {
  pattn_tensor_destroy(g_flush);
  g_flush = NULL;
  g_flush_ctx = NULL;
}

double bench_flush_mb(const bench_env *env) {
  if (env->is_cpu) return 0;
  return env->opts->flush_mb < 0 ? FLUSH_MB_DEFAULT : env->opts->flush_mb;
}

/* The scratch tensor for runs on ctx (made before the row's memory is counted), or NULL:
 * CPU backend, --flush-mb 0, or a context other than the suite's own. */
static pattn_tensor *flush_tensor(const bench_env *env, pattn_context *ctx) {
  const double mb = bench_flush_mb(env);
  if (mb <= 0 || ctx != env->ctx) return NULL;
  if (g_flush && g_flush_ctx == ctx) return g_flush;
  bench_flush_release();
  int64_t shape[2] = {(int64_t)(mb * 1024 * 1024 / 4 / 1024) + 1, 1024};
  if (pattn_tensor_create(ctx, PATTN_F32, 2, shape, &g_flush) != PATTN_OK) return g_flush = NULL;
  g_flush_ctx = ctx;
  return g_flush;
}

/* One timed run in seconds, -1 on failure (the row marked): after the fill of `flush` (NULL:
 * none), events recorded on the context's queue around the op (device time on GPU backends,
 * no host launch or synchronisation latency), or, where events fail, a synchronised host clock. */
static double run_once(pattn_context *ctx, const op_spec *s, void *state, bench_row *row, pattn_tensor *flush) {
  pattn_event *e0 = NULL, *e1 = NULL;
  double ms = -1;
  if (flush && pattn_tensor_fill(flush, 0.0f) != PATTN_OK) flush = NULL;
  pattn_status st = pattn_event_record(ctx, &e0);
  int events = st == PATTN_OK;
  if (!events && flush) (void)pattn_synchronize(ctx); /* the host clock must not count the fill */
  double t0 = bench_now();
  st = op_run(ctx, s, state);
  if (st == PATTN_OK && events && pattn_event_record(ctx, &e1) == PATTN_OK && pattn_event_elapsed(e0, e1, &ms) != PATTN_OK)
    ms = -1;
  if (st == PATTN_OK) st = pattn_synchronize(ctx);
  double t1 = bench_now();
  pattn_event_destroy(e0);
  pattn_event_destroy(e1);
  if (st != PATTN_OK) {
    fail_status(row, ctx, st, "run");
    return -1;
  }
  return ms >= 0 ? ms * 1e-3 : t1 - t0;
}

int bench_precheck(const bench_env *env, const op_spec *s, bench_row *row) {
  const bench_opts *o = env->opts;
  double budget = o->max_seconds > 0 ? o->max_seconds : 1e30;
  row->flops = op_flops(s);
  row->bytes = op_bytes(s);
  double cost = row->flops > 0 ? row->flops : row->bytes;

  double need_mb = op_estimate_bytes(s) / MB;
  if (o->max_mem_mb > 0 && need_mb > o->max_mem_mb) {
    row_fail(row, ROW_SKIP, "skipped: needs about %.0f MB, over --max-mem %.0f MB", need_mb,
             o->max_mem_mb);
    return 1;
  }
  double est = est_lookup(row, cost);
  if (est > budget) {
    row_fail(row, ROW_SKIP, "skipped: over time budget (about %.3g s per run estimated from a "
             "smaller size, --max-seconds %g)", est, o->max_seconds);
    return 1;
  }
  return 0;
}

void bench_measure(bench_env *env, pattn_context *ctx, const op_spec *s, bench_row *row) {
  const bench_opts *o = env->opts;
  double budget = o->max_seconds > 0 ? o->max_seconds : 1e30;
  if (bench_precheck(env, s, row)) return;
  double cost = row->flops > 0 ? row->flops : row->bytes;
  pattn_tensor *flush = flush_tensor(env, ctx);

  size_t base = 0, after_setup = 0, peak = 0, in_use = 0, dev_free0 = 0, dev_free1 = 0, dev_total = 0;
  void *state = NULL;
  pattn_status st = pattn_memory_stats(ctx, &base, &peak);
  if (st != PATTN_OK) base = 0;
  /* the driver's view, where the backend has one: cross-checks pattn's own accounting */
  int dev_known = pattn_device_memory(ctx, &dev_free0, &dev_total) == PATTN_OK;
  row->device_inputs_mb = -1;
  st = op_setup(ctx, s, &state);
  if (st != PATTN_OK) {
    fail_status(row, ctx, st, "setup");
    op_teardown(state);
    return;
  }
  if (pattn_memory_stats(ctx, &after_setup, &peak) != PATTN_OK) after_setup = base;
  if (dev_known && pattn_device_memory(ctx, &dev_free1, &dev_total) == PATTN_OK)
    row->device_inputs_mb = ((double)dev_free0 - (double)dev_free1) / MB;
  pattn_memory_reset_peak(ctx);

  double t_first = run_once(ctx, s, state, row, flush);
  if (t_first < 0) {
    op_teardown(state);
    return;
  }
  if (pattn_memory_stats(ctx, &in_use, &peak) == PATTN_OK) {
    if (peak < after_setup) peak = after_setup; /* a reset that zeroes the peak */
    row->memory_mb = (double)(peak - base) / MB;
    row->workspace_mb = (double)(peak - after_setup) / MB;
    row->inputs_mb = (double)(after_setup - base) / MB;
  }

  double t_warm = t_first;
  if (t_first < 1.0 && t_first < budget / 4) { /* second warm-up: the first may have built kernels */
    t_warm = run_once(ctx, s, state, row, flush);
    if (t_warm < 0) {
      op_teardown(state);
      return;
    }
  }

  int runs = o->reps > 0 ? o->reps : 10;
  double *t = NULL;
  if (t_warm > budget) {
    /* one run already exceeds the budget: report it alone rather than spend more */
    runs = 1;
    t = malloc(sizeof(double));
    if (t) t[0] = t_warm;
    snprintf(row->note, sizeof(row->note), "1 run (warm-up; over --max-seconds)");
  } else {
    if (t_warm > 2.0 && runs > 3) runs = 3;
    if (t_warm * runs > budget) runs = (int)(budget / t_warm);
    if (runs < 1) runs = 1;
    t = malloc((size_t)runs * sizeof(double));
    for (int i = 0; t && i < runs; i++) {
      t[i] = run_once(ctx, s, state, row, flush);
      if (t[i] < 0) {
        free(t);
        op_teardown(state);
        return;
      }
    }
    if (runs < o->reps)
      snprintf(row->note, sizeof(row->note), "%d run%s (%s)", runs, runs == 1 ? "" : "s",
               t_warm > 2.0 ? "over 2 s per run" : "--max-seconds");
  }
  op_teardown(state);
  if (!t) {
    row_fail(row, ROW_FAIL, "host out of memory");
    return;
  }
  row_times(row, t, runs);
  free(t);
  est_store(row, cost, row->median / 1e3);
}
