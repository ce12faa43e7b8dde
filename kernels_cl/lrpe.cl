/* md_lrpe_cosine (SPEC.md section 6), memory-bound: every byte is read or written once.
 *
 * 3-D NDRange: dim 0 = column chunk kc (VEC consecutive columns k = kc*VEC ..), dim 1 = row t,
 * dim 2 = head h + nh * batch chunk. A work-item computes the VEC angles of (h, t, k..) and
 * their sin/cos once, then loops over its batch chunk (batches [bc*bpc, bc*bpc + bpc)):
 * angles do not depend on the batch, so the host keeps bpc large (all of b) unless that
 * leaves too few work-items to fill the device. The loop loads UNROLL rows before storing,
 * so several loads are in flight per work-item.
 * Index math is 32-bit (the host checks the ranges) and uses no 64-bit division; element
 * offsets are 64-bit products. Global accesses are VEC-wide (VEC=8 bf16/f16: 16-byte
 * loads/stores); the host picks VEC so that every offset and d, e are multiples of it.
 *
 * Angles reach 1e5 rad: full-accuracy sincos (never native_*), and the program is built
 * without -cl-fast-relaxed-math. The angle is one f32 multiply, exactly as the reference;
 * bf16/f16 stores round to nearest even.
 * Defines: DT_IN, DT_TH, DT_OUT, HAS_CACHE, VEC (1, 2, 4 or 8). */

#ifndef VEC
#define VEC 1
#endif
#define UNROLL 4

#if VEC == 1
#define VSUF
#define VLOADF(p) (*(p))
#else
#define VSUF VEC
#define VLOADF(p) PCAT(vload, VEC)(0, p)
#endif
#define VT(t) PCAT(t, VSUF)
typedef VT(float) floatv;
typedef VT(ushort) ushortv;
typedef VT(uint) uintv;

/* VEC elements at element index i (a multiple of VEC: the cast pointer is aligned) */
inline floatv ldv_f32(__global const float *p, long i) { return *(__global const floatv *)(p + i); }
inline floatv ldv_f16(__global const half *p, long i) {
  ushortv u = *(__global const ushortv *)((__global const ushort *)p + i);
  return PCAT(vload_half, VSUF)(0, (__private const half *)&u);
}
inline floatv ldv_bf16(__global const ushort *p, long i) {
  ushortv u = *(__global const ushortv *)(p + i);
  return VT(as_float)(VT(convert_uint)(u) << 16);
}
inline void stv_f32(__global float *p, long i, floatv x) { *(__global floatv *)(p + i) = x; }
inline void stv_f16(__global half *p, long i, floatv x) {
  ushortv u;
  PCAT(PCAT(vstore_half, VSUF), _rte)(x, 0, (__private half *)&u);
  *(__global ushortv *)((__global ushort *)p + i) = u;
}
/* f32_to_bf16 of common.cl, lane-wise */
inline void stv_bf16(__global ushort *p, long i, floatv x) {
  uintv u = VT(as_uint)(x);
  uintv r = (u + (uintv)0x7fffu + ((u >> 16) & (uintv)1u)) >> 16;
  r = select(r, (u >> 16) | (uintv)0x40u, (u & (uintv)0x7fffffffu) > (uintv)0x7f800000u);
  *(__global ushortv *)(p + i) = VT(convert_ushort)(r);
}
#define LDV_0 ldv_f32
#define LDV_1 ldv_f16
#define LDV_2 ldv_bf16
#define STV_0 stv_f32
#define STV_1 stv_f16
#define STV_2 stv_bf16
#define LDV(dt, p, i) PCAT(LDV_, dt)(p, i)
#define STV(dt, p, i, x) PCAT(STV_, dt)(p, i, x)

inline uint pick(uint8 s, uint i) {
  switch (i) {
  case 0: return s.s0; case 1: return s.s1; case 2: return s.s2; case 3: return s.s3;
  case 4: return s.s4; case 5: return s.s5; case 6: return s.s6; default: return s.s7;
  }
}

/* the VEC angles of head hh, row t, columns k .. k+VEC-1 (one axis: e % VEC == 0).
 * stride[i] = prod(shape[i+1..]) so p[i] = (c / stride[i]) % shape[i], as the spec's loop. */
inline floatv lrpe_angles(__global const PT(DT_TH) *theta, long thoff, uint hh, uint t, uint k, uint e,
                          uint8 shape, uint8 stride, uint extra) {
  if (t < extra) return (floatv)(0.0f);
  const uint axis = k / e;
  const float pos = (float)(((t - extra) / pick(stride, axis)) % pick(shape, axis));
  float th[VEC];
  const long tb = thoff + (long)hh * e + k % e;
  for (int j = 0; j < VEC; j++) th[j] = LD(DT_TH, theta, tb + j);
  return pos * VLOADF(th);
}

__kernel void lrpe_forward(__global const PT(DT_IN) *restrict x, long xoff, __global const PT(DT_TH) *restrict theta,
                           long thoff, __global PT(DT_OUT) *restrict out, long ooff, __global float *restrict cache,
                           long coff, uint nbatch, uint bpc, uint nh, uint n, uint d, uint e, uint8 shape,
                           uint8 stride, uint extra) {
  const uint k = (uint)get_global_id(0) * VEC, t = (uint)get_global_id(1), hb = (uint)get_global_id(2);
  if (k >= d || t >= n) return;
  const uint hh = hb % nh, b0 = (hb / nh) * bpc, b1 = min(b0 + bpc, nbatch);
  const floatv ang = lrpe_angles(theta, thoff, hh, t, k, e, shape, stride, extra);
#if HAS_CACHE
  if (b0 == 0) stv_f32(cache, coff + ((long)hh * n + t) * d + k, ang);
#endif
  floatv cs;
  const floatv sn = sincos(ang, &cs);
  const long xs = (long)nh * n * d, os = 2 * xs; /* batch strides */
  long xi = xoff + ((long)b0 * nh + hh) * ((long)n * d) + (long)t * d + k;
  long oi = ooff + (((long)b0 * nh + hh) * n + t) * (2L * d) + k;
  uint ib = b0;
  for (; ib + UNROLL <= b1; ib += UNROLL) {
    floatv v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) v[u] = LDV(DT_IN, x, xi + u * xs);
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      STV(DT_OUT, out, oi + u * os, v[u] * cs);
      STV(DT_OUT, out, oi + u * os + d, v[u] * sn);
    }
    xi += UNROLL * xs;
    oi += UNROLL * os;
  }
  for (; ib < b1; ib++, xi += xs, oi += os) {
    const floatv v = LDV(DT_IN, x, xi);
    STV(DT_OUT, out, oi, v * cs);
    STV(DT_OUT, out, oi + d, v * sn);
  }
}

__kernel void lrpe_backward(__global const PT(DT_IN) *restrict dout, long doff,
                            __global const PT(DT_TH) *restrict theta, long thoff, __global PT(DT_OUT) *restrict dx,
                            long xoff, __global const float *restrict cache, long coff, uint nbatch, uint bpc,
                            uint nh, uint n, uint d, uint e, uint8 shape, uint8 stride, uint extra) {
  const uint k = (uint)get_global_id(0) * VEC, t = (uint)get_global_id(1), hb = (uint)get_global_id(2);
  if (k >= d || t >= n) return;
  const uint hh = hb % nh, b0 = (hb / nh) * bpc, b1 = min(b0 + bpc, nbatch);
#if HAS_CACHE
  const floatv ang = ldv_f32(cache, coff + ((long)hh * n + t) * d + k);
#else
  const floatv ang = lrpe_angles(theta, thoff, hh, t, k, e, shape, stride, extra);
#endif
  floatv cs;
  const floatv sn = sincos(ang, &cs);
  const long xs = (long)nh * n * d, os = 2 * xs;
  long xi = xoff + ((long)b0 * nh + hh) * ((long)n * d) + (long)t * d + k;
  long oi = doff + (((long)b0 * nh + hh) * n + t) * (2L * d) + k;
  uint ib = b0;
  for (; ib + UNROLL <= b1; ib += UNROLL) {
    floatv c[UNROLL], s[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      c[u] = LDV(DT_IN, dout, oi + u * os);
      s[u] = LDV(DT_IN, dout, oi + u * os + d);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) STV(DT_OUT, dx, xi + u * xs, c[u] * cs + s[u] * sn);
    xi += UNROLL * xs;
    oi += UNROLL * os;
  }
  for (; ib < b1; ib++, xi += xs, oi += os)
    STV(DT_OUT, dx, xi, LDV(DT_IN, dout, oi) * cs + LDV(DT_IN, dout, oi + d) * sn);
}
