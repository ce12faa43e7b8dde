/* Backend registry: the CPU backend is built in; GPU backends are shared modules
 * (libpattn-<name>.so) found through $PATTN_BACKEND_DIR, next to libpattn, or in the
 * install directory. A module is loaded once and never unloaded while the process runs
 * (unloading a module whose driver threads are alive crashes at exit). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pattn_config.h"

const char *const pattn__backend_names[] = {"cpu", "opencl", "cuda"};
const int pattn__backend_count = 3;

static void *core_state(const pattn_context *ctx) { return ctx->be_state; }

static pattn_status core_error(pattn_context *ctx, pattn_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pattn__verror(ctx, st, fmt, ap);
  va_end(ap);
  return st;
}

const pattn_core_api pattn__core_api = {
    .abi = PATTN_BACKEND_ABI,
    .error = core_error,
    .log = pattn__log,
    .log_enabled = pattn__log_enabled,
    .alloc = pattn__alloc,
    .free = pattn__free,
    .state = core_state,
    .library_version = pattn_version,
};

typedef struct module_slot {
  int                  tried;
  const pattn_backend *be;
  pattn_status         status;
  char                 why[PATTN_ERROR_LEN];
} module_slot;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static module_slot slots[3];

/* Directory holding libpattn itself, found from one of its own symbols. */
static int library_dir(char *dir, size_t len) {
  Dl_info info;
  if (!dladdr((void *)&pattn__core_api, &info) || !info.dli_fname) return 0;
  snprintf(dir, len, "%s", info.dli_fname);
  char *slash = strrchr(dir, '/');
  if (!slash) return 0;
  *slash = '\0';
  return 1;
}

static void *try_open(const char *dir, const char *file, char *tried, size_t tried_len, char *err, size_t err_len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  size_t used = strlen(tried);
  snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", dir);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    /* "cannot open shared object file" just means absent here; anything else (a missing
     * dependency, an undefined symbol) is the real reason and must be reported. */
    if (e && !strstr(e, path)) snprintf(err, err_len, "%s", e);
    else if (e && !strstr(e, "No such file")) snprintf(err, err_len, "%s", e);
  }
  return h;
}

static void load_module(module_slot *slot, const char *name) {
  char file[64], tried[2048] = "", err[1024] = "", dir[4096];
  snprintf(file, sizeof file, "libpattn-%s.so", name);
  void *h = NULL;

  const char *env = getenv("PATTN_BACKEND_DIR");
  if (env && *env) {
    char *copy = strdup(env);
    for (char *save = NULL, *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !h; d = strtok_r(NULL, ":", &save))
      h = try_open(d, file, tried, sizeof tried, err, sizeof err);
    free(copy);
  }
  if (!h && library_dir(dir, sizeof dir)) {
    size_t l = strlen(dir);
    snprintf(dir + l, sizeof dir - l, "/pattn");
    h = try_open(dir, file, tried, sizeof tried, err, sizeof err);
    if (!h) {
      dir[l] = '\0';
      h = try_open(dir, file, tried, sizeof tried, err, sizeof err);
    }
  }
  if (!h) h = try_open(PATTN_MODULE_DIR, file, tried, sizeof tried, err, sizeof err);
  if (!h) {
    slot->status = PATTN_ERR_NO_BACKEND;
    if (err[0])
      snprintf(slot->why, sizeof slot->why, "backend '%s': cannot load %s: %s", name, file, err);
    else
      snprintf(slot->why, sizeof slot->why,
               "backend '%s': module %s not found (looked in %s); pattn was built without it or it is not installed",
               name, file, tried);
    return;
  }
  pattn_backend_entry_fn entry = (pattn_backend_entry_fn)dlsym(h, "pattn_backend_entry");
  const pattn_backend *be = entry ? entry(&pattn__core_api) : NULL;
  if (!be || be->abi != PATTN_BACKEND_ABI) {
    slot->status = PATTN_ERR_NO_BACKEND;
    snprintf(slot->why, sizeof slot->why, "backend '%s': %s has %s (pattn expects backend ABI %u)", name, file,
             !entry ? "no entry point pattn_backend_entry" : !be ? "an entry point that returned nothing"
                                                               : "a different backend ABI",
             PATTN_BACKEND_ABI);
    return;
  }
  slot->be = be;
  slot->status = PATTN_OK;
}

pattn_status pattn__backend_get(const char *name, const pattn_backend **be, char *why, size_t why_len) {
  *be = NULL;
  if (!strcmp(name, "cpu")) {
    *be = pattn_cpu_backend(&pattn__core_api);
    return PATTN_OK;
  }
  int idx = -1;
  for (int i = 0; i < pattn__backend_count; i++)
    if (!strcmp(name, pattn__backend_names[i])) idx = i;
  if (idx < 0) {
    snprintf(why, why_len, "unknown backend '%s': valid names are auto, cpu, opencl, cuda", name);
    return PATTN_ERR_NO_BACKEND;
  }
  pthread_mutex_lock(&registry_lock);
  module_slot *slot = &slots[idx];
  if (!slot->tried) {
    load_module(slot, name);
    slot->tried = 1;
  }
  pthread_mutex_unlock(&registry_lock);
  if (slot->status != PATTN_OK) {
    snprintf(why, why_len, "%s", slot->why);
    return slot->status;
  }
  *be = slot->be;
  return PATTN_OK;
}

static _Thread_local char reason[PATTN_ERROR_LEN];

const char *pattn_backend_unavailable_reason(const char *name) {
  const pattn_backend *be;
  reason[0] = '\0';
  if (!name) return "backend name is NULL";
  pattn_status st = pattn__backend_get(name, &be, reason, sizeof reason);
  if (st != PATTN_OK) return reason;
  st = be->probe(reason, sizeof reason, NULL, 0);
  if (st != PATTN_OK && !reason[0]) snprintf(reason, sizeof reason, "%s", pattn_status_string(st));
  if (st == PATTN_OK) reason[0] = '\0';
  return reason;
}

pattn_status pattn_backends_available(const char **names, int *count) {
  if (!count) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "backends_available: count is NULL");
  if (!names) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "backends_available: names is NULL");
  const char *found[3];
  int n = 0;
  for (int i = 0; i < pattn__backend_count; i++)
    if (!pattn_backend_unavailable_reason(pattn__backend_names[i])[0]) found[n++] = pattn__backend_names[i];
  if (*count < n) {
    int cap = *count;
    *count = n;
    return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "backends_available: *count=%d is less than the %d backends found", cap, n);
  }
  for (int i = 0; i < n; i++) names[i] = found[i];
  *count = n;
  return PATTN_OK;
}
