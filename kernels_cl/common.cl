/* Prelude of every pattn OpenCL program (OpenCL C 1.2).
 *
 * Storage dtypes are chosen per tensor with -D options (0 f32, 1 f16, 2 bf16):
 *   PT(dt)          the pointer element type: float, half (vload_half/vstore_half only, so no
 *                   cl_khr_fp16 is needed) or ushort (bf16 bits);
 *   LD(dt, p, i)    element i as float;
 *   ST(dt, p, i, x) store float x at element i, rounded to nearest even.
 * All arithmetic is f32. Views arrive as long8 (offset, sb, ss, sh, sn, -, -, -) in elements. */

#define PT_0 float
#define PT_1 half
#define PT_2 ushort

inline float bf16_to_f32(ushort h) { return as_float((uint)h << 16); }

/* round to nearest even by integer math; NaN stays a (quiet) NaN */
inline ushort f32_to_bf16(float f) {
  uint u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (ushort)(u >> 16);
}

#define LD_0(p, i) ((p)[i])
#define LD_1(p, i) vload_half((size_t)(i), (p))
#define LD_2(p, i) bf16_to_f32((p)[i])
#define ST_0(p, i, x) ((p)[i] = (x))
#define ST_1(p, i, x) vstore_half_rte((x), (size_t)(i), (p))
#define ST_2(p, i, x) ((p)[i] = f32_to_bf16(x))

#define PCAT_(a, b) a##b
#define PCAT(a, b) PCAT_(a, b)
#define PT(dt) PCAT(PT_, dt)
#define LD(dt, p, i) PCAT(LD_, dt)(p, i)
#define ST(dt, p, i, x) PCAT(ST_, dt)(p, i, x)

/* offset of element (ib, is, ih, i, 0) of a view */
inline long vrow(long8 v, long ib, long is, long ih, long i) {
  return v.s0 + ib * v.s1 + is * v.s2 + ih * v.s3 + i * v.s4;
}
