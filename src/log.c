/* Logging to stderr, only when $PATTN_LOG asks for it (error|warn|info|debug). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int log_threshold(void) {
  /* Read every time: cheap next to any operator, and tests may change it at run time. */
  const char *s = getenv("PATTN_LOG");
  if (!s || !*s) return -1;
  if (!strcmp(s, "error")) return PATTN_LOG_ERROR;
  if (!strcmp(s, "warn")) return PATTN_LOG_WARN;
  if (!strcmp(s, "info")) return PATTN_LOG_INFO;
  if (!strcmp(s, "debug")) return PATTN_LOG_DEBUG;
  return -1;
}

int pattn__log_enabled(pattn_log_level level) { return (int)level <= log_threshold(); }

void pattn__log(pattn_log_level level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  if (!pattn__log_enabled(level)) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "pattn %s: ", names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
