/* pattn-info: the version, which backends can run here and why the others cannot, the
 * devices of each, and what PATTN_BACKEND=auto picks. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "internal.h"
#include "pattn/pattn.h"

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: pattn-info\nPrints pattn's version, the backends usable here with their devices, and what 'auto' picks.\n");
    return 0;
  }
  printf("pattn %s (API 0x%06x)\n\nbackends:\n", pattn_version(), pattn_version_api());
  for (int i = 0; i < pattn__backend_count; i++) {
    const char *name = pattn__backend_names[i];
    const pattn_backend *be;
    char why[PATTN_ERROR_LEN] = "", devices[4096] = "";
    pattn_status st = pattn__backend_get(name, &be, why, sizeof why);
    if (st == PATTN_OK) st = be->probe(why, sizeof why, devices, sizeof devices);
    if (st != PATTN_OK) {
      printf("  %-7s unavailable: %s (%s)\n", name, why[0] ? why : "no reason given", pattn_status_string(st));
      continue;
    }
    printf("  %-7s available\n", name);
    int idx = 0;
    for (char *save = NULL, *line = strtok_r(devices, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
      printf("          device %d: %s\n", idx++, line);
  }
  pattn_options opt;
  pattn_options_default(&opt);
  opt.backend = "auto";
  pattn_context *ctx = NULL;
  pattn_status st = pattn_context_create(&ctx, &opt);
  if (st == PATTN_OK) {
    printf("\nauto picks: %s, %s\n", pattn_context_backend(ctx), pattn_context_device(ctx));
    pattn_context_destroy(ctx);
  } else {
    printf("\nauto picks nothing: %s\n", pattn_last_error(NULL));
  }
  return st == PATTN_OK ? 0 : 1;
}
