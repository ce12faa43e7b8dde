/* On-disk cache of program binaries (DESIGN.md "Kernels").
 *
 * Directory: $PATTN_CACHE_DIR ("off" disables), else $XDG_CACHE_HOME/pattn, else
 * ~/.cache/pattn. The key text holds everything that can change a binary: source hash,
 * build options, device name, driver and device versions, library version. The file name
 * is a hash of the key; the file repeats the whole key and a checksum of the binary, so a
 * hash collision, a truncated or a corrupt file is detected and rebuilt. Files are written
 * to a unique temp name and renamed, so a concurrent reader never sees half a file. Any
 * failure here only means a rebuild. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocl.h"

static const char magic[8] = {'P', 'A', 'T', 'T', 'N', 'C', 'L', '1'};

/* mkdir -p; 0 on success */
static int make_dirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    int r = mkdir(path, 0755);
    *p = '/';
    if (r != 0 && errno != EEXIST) return -1;
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

void ocl_cache_init(ocl_state *st) {
  st->cache_on = 0;
  const char *env = getenv("PATTN_CACHE_DIR");
  int n;
  if (env && strcmp(env, "off") == 0) return;
  if (env && *env) {
    n = snprintf(st->cache_dir, sizeof st->cache_dir, "%s", env);
  } else {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) n = snprintf(st->cache_dir, sizeof st->cache_dir, "%s/pattn", xdg);
    else if (home && *home) n = snprintf(st->cache_dir, sizeof st->cache_dir, "%s/.cache/pattn", home);
    else return;
  }
  if (n <= 0 || (size_t)n >= sizeof st->cache_dir - 64) return;
  if (make_dirs(st->cache_dir) != 0) {
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: kernel cache %s unusable (%s); caching off", st->cache_dir,
                  strerror(errno));
    return;
  }
  st->cache_on = 1;
}

char *ocl_cache_key(const ocl_state *st, const char *source_hash, const char *options) {
  const char *lib = ocl_core->library_version ? ocl_core->library_version() : "?";
  size_t len = strlen(source_hash) + strlen(options) + strlen(st->device_name) + strlen(st->platform_name) +
               strlen(st->driver_version) + strlen(st->device_version) + strlen(lib) + 128;
  char *key = malloc(len);
  if (!key) return NULL;
  snprintf(key, len, "src=%s\nopts=%s\ndev=%s\nplat=%s\ndrv=%s\ndevver=%s\nlib=%s\n", source_hash, options,
           st->device_name, st->platform_name, st->driver_version, st->device_version, lib);
  return key;
}

static void cache_path(const ocl_state *st, const char *key, char *path, size_t len) {
  uint64_t h = ocl_fnv1a(OCL_FNV_INIT, key, strlen(key));
  snprintf(path, len, "%s/%016llx.clbin", st->cache_dir, (unsigned long long)h);
}

int ocl_cache_load(const ocl_state *st, const char *key, unsigned char **bin, size_t *size) {
  *bin = NULL;
  *size = 0;
  if (!st->cache_on) return 0;
  char path[1200];
  cache_path(st, key, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  int ok = 0;
  char m[8];
  uint32_t klen = 0;
  uint64_t blen = 0, sum = 0;
  char *k = NULL;
  unsigned char *b = NULL;
  if (fread(m, 1, 8, f) != 8 || memcmp(m, magic, 8) != 0) goto done;
  if (fread(&klen, sizeof klen, 1, f) != 1 || klen != strlen(key)) goto done;
  k = malloc(klen + 1u);
  if (!k || fread(k, 1, klen, f) != klen || memcmp(k, key, klen) != 0) goto done;
  if (fread(&blen, sizeof blen, 1, f) != 1 || fread(&sum, sizeof sum, 1, f) != 1) goto done;
  if (blen == 0 || blen > ((uint64_t)1 << 31)) goto done;
  b = malloc((size_t)blen);
  if (!b || fread(b, 1, (size_t)blen, f) != (size_t)blen) goto done;
  if (ocl_fnv1a(OCL_FNV_INIT, b, (size_t)blen) != sum) goto done;
  if (fgetc(f) != EOF) goto done; /* trailing bytes: not a file we wrote */
  ok = 1;
done:
  fclose(f);
  free(k);
  if (!ok) {
    free(b);
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: cache entry %s invalid; rebuilding", path);
    return 0;
  }
  *bin = b;
  *size = (size_t)blen;
  return 1;
}

void ocl_cache_store(const ocl_state *st, const char *key, const unsigned char *bin, size_t size) {
  if (!st->cache_on || !bin || size == 0) return;
  char path[1200], tmp[1300];
  cache_path(st, key, path, sizeof path);
  static const char hex[] = "0123456789abcdef";
  uint64_t r = ocl_fnv1a(OCL_FNV_INIT, &st, sizeof st) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)bin;
  char suffix[17];
  for (int i = 0; i < 16; i++) suffix[i] = hex[(r >> (4 * i)) & 15];
  suffix[16] = '\0';
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%s", path, (long)getpid(), suffix);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: cannot write cache file %s: %s", tmp, strerror(errno));
    return;
  }
  uint32_t klen = (uint32_t)strlen(key);
  uint64_t blen = size, sum = ocl_fnv1a(OCL_FNV_INIT, bin, size);
  int ok = fwrite(magic, 1, 8, f) == 8 && fwrite(&klen, sizeof klen, 1, f) == 1 &&
           fwrite(key, 1, klen, f) == klen && fwrite(&blen, sizeof blen, 1, f) == 1 &&
           fwrite(&sum, sizeof sum, 1, f) == 1 && fwrite(bin, 1, size, f) == size;
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: cannot write cache file %s", path);
    unlink(tmp);
  }
}
