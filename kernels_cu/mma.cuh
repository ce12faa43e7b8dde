/* mma.sync building blocks shared by the f16/bf16 flash kernels (flash_mma.cu forward,
 * flash_mma_bwd.cu backward; the wgmma kernels use the conversions and reductions), sm_80 and
 * newer; empty below (the host never launches those
 * kernels there). */
#ifndef PCU_MMA_CUH
#define PCU_MMA_CUH

#include "common.cuh"

#define PCU_LOG2E 1.4426950408889634f

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define PCU_MMA_SM80 1
#else
#define PCU_MMA_SM80 0
#endif

namespace pcu_mma_ops {
#if PCU_MMA_SM80
__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t *r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

/* *p += x in global memory, no return value (RED): the pointer is generic (read from shared
 * memory), so atomicAdd would also test for a shared address and emulate that with a CAS loop. */
__device__ __forceinline__ void red_add(float *p, float x) {
  asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(__cvta_generic_to_global(p)), "f"(x) : "memory");
}
#if __CUDA_ARCH__ >= 900
/* p[0] += x, p[1] += y, p 8-byte aligned (sm_90: one vector RED) */
__device__ __forceinline__ void red_add2(float *p, float x, float y) {
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(__cvta_generic_to_global(p)), "f"(x), "f"(y) : "memory");
}
#endif

/* c (16x8 f32) += a (16x16, row) * b (16x8, col). */
template <bool BF16> __device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b) {
  if (BF16)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Two f32 -> one register of two 16-bit values (lo in the low half), round to nearest even. */
template <bool BF16> __device__ __forceinline__ uint32_t pack_rn(float lo, float hi) {
  uint32_t r;
  if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

/* x rounded to tf32 (nearest, ties away from zero): an f32 bit pattern with the low 13
 * mantissa bits clear. */
__device__ __forceinline__ uint32_t tf32_rna(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

/* 2^x, MUFU.EX2 (2 ulp; -inf gives +0, results below 2^-126 flush to 0). */
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/* ROWS x D tile of 16-bit elements into shared memory (pitch C::P) from rows of stride sn
 * starting at src; rows >= nrows and columns >= dcols become 0. async: cp.async (every row
 * start 16-byte aligned); else plain element loads and 16-byte shared stores. Chunk c of
 * row r goes to thread (r*CPR + c) % THREADS: a warp writes whole 128-byte row pieces. */
template <class C, int ROWS>
__device__ __forceinline__ void load_tile(uint16_t *dst, const uint16_t *src, int64_t sn, int nrows, int dcols, bool async) {
  constexpr int CPR = C::D / 8, RSTEP = C::THREADS / CPR, ITERS = (ROWS + RSTEP - 1) / RSTEP;
  /* opaque per call: otherwise this thread's chunk offsets (and the 64-bit row offsets of
   * every unrolled chunk) are hoisted out of the kv loop as invariants, which costs the
   * registers the 32-row warps do not have (spills) */
  int tid = threadIdx.x;
  asm volatile("" : "+r"(tid), "+l"(sn), "+r"(dcols));
  const int c = (tid % CPR) * 8, r0 = tid / CPR;
  const int cbytes = min(16, max(0, (dcols - c) * 2));
  const uint16_t *s0 = src + (int64_t)r0 * sn + c;
  const int64_t step = (int64_t)RSTEP * sn;
  const uint32_t d0 = smem_addr(dst) + (uint32_t)(r0 * C::P + c) * 2;
#pragma unroll
  for (int it = 0; it < ITERS; it++) {
    const int r = r0 + it * RSTEP;
    if (ROWS % RSTEP != 0 && r >= ROWS) break;
    const uint16_t *s = s0 + it * step;
    const int bytes = r < nrows ? cbytes : 0;
    if (async) {
      pcu_cp_async16(d0 + (uint32_t)(it * RSTEP * C::P * 2), bytes > 0 ? (const void *)s : (const void *)src, bytes);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const uint32_t lo = 2 * e < bytes / 2 ? s[2 * e] : 0u, hi = 2 * e + 1 < bytes / 2 ? s[2 * e + 1] : 0u;
        w[e] = lo | (hi << 16);
      }
      *(uint4 *)(dst + (r * C::P + c)) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}
#endif /* PCU_MMA_SM80 */
} /* namespace pcu_mma_ops */

#endif /* PCU_MMA_CUH */
