/* Block layout builders (SPEC.md section 4): each ORs its pattern into a [nqb][nkb] grid,
 * except causal, which ANDs. Invalid sizes leave dst untouched (they return nothing). */
#include <stdlib.h>

#include "internal.h"

static int grid_ok(const uint8_t *dst, int nqb, int nkb) { return dst && nqb > 0 && nkb > 0; }

void pattn_block_layout_local(uint8_t *dst, int nqb, int nkb, int window) {
  if (!grid_ok(dst, nqb, nkb) || window < 0) return;
  for (int i = 0; i < nqb; i++)
    for (int j = 0; j < nkb; j++)
      if (abs(i - j) <= window) dst[(size_t)i * nkb + j] = 1;
}

void pattn_block_layout_dilated(uint8_t *dst, int nqb, int nkb, int nrates, const int *rates) {
  if (!grid_ok(dst, nqb, nkb) || nrates < 0 || (nrates > 0 && !rates)) return;
  for (int i = 0; i < nqb; i++) {
    if (i < nkb) dst[(size_t)i * nkb + i] = 1;
    for (int r = 0; r < nrates; r++) {
      if (rates[r] < 1) continue;
      if (i - rates[r] >= 0 && i - rates[r] < nkb) dst[(size_t)i * nkb + i - rates[r]] = 1;
      if (i + rates[r] < nkb) dst[(size_t)i * nkb + i + rates[r]] = 1;
    }
  }
}

void pattn_block_layout_global(uint8_t *dst, int nqb, int nkb, int global_blocks) {
  if (!grid_ok(dst, nqb, nkb) || global_blocks < 0) return;
  for (int i = 0; i < nqb; i++)
    for (int j = 0; j < nkb; j++)
      if (i < global_blocks || j < global_blocks) dst[(size_t)i * nkb + j] = 1;
}

/* splitmix64 of (seed, cell): the same bits on every platform and backend */
static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void pattn_block_layout_random(uint8_t *dst, int nqb, int nkb, double p, uint64_t seed) {
  if (!grid_ok(dst, nqb, nkb) || !(p >= 0.0 && p <= 1.0)) return;
  for (size_t c = 0; c < (size_t)nqb * nkb; c++) {
    double u = (double)(mix(seed ^ mix(c)) >> 11) * (1.0 / 9007199254740992.0);
    if (u < p) dst[c] = 1;
  }
}

void pattn_block_layout_causal(uint8_t *dst, int nqb, int nkb) {
  if (!grid_ok(dst, nqb, nkb)) return;
  for (int i = 0; i < nqb; i++)
    for (int j = i + 1; j < nkb; j++) dst[(size_t)i * nkb + j] = 0;
}
