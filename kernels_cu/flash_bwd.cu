/* Fused attention backward in f32 arithmetic with FMA, every dtype on every architecture
 * (sm_61 and up): the f32 path, and the f16/bf16 path where the tensor-core kernel of
 * flash_mma_bwd.cu does not apply (before sm_80, or forced with PATTN_CUDA_BWD=fma). SPEC.md
 * section 1's backward: D_i = dout_i . out_i (precomputed by pcu_rowdot), p = exp(scale s -
 * lse), dv = p^T dout, dp = dout v^T, ds = p (dp - D), dq = scale ds k, dk = scale ds^T q; over
 * strided views of any dtypes, GQA, causal with any offset, nq != nk, dk != dv. O(n) memory:
 * the same interface and f32 workspaces as the tensor-core kernel (pcu_flash_bwd_args; the
 * host converts them with pcu_scatter, which also sums dK and dV over each GQA group).
 *
 * One 256-thread block owns one (unit, query head, kv tile of BN keys): K and V of the tile
 * sit in shared memory for the whole block and its dK, dV (BN x D) in registers. The block
 * walks the query tiles of BM rows that can see its keys (causal: from the first that does),
 * starting at the kt-th of them for kv tile kt and wrapping around, so that the blocks of a
 * head that run together add to different dQ rows. Per query tile Q, dO (BM x D) and the
 * rows' lse and D values are loaded to shared memory (zero padded), then
 *   1. S = Q K^T and dP = dO V^T (BM x BN): thread (ti, tj) = (tid / 16, tid % 16) holds rows
 *      ti + 16r and keys tj + 16u; P = exp(scale S - lse) (0 where the key is invisible or
 *      the row has no visible key) and dS = P (dP - D) go to shared memory;
 *   2. dV += P^T dO and dK += dS^T Q: warp w holds key rows w*BN/8 .. +BN/8 (a broadcast
 *      vector load of P and dS), lane l columns VW*(l + 32c) .. +VW (VW = min(4, D/32));
 *   3. dQ (BM x D) = dS K: warp w holds query rows w + 8r, columns as in 2, keys in steps of
 *      4; scaled and added to the f32 dQ workspace with atomicAdd (zeroed by the caller).
 * Shared memory: K, V, Q, dO as [row][D + 4], P and dS as [query][BN + 4]; every product reads
 * float4s (or float2s) that are either broadcast or consecutive across a warp's lanes, or (S and
 * dP in phase 1) 16 rows whose float4s fall in distinct bank quads.
 * At the end dK * scale and dV go to the workspaces [nu][hq][nk][d] (or, without GQA, straight
 * to the gradients: pcu_bwd_grad_row) for every key row < nk.
 * Parallel to kernels_cl/attention_backward.cl, which owns key rows and query rows in two
 * passes instead (no atomics there). */
#include "common.cuh"

#define BWD_FMA_THREADS 256

namespace pcu_fma_bwd {

template <int D_, int BM_, int BN_> struct Cfg {
  static constexpr int D = D_, BM = BM_, BN = BN_;
  static constexpr int PK = D + 4;  /* pitch of K, V, Q, dO ([row][D]) */
  static constexpr int PS = BN + 4; /* pitch of P, dS ([query][key]) */
  static constexpr int RI = BM / 16, RJ = BN / 16; /* phase 1 */
  static constexpr int U = BN / 8, UV = U < 4 ? U : 4; /* phase 2: keys per thread, per load */
  static constexpr int R = BM / 8;                     /* phase 3: query rows per thread */
  static constexpr int VW = D / 32 < 4 ? D / 32 : 4, W = D / (32 * VW); /* columns per load, loads */
  static constexpr int FLOATS = (2 * BN + 2 * BM) * PK + 2 * BM * PS + 2 * BM;
  static constexpr size_t SMEM = (size_t)FLOATS * sizeof(float);
  static_assert(BM % 16 == 0 && BN % 16 == 0 && D % 32 == 0, "tile shape");
};

/* rows [0, rows) x columns [0, D) of dst (pitch P) = the view's rows from element `base` on
 * (row stride v.sn), zero beyond nrows rows and dcols columns. Consecutive threads read
 * consecutive columns of a row. */
template <int D, int P>
__device__ __forceinline__ void load_rows(float *dst, int rows, const pcu_view &v, int64_t base, int64_t nrows, int64_t dcols) {
  for (int x = threadIdx.x; x < rows * D; x += BWD_FMA_THREADS) {
    const int r = x / D, c = x % D;
    dst[r * P + c] = (r < nrows && c < dcols) ? pcu_load(v.buf, v.dtype, base + (int64_t)r * v.sn + c) : 0.0f;
  }
}

/* acc[r][u] = row ti + 16r of A . row tj + 16u of B (both [row][PK] in shared memory), over
 * D columns in float4 steps: the 16 tj of a half-warp read 16 rows, whose float4s fall in
 * distinct bank quads per 8 lanes (PK/4 = D/4 + 1, D/4 a multiple of 8); A's row is a
 * broadcast. */
template <class C>
__device__ __forceinline__ void product(const float *A, const float *B, int ti, int tj, float (&acc)[C::RI][C::RJ]) {
#pragma unroll
  for (int r = 0; r < C::RI; r++)
#pragma unroll
    for (int u = 0; u < C::RJ; u++) acc[r][u] = 0.0f;
#pragma unroll 2
  for (int c = 0; c < C::D; c += 4) {
    float x[C::RI][4], y[C::RJ][4];
#pragma unroll
    for (int r = 0; r < C::RI; r++) pcu_lds<4>(A + (ti + 16 * r) * C::PK + c, x[r]);
#pragma unroll
    for (int u = 0; u < C::RJ; u++) pcu_lds<4>(B + (tj + 16 * u) * C::PK + c, y[u]);
#pragma unroll
    for (int e = 0; e < 4; e++)
#pragma unroll
      for (int r = 0; r < C::RI; r++)
#pragma unroll
        for (int u = 0; u < C::RJ; u++) acc[r][u] = fmaf(x[r][e], y[u][e], acc[r][u]);
  }
}

template <class C>
__global__ void __launch_bounds__(BWD_FMA_THREADS) k_flash_bwd(pcu_flash_bwd_args a, int nkt, int coff) {
  constexpr int D = C::D, BM = C::BM, BN = C::BN, PK = C::PK, PS = C::PS;
  extern __shared__ float4 smem4[];
  float *Ks = (float *)smem4, *Vs = Ks + BN * PK, *Qs = Vs + BN * PK, *Os = Qs + BM * PK;
  float *Ps = Os + BM * PK, *Ss = Ps + BM * PS, *Ls = Ss + BM * PS, *Dl = Ls + BM;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, ti = tid >> 4, tj = tid & 15;
  const int nq = (int)a.q.n, nk = (int)a.k.n, dk = (int)a.q.d, dv = (int)a.v.d;
  const int hq = (int)a.q.nh, group = hq / (int)a.k.nh;
  const int kt = (int)(blockIdx.x % nkt), plane = (int)(blockIdx.x / nkt); /* plane = uu*hq + ih */
  const int ih = plane % hq, uu = plane / hq, kh = ih / group;
  const int64_t un = a.u0 + uu, is = un % a.q.ns, ib = un / a.q.ns;
  const int j0 = kt * BN;

  load_rows<D, PK>(Ks, BN, a.k, pcu_row(a.k, ib, is, kh, j0), nk - j0, dk);
  load_rows<D, PK>(Vs, BN, a.v, pcu_row(a.v, ib, is, kh, j0), nk - j0, dv);

  float gk[C::U][C::W * C::VW], gv[C::U][C::W * C::VW];
#pragma unroll
  for (int u = 0; u < C::U; u++)
#pragma unroll
    for (int c = 0; c < C::W * C::VW; c++) gk[u][c] = gv[u][c] = 0.0f;

  /* causal: query i sees key j iff j <= i + coff, so rows before j0 - coff see none of these */
  const int t_first = a.causal ? max(0, j0 - coff) / BM : 0, tiles = (nq + BM - 1) / BM - t_first;
  const float *delta = a.delta + (int64_t)plane * nq;
  const int64_t lrow = pcu_row(a.lse, ib, is, ih, 0);

  /* kv tile kt starts at its kt-th query tile (then wraps around), so that the blocks of one
   * head running together add to different dQ rows instead of all to the first ones */
  for (int x = 0; x < tiles; x++) {
    const int i0 = (t_first + (x + kt) % tiles) * BM;
    __syncthreads(); /* the previous tile's phases 2 and 3 are done with Q, dO, P, dS */
    load_rows<D, PK>(Qs, BM, a.q, pcu_row(a.q, ib, is, ih, i0), nq - i0, dk);
    load_rows<D, PK>(Os, BM, a.dout, pcu_row(a.dout, ib, is, ih, i0), nq - i0, dv);
    if (tid < BM) {
      const int i = i0 + tid;
      Ls[tid] = i < nq ? pcu_load(a.lse.buf, a.lse.dtype, lrow + (int64_t)i * a.lse.sn) : -PCU_INF;
      Dl[tid] = i < nq ? delta[i] : 0.0f;
    }
    __syncthreads();

    /* 1. S and dP, then P and dS to shared memory */
    {
      float s[C::RI][C::RJ], dp[C::RI][C::RJ];
      product<C>(Qs, Ks, ti, tj, s);
      product<C>(Os, Vs, ti, tj, dp);
#pragma unroll
      for (int r = 0; r < C::RI; r++) {
        const int rr = ti + 16 * r, i = i0 + rr;
        const float L = Ls[rr], Di = Dl[rr];
#pragma unroll
        for (int u = 0; u < C::RJ; u++) {
          const int cc = tj + 16 * u, j = j0 + cc;
          const bool vis = i < nq && j < nk && L != -PCU_INF && (!a.causal || j <= i + coff);
          const float p = vis ? expf(a.scale * s[r][u] - L) : 0.0f;
          Ps[rr * PS + cc] = p;
          Ss[rr * PS + cc] = p * (dp[r][u] - Di);
        }
      }
    }
    __syncthreads();

    /* 2. dV += P^T dO, dK += dS^T Q over the tile's rows */
    const int rows = min(BM, nq - i0);
    for (int r = 0; r < rows; r++) {
      float pj[C::U], sj[C::U], oc[C::W][C::VW], qc[C::W][C::VW];
#pragma unroll
      for (int u = 0; u < C::U; u += C::UV) {
        pcu_lds<C::UV>(Ps + r * PS + warp * C::U + u, pj + u);
        pcu_lds<C::UV>(Ss + r * PS + warp * C::U + u, sj + u);
      }
#pragma unroll
      for (int w = 0; w < C::W; w++) {
        pcu_lds<C::VW>(Os + r * PK + (w * 32 + lane) * C::VW, oc[w]);
        pcu_lds<C::VW>(Qs + r * PK + (w * 32 + lane) * C::VW, qc[w]);
      }
#pragma unroll
      for (int u = 0; u < C::U; u++)
#pragma unroll
        for (int w = 0; w < C::W; w++)
#pragma unroll
          for (int e = 0; e < C::VW; e++) {
            gv[u][w * C::VW + e] = fmaf(pj[u], oc[w][e], gv[u][w * C::VW + e]);
            gk[u][w * C::VW + e] = fmaf(sj[u], qc[w][e], gk[u][w * C::VW + e]);
          }
    }

    /* 3. dQ = scale dS K for this tile's rows, added to the workspace (K rows past nk are 0) */
    {
      float gq[C::R][C::W * C::VW];
#pragma unroll
      for (int r = 0; r < C::R; r++)
#pragma unroll
        for (int c = 0; c < C::W * C::VW; c++) gq[r][c] = 0.0f;
      const int keys = min(BN, nk - j0);
      for (int j = 0; j < keys; j += 4) {
        float sr[C::R][4];
#pragma unroll
        for (int r = 0; r < C::R; r++) pcu_lds<4>(Ss + (warp + 8 * r) * PS + j, sr[r]);
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float kc[C::W][C::VW];
#pragma unroll
          for (int w = 0; w < C::W; w++) pcu_lds<C::VW>(Ks + (j + e) * PK + (w * 32 + lane) * C::VW, kc[w]);
#pragma unroll
          for (int r = 0; r < C::R; r++)
#pragma unroll
            for (int w = 0; w < C::W; w++)
#pragma unroll
              for (int v = 0; v < C::VW; v++) gq[r][w * C::VW + v] = fmaf(sr[r][e], kc[w][v], gq[r][w * C::VW + v]);
        }
      }
#pragma unroll
      for (int r = 0; r < C::R; r++) {
        const int i = i0 + warp + 8 * r;
        if (i >= nq) continue;
        float *row = a.dq + ((int64_t)plane * nq + i) * dk;
#pragma unroll
        for (int w = 0; w < C::W; w++)
#pragma unroll
          for (int v = 0; v < C::VW; v++) {
            const int c = (w * 32 + lane) * C::VW + v;
            if (c < dk) atomicAdd(row + c, a.scale * gq[r][w * C::VW + v]);
          }
      }
    }
  }

  /* dK * scale and dV of the tile's key rows */
#pragma unroll
  for (int u = 0; u < C::U; u++) {
    const int j = j0 + warp * C::U + u;
    if (j >= nk) continue;
    const pcu_grad_row rk = pcu_bwd_grad_row(a, 0, plane, j), rv = pcu_bwd_grad_row(a, 1, plane, j);
#pragma unroll
    for (int w = 0; w < C::W; w++)
#pragma unroll
      for (int v = 0; v < C::VW; v++) {
        const int c = (w * 32 + lane) * C::VW + v;
        if (c < dk) pcu_store(rk.buf, rk.dt, rk.off + c, a.scale * gk[u][w * C::VW + v]);
        if (c < dv) pcu_store(rv.buf, rv.dt, rv.off + c, gv[u][w * C::VW + v]);
      }
  }
}

} /* namespace pcu_fma_bwd */

/* (padded head dim, query rows, keys per block), per head dim in order of preference; a device
 * takes the first whose shared memory fits (floats: (2 BN + 2 BM)(D+1) + 2 BM (BN+1) + 2 BM):
 *   d 32: 64 x 64, 67.6 KB; 32 x 32, 25.6 KB (48 KB devices)
 *   d 64: 64 x 64, 100.4 KB; 32 x 32, 42 KB
 *   d 128: 64 x 64, 165.9 KB (A100, H100, H200); 32 x 32, 74.8 KB; 16 x 16, 35.3 KB
 *   d 256: 32 x 32, 140.3 KB; 16 x 16, 68.1 KB (64-99 KB devices); none for 48 KB devices,
 *          which keep the cuBLAS path there. */
#define FMA_BWD_VARIANTS(X) \
  X(32, 64, 64)             \
  X(32, 32, 32)             \
  X(64, 64, 64)             \
  X(64, 32, 32)             \
  X(128, 64, 64)            \
  X(128, 32, 32)            \
  X(128, 16, 16)            \
  X(256, 32, 32)            \
  X(256, 16, 16)

#ifdef __CUDACC_RTC__
#define RTC_FMA_BWD(D, BM, BN) \
  template __global__ void pcu_fma_bwd::k_flash_bwd<pcu_fma_bwd::Cfg<D, BM, BN>>(pcu_flash_bwd_args, int, int);
FMA_BWD_VARIANTS(RTC_FMA_BWD)
#else /* host side */

namespace {

typedef void (*fma_bwd_fn)(pcu_flash_bwd_args, int, int);

struct fma_bwd_variant {
  int d, bn;
  size_t smem;
  fma_bwd_fn k;
};

#define PCU_FMA_BWD_ROW(D, BM, BN) \
  {D, BN, pcu_fma_bwd::Cfg<D, BM, BN>::SMEM, pcu_fma_bwd::k_flash_bwd<pcu_fma_bwd::Cfg<D, BM, BN>>},

const fma_bwd_variant fma_bwd_variants[] = {FMA_BWD_VARIANTS(PCU_FMA_BWD_ROW)};

/* The variant for a, or NULL where this kernel does not apply (pcu_bwd_head_dim, shared
 * memory). */
const fma_bwd_variant *fma_bwd_pick(const pcu_flash_bwd_args *a, size_t smem_optin) {
  const int d = pcu_bwd_head_dim(a);
  if (d == 0) return NULL;
  const int i = pcu_pick_variant(fma_bwd_variants, (int)(sizeof fma_bwd_variants / sizeof fma_bwd_variants[0]), d,
                                 "PATTN_CUDA_BWD_CFG",
                                 [&](const fma_bwd_variant &v) { return v.smem <= smem_optin; });
  return i < 0 ? NULL : &fma_bwd_variants[i];
}

} /* namespace */

extern "C" int pcu_flash_fma_backward_supported(const pcu_flash_bwd_args *a, size_t smem_optin) {
  return fma_bwd_pick(a, smem_optin) != NULL;
}

extern "C" int pcu_flash_fma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, size_t smem_optin) {
  const fma_bwd_variant *v = fma_bwd_pick(a, smem_optin);
  if (!v) return (int)cudaErrorNotSupported;
  const int64_t nkt = (a->k.n + v->bn - 1) / v->bn, blocks = nkt * a->q.nh * a->nu;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  cudaError_t e = pcu_prepare_smem((const void *)v->k, v->smem);
  if (e != cudaSuccess) return (int)e;
  const int off = (int)pcu_clamp_causal(a->causal_offset, a->q.n, a->k.n);
  v->k<<<(unsigned)blocks, BWD_FMA_THREADS, v->smem, s>>>(*a, (int)nkt, off);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */
