/* Timing on a context's queue: device events where the backend offers them (so host-side
 * launch and synchronisation latency stays out of the measurement), else a synchronised host
 * clock. */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct pattn_event {
  pattn_context *ctx;
  void          *dev;     /* backend event, or NULL: host_ms holds the time */
  double         host_ms;
};

pattn_status pattn_event_record(pattn_context *ctx, pattn_event **out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  if (!out) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "event_record: ev (the output pointer) is NULL");
  pattn_event *ev = calloc(1, sizeof *ev);
  if (!ev) return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "event_record: out of host memory");
  ev->ctx = ctx;
  if (ctx->be->event_record) {
    st = ctx->be->event_record(ctx, &ev->dev);
  } else {
    st = ctx->be->synchronize(ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ev->host_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
  }
  if (st != PATTN_OK) {
    free(ev);
    return st;
  }
  *out = ev;
  return PATTN_OK;
}

pattn_status pattn_event_elapsed(const pattn_event *start, const pattn_event *end, double *ms) {
  if (!start || !end)
    return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "event_elapsed: %s is NULL", !start ? "start" : "end");
  pattn_context *ctx = start->ctx;
  if (end->ctx != ctx)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "event_elapsed: start and end belong to different contexts");
  if (!ms) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "event_elapsed: ms is NULL");
  if (start->dev && end->dev) return ctx->be->event_elapsed(ctx, start->dev, end->dev, ms);
  *ms = end->host_ms - start->host_ms;
  return PATTN_OK;
}

void pattn_event_destroy(pattn_event *ev) {
  if (!ev) return;
  if (ev->dev && ev->ctx->be->event_destroy) ev->ctx->be->event_destroy(ev->ctx, ev->dev);
  free(ev);
}
