/* Elementwise helpers the core composes with (fill, copy with conversion, online-softmax
 * merge), shared by the reference and fast modes. The rows of the views are split into
 * contiguous ranges over the thread pool; each element is computed independently, so the
 * result does not depend on the thread count. */
#include <math.h>

#include "cpu.h"

/* Rows of a view in (ib, is, ih, i) order, flattened. */
static int64_t ew_rows(const pattn_view *v) { return v->nb * v->ns * v->nh * v->n; }

static void ew_unflatten(const pattn_view *v, int64_t r, int64_t *ib, int64_t *is, int64_t *ih, int64_t *i) {
  *i = r % v->n;  r /= v->n;
  *ih = r % v->nh; r /= v->nh;
  *is = r % v->ns; r /= v->ns;
  *ib = r;
}

typedef struct ew_job {
  const pattn_view *dst, *src, *acc_lse, *part_out, *part_lse;
  float             value;  /* fill value, copy alpha */
  int64_t           rows, ntasks;
  void (*row)(const struct ew_job *job, int64_t ib, int64_t is, int64_t ih, int64_t i);
} ew_job;

static void ew_task(void *arg, int64_t task, int thread) {
  (void)thread;
  const ew_job *job = arg;
  int64_t r0 = job->rows * task / job->ntasks, r1 = job->rows * (task + 1) / job->ntasks;
  for (int64_t r = r0; r < r1; r++) {
    int64_t ib, is, ih, i;
    ew_unflatten(job->dst, r, &ib, &is, &ih, &i);
    job->row(job, ib, is, ih, i);
  }
}

/* Small jobs run inline: waking the pool costs more than the work. */
static void ew_run(pattn_context *ctx, ew_job *job) {
  job->rows = ew_rows(job->dst);
  if (job->rows <= 0 || job->dst->d <= 0) return;
  int64_t elems = job->rows * job->dst->d;
  job->ntasks = elems < (1 << 16) ? 1 : (job->rows < 256 ? job->rows : 256);
  const cpu_state *st = cpu_state_of(ctx);
  if (job->ntasks == 1 || st == NULL) {
    job->ntasks = 1;
    ew_task(job, 0, 0);
  } else {
    cpu_parallel_for(st, job->ntasks, ew_task, job);
  }
}

static void fill_row(const ew_job *job, int64_t ib, int64_t is, int64_t ih, int64_t i) {
  const pattn_view *v = job->dst;
  int64_t base = pattn_view_index(v, ib, is, ih, i, 0);
  for (int64_t j = 0; j < v->d; j++) pattn_store(v->buf, v->dtype, base + j, job->value);
}

pattn_status cpu_fill(pattn_context *ctx, const pattn_view *dst, float value) {
  ew_job job = {.dst = dst, .value = value, .row = fill_row};
  ew_run(ctx, &job);
  return PATTN_OK;
}

static void copy_row(const ew_job *job, int64_t ib, int64_t is, int64_t ih, int64_t i) {
  const pattn_view *d = job->dst, *s = job->src;
  int64_t bd = pattn_view_index(d, ib, is, ih, i, 0), bs = pattn_view_index(s, ib, is, ih, i, 0);
  /* the product of two f32 is exact in double, so this is one correctly rounded f32 result
   * before the conversion to the destination dtype */
  for (int64_t j = 0; j < d->d; j++)
    pattn_store(d->buf, d->dtype, bd + j, (float)((double)job->value * pattn_load(s->buf, s->dtype, bs + j)));
}

pattn_status cpu_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha) {
  ew_job job = {.dst = dst, .src = src, .value = alpha, .row = copy_row};
  ew_run(ctx, &job);
  return PATTN_OK;
}

/* One row of the online-softmax merge. A -inf lse is an empty partial: it contributes
 * nothing and is never subtracted from another -inf (which would give NaN). */
static void merge_row(const ew_job *job, int64_t ib, int64_t is, int64_t ih, int64_t i) {
  const pattn_view *ao = job->dst, *po = job->part_out, *al = job->acc_lse, *pl = job->part_lse;
  int64_t ia = pattn_view_index(ao, ib, is, ih, i, 0), ip = pattn_view_index(po, ib, is, ih, i, 0);
  int64_t ila = pattn_view_index(al, ib, is, ih, i, 0);
  double la = pattn_load(al->buf, al->dtype, ila);
  double lp = cpu_vload(pl, ib, is, ih, i, 0);
  if (lp == -INFINITY) {
    if (la == -INFINITY)
      for (int64_t j = 0; j < ao->d; j++) pattn_store(ao->buf, ao->dtype, ia + j, 0.0f);
    return; /* acc unchanged */
  }
  if (la == -INFINITY) {
    for (int64_t j = 0; j < ao->d; j++)
      pattn_store(ao->buf, ao->dtype, ia + j, pattn_load(po->buf, po->dtype, ip + j));
    pattn_store(al->buf, al->dtype, ila, (float)lp);
    return;
  }
  double m = la > lp ? la : lp;
  double lse = m + log(exp(la - m) + exp(lp - m));
  double wa = exp(la - lse), wp = exp(lp - lse);
  for (int64_t j = 0; j < ao->d; j++) {
    double x = wa * pattn_load(ao->buf, ao->dtype, ia + j) + wp * pattn_load(po->buf, po->dtype, ip + j);
    pattn_store_f64(ao->buf, ao->dtype, ia + j, x);
  }
  pattn_store_f64(al->buf, al->dtype, ila, lse);
}

pattn_status cpu_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                       const pattn_view *part_out, const pattn_view *part_lse) {
  ew_job job = {.dst = acc_out, .acc_lse = acc_lse, .part_out = part_out, .part_lse = part_lse, .row = merge_row};
  ew_run(ctx, &job);
  return PATTN_OK;
}
