/* Status strings, versions and per-context error messages. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "pattn_config.h"

const char *pattn_status_string(pattn_status s) {
  switch (s) {
  case PATTN_OK: return "ok";
  case PATTN_ERR_INVALID_ARGUMENT: return "invalid argument";
  case PATTN_ERR_UNSUPPORTED: return "unsupported by this backend or device";
  case PATTN_ERR_NO_BACKEND: return "backend not available";
  case PATTN_ERR_NO_DEVICE: return "no matching device";
  case PATTN_ERR_OUT_OF_MEMORY: return "out of memory";
  case PATTN_ERR_BACKEND: return "backend failure";
  case PATTN_ERR_COMM: return "communication failure";
  }
  return "unknown status";
}

const char *pattn_version(void) { return PATTN_VERSION; }

unsigned pattn_version_api(void) {
  return ((unsigned)PATTN_VERSION_MAJOR << 16) | ((unsigned)PATTN_VERSION_MINOR << 8) | (unsigned)PATTN_VERSION_PATCH;
}

static _Thread_local char global_error[PATTN_ERROR_LEN];

pattn_status pattn__verror(pattn_context *ctx, pattn_status st, const char *fmt, va_list ap) {
  char *dst = ctx ? ctx->last_error : global_error;
  vsnprintf(dst, PATTN_ERROR_LEN, fmt, ap);
  if (pattn__log_enabled(st == PATTN_ERR_INVALID_ARGUMENT ? PATTN_LOG_WARN : PATTN_LOG_ERROR))
    pattn__log(st == PATTN_ERR_INVALID_ARGUMENT ? PATTN_LOG_WARN : PATTN_LOG_ERROR, "%s: %s",
               pattn_status_string(st), dst);
  return st;
}

pattn_status pattn__error(pattn_context *ctx, pattn_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pattn__verror(ctx, st, fmt, ap);
  va_end(ap);
  return st;
}

pattn_status pattn__global_error(pattn_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pattn__verror(NULL, st, fmt, ap);
  va_end(ap);
  return st;
}

void pattn__clear_error(pattn_context *ctx) {
  if (ctx) ctx->last_error[0] = '\0';
}

const char *pattn_last_error(const pattn_context *ctx) { return ctx ? ctx->last_error : global_error; }
