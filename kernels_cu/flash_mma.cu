/* Fused tiled attention on tensor cores for f16/bf16 inputs (sm_80 and newer): the same
 * algorithm as flash.cu, with Q K^T and P V as mma.sync m16n8k16 (16-bit operands, f32
 * accumulation). 4 warps; warp w owns query rows 16w..16w+15 of a 64-row tile and holds its
 * scores and output in registers; P is fed back from the score accumulators as the A
 * operand without a trip through shared memory. Softmax, masking and the output are f32.
 * Older architectures use flash.cu (f32 arithmetic). Parallel to kernels_cl/flash.cl. */
#include "common.cuh"

#define MMA_THREADS 128
#define MMA_BM 64
#define MMA_BN 64

template <int D> struct MmaCfg {
  static constexpr int P = D + 8; /* row pitch in halves: +16 bytes keeps ldmatrix rows on distinct banks */
  static constexpr size_t SMEM = (size_t)(MMA_BM + 2 * MMA_BN) * P * 2;
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

template <bool BF16> __device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (BF16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

template <bool BF16> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if (BF16) return (uint32_t)pcu_f32_to_bf16(lo) | ((uint32_t)pcu_f32_to_bf16(hi) << 16);
  return (uint32_t)pcu_f32_to_f16(lo) | ((uint32_t)pcu_f32_to_f16(hi) << 16);
}

/* rows x D tile of 16-bit elements into shared memory (pitch P), zero outside
 * nrows x dcols; 16-byte loads where the view allows. */
template <int D>
__device__ __forceinline__ void load_tile16(uint16_t *dst, int rows, const pcu_view &v, int64_t base, int64_t nrows,
                                            int64_t dcols, bool vec) {
  constexpr int CPR = D / 8; /* 8-element chunks per row */
  const uint16_t *src = (const uint16_t *)v.buf;
  for (int idx = threadIdx.x; idx < rows * CPR; idx += MMA_THREADS) {
    const int r = idx / CPR, c = (idx % CPR) * 8;
    uint4 x = make_uint4(0, 0, 0, 0);
    if (r < nrows) {
      const int64_t at = base + (int64_t)r * v.sn + c;
      if (vec && c + 8 <= dcols) {
        x = *(const uint4 *)(src + at);
      } else {
        uint16_t h[8];
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = c + e < dcols ? src[at + e] : (uint16_t)0;
        x.x = h[0] | ((uint32_t)h[1] << 16); x.y = h[2] | ((uint32_t)h[3] << 16);
        x.z = h[4] | ((uint32_t)h[5] << 16); x.w = h[6] | ((uint32_t)h[7] << 16);
      }
    }
    *(uint4 *)(dst + r * MmaCfg<D>::P + c) = x;
  }
}

template <int D, bool BF16>
__global__ void __launch_bounds__(MMA_THREADS) k_flash_mma(pcu_flash_args a, int64_t nqt, int vecq, int veck, int vecv) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int P = MmaCfg<D>::P, NT = MMA_BN / 8, OT = D / 8;
  extern __shared__ uint4 smem16[];
  uint16_t *Qs = (uint16_t *)smem16, *Ks = Qs + MMA_BM * P, *Vs = Ks + MMA_BN * P;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t nq = a.q.n, nk = a.k.n, hq = a.q.nh, group = hq / a.k.nh;
  int64_t bid = blockIdx.x;
  const int64_t qt = nqt - 1 - bid % nqt;
  bid /= nqt;
  const int64_t ih = bid % hq; bid /= hq;
  const int64_t is = bid % a.q.ns, ib = bid / a.q.ns, kh = ih / group;
  const int64_t q0 = qt * MMA_BM;
  load_tile16<D>(Qs, MMA_BM, a.q, pcu_row(a.q, ib, is, ih, q0), nq - q0, a.q.d, vecq);
  const int64_t kbase = pcu_row(a.k, ib, is, kh, 0), vbase = pcu_row(a.v, ib, is, kh, 0);
  int64_t kend = nk;
  if (a.causal) kend = min(nk, max((int64_t)0, q0 + MMA_BM + a.causal_offset));
  const int64_t ntiles = (kend + MMA_BN - 1) / MMA_BN;

  const int64_t i0 = q0 + warp * 16 + g, i1 = i0 + 8; /* this thread's two rows */
  int64_t mrow0 = 0, mrow1 = 0;
  if (a.mask.buf) {
    mrow0 = pcu_row(a.mask, a.mask.nb > 1 ? ib : 0, 0, a.mask.nh > 1 ? ih : 0, i0);
    mrow1 = mrow0 + 8 * a.mask.sn;
  }
  float m0 = -PCU_INF, m1 = -PCU_INF, l0 = 0.0f, l1 = 0.0f;
  float o[OT][4];
#pragma unroll
  for (int n = 0; n < OT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  __syncthreads();
  uint32_t qf[D / 16][4]; /* the warp's Q fragments, kept for the whole kv loop */
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++)
    ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + kk * 16 + (lane >> 4) * 8);

  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t k0 = it * MMA_BN;
    __syncthreads();
    load_tile16<D>(Ks, MMA_BN, a.k, kbase + k0 * a.k.sn, nk - k0, a.k.d, veck);
    load_tile16<D>(Vs, MMA_BN, a.v, vbase + k0 * a.v.sn, nk - k0, a.v.d, vecv);
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
      for (int n2 = 0; n2 < NT / 2; n2++) {
        uint32_t b[4];
        ldsm_x4(b, Ks + (n2 * 16 + (lane & 7) + (lane >> 4) * 8) * P + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<BF16>(s[2 * n2], qf[kk], b);
        mma16816<BF16>(s[2 * n2 + 1], qf[kk], b + 2);
      }

    float mx0 = -PCU_INF, mx1 = -PCU_INF;
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int64_t i = e < 2 ? i0 : i1, j = k0 + n * 8 + 2 * t + (e & 1);
        const bool vis = i < nq && j < nk && (!a.causal || j <= i + a.causal_offset);
        float x = s[n][e] * a.scale;
        if (!vis) x = -PCU_INF;
        else if (a.mask.buf) x += pcu_load(a.mask.buf, a.mask.dtype, (e < 2 ? mrow0 : mrow1) + j);
        s[n][e] = x;
        if (e < 2) mx0 = fmaxf(mx0, x); else mx1 = fmaxf(mx1, x);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float al0 = mn0 == -PCU_INF ? 1.0f : expf(m0 - mn0), al1 = mn1 == -PCU_INF ? 1.0f : expf(m1 - mn1);
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int n = 0; n < NT; n++) {
      s[n][0] = mn0 == -PCU_INF ? 0.0f : expf(s[n][0] - mn0);
      s[n][1] = mn0 == -PCU_INF ? 0.0f : expf(s[n][1] - mn0);
      s[n][2] = mn1 == -PCU_INF ? 0.0f : expf(s[n][2] - mn1);
      s[n][3] = mn1 == -PCU_INF ? 0.0f : expf(s[n][3] - mn1);
      sum0 += s[n][0] + s[n][1];
      sum1 += s[n][2] + s[n][3];
    }
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
    l0 = l0 * al0 + sum0; l1 = l1 * al1 + sum1;
    m0 = mn0; m1 = mn1;
#pragma unroll
    for (int n = 0; n < OT; n++) { o[n][0] *= al0; o[n][1] *= al0; o[n][2] *= al1; o[n][3] *= al1; }

#pragma unroll
    for (int kk = 0; kk < MMA_BN / 16; kk++) {
      uint32_t pa[4];
      pa[0] = pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n2 = 0; n2 < OT / 2; n2++) {
        uint32_t b[4];
        ldsm_x4_t(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + n2 * 16 + (lane >> 4) * 8);
        mma16816<BF16>(o[2 * n2], pa, b);
        mma16816<BF16>(o[2 * n2 + 1], pa, b + 2);
      }
    }
  }

  const float inv0 = l0 > 0.0f ? a.out_scale / l0 : 0.0f, inv1 = l1 > 0.0f ? a.out_scale / l1 : 0.0f;
  const int64_t dv = a.v.d;
  if (i0 < nq) {
    const int64_t r = pcu_row(a.out, ib, is, ih, i0);
#pragma unroll
    for (int n = 0; n < OT; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int col = n * 8 + 2 * t + e;
        if (col < dv) pcu_store(a.out.buf, a.out.dtype, r + col, o[n][e] * inv0);
      }
    if (a.lse.buf && t == 0) pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i0), l0 > 0.0f ? m0 + logf(l0) : -PCU_INF);
  }
  if (i1 < nq) {
    const int64_t r = pcu_row(a.out, ib, is, ih, i1);
#pragma unroll
    for (int n = 0; n < OT; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int col = n * 8 + 2 * t + e;
        if (col < dv) pcu_store(a.out.buf, a.out.dtype, r + col, o[n][e + 2] * inv1);
      }
    if (a.lse.buf && t == 0) pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i1), l1 > 0.0f ? m1 + logf(l1) : -PCU_INF);
  }
#endif
}

static int view_vec8(const pcu_view &v) {
  bool ok = ((uintptr_t)v.buf % 16) == 0 && v.offset % 8 == 0 && v.sn % 8 == 0 && (v.nh <= 1 || v.sh % 8 == 0) &&
            (v.ns <= 1 || v.ss % 8 == 0) && (v.nb <= 1 || v.sb % 8 == 0);
  return ok ? 1 : 0;
}

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash.cu). */
extern "C" int pcu_flash_mma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin) {
  const int dt = a->q.dtype;
  if (cc < 80 || a->layout || (dt != PCU_F16 && dt != PCU_BF16) || a->k.dtype != dt || a->v.dtype != dt)
    return (int)cudaErrorNotSupported;
  const int64_t dmax = a->q.d > a->v.d ? a->q.d : a->v.d;
  void (*kernel)(pcu_flash_args, int64_t, int, int, int) = NULL;
  size_t smem = 0;
  const bool bf = dt == PCU_BF16;
  if (dmax <= 32) { kernel = bf ? k_flash_mma<32, true> : k_flash_mma<32, false>; smem = MmaCfg<32>::SMEM; }
  else if (dmax <= 64) { kernel = bf ? k_flash_mma<64, true> : k_flash_mma<64, false>; smem = MmaCfg<64>::SMEM; }
  else if (dmax <= 128) { kernel = bf ? k_flash_mma<128, true> : k_flash_mma<128, false>; smem = MmaCfg<128>::SMEM; }
  if (!kernel || smem > smem_optin) return (int)cudaErrorNotSupported;
  const int64_t nqt = (a->q.n + MMA_BM - 1) / MMA_BM, blocks = nqt * a->q.nh * a->q.ns * a->q.nb;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute((const void *)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return (int)e;
  }
  kernel<<<(unsigned)blocks, MMA_THREADS, smem, s>>>(*a, nqt, view_vec8(a->q), view_vec8(a->k), view_vec8(a->v));
  return (int)cudaGetLastError();
}
