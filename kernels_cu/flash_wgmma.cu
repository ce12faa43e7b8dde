/* Fused tiled attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for
 * f16/bf16 inputs: the semantics of flash_mma.cu (strided views, GQA, causal with any offset,
 * lse, out_scale, nq != nk) for the common case it serves faster on an H100/H200: no mask,
 * equal head dims of 64, 128 or 256, 16-byte aligned rows. Everything else, and every other
 * device, stays with flash_mma.cu (the host returns cudaErrorNotSupported).
 *
 * One block of NWG warpgroups computes BM = 64*NWG query rows of one (batch, segment, head);
 * warpgroup w owns rows 64w .. 64w+63 and keeps their scores and output in registers.
 *   - Q, K and V tiles sit in shared memory as 8x8 core matrices (wgmma.cuh), loaded with
 *     16-byte cp.async (rows beyond nq/nk zero-filled); K and V have ST buffers each (K runs
 *     ST-1 tiles ahead, V ST-2), and there is one barrier per kv tile.
 *   - S = Q K^T: wgmma m64nBNk16 with Q and K from shared memory (both K-major); the online
 *     softmax in base 2 as in flash_mma.cu; P converted in registers to the A operand of
 *     O += P V: wgmma m64nDk16 with V from shared memory as an MN-major operand (no transposed
 *     copy). The products of one tile's scores and the previous tile's P V run together, and
 *     the softmax overlaps the latter (FlashAttention-3's intra-warpgroup pipelining).
 *   - Causal: score checks only on the tiles that need them; a block visits the tiles its
 *     last row sees.
 * Grid: blockIdx.x = ((ib*ns + is)*hq + ih)*nqt + (nqt-1-qt): the longest causal tiles first. */
#ifndef __CUDACC_RTC__
#include <stdlib.h>
#endif

#include "mma.cuh"
#include "wgmma.cuh"

namespace pcu_wg {

/* D: head dim; BN keys per kv tile; NWG warpgroups of 64 rows; ST buffers each for K and V. */
template <int D_, int BN_, int NWG_, int ST_> struct Cfg {
  static constexpr int D = D_, BN = BN_, NWG = NWG_, ST = ST_;
  static constexpr int THREADS = 128 * NWG, BM = 64 * NWG;
  static constexpr int Q_BYTES = BM * D * 2, KV_BYTES = BN * D * 2;
  static constexpr size_t SMEM = (size_t)Q_BYTES + 2 * ST * (size_t)KV_BYTES;
  static_assert(D % 64 == 0 && BN % 64 == 0 && (BM * D / 8) % THREADS == 0 && (BN * D / 8) % THREADS == 0 && ST >= 2,
                "tile shape");
};

#if PCU_WGMMA_DEVICE
using namespace pcu_mma_ops;
using namespace pcu_wgmma_ops;

/* ROWS x D tile at shared address dst in core-matrix layout from rows of stride sn at src:
 * the 16 bytes of row r, columns 8c .. 8c+7, at byte ((r/8)*(D/8) + c)*128 + (r%8)*16; rows
 * >= nrows become 0. Consecutive threads fill consecutive 16 bytes (no bank conflicts); a
 * warp reads 4 chunks (64 bytes) of each of 8 rows. */
template <class C, int ROWS> __device__ __forceinline__ void load_cm(uint32_t dst, const uint16_t *src, int64_t sn, int nrows) {
  constexpr int ITERS = ROWS * C::D / 8 / C::THREADS;
#pragma unroll
  for (int it = 0; it < ITERS; it++) {
    const int L = (int)threadIdx.x + it * C::THREADS;
    const int r = (L / C::D) * 8 + (L & 7), c = (L >> 3) % (C::D / 8);
    const bool in = r < nrows;
    pcu_cp_async16(dst + (uint32_t)L * 16, in ? (const void *)(src + (int64_t)r * sn + c * 8) : (const void *)src, in ? 16 : 0);
  }
}
#endif

/* flags: bit 0: out 16-bit with even row starts (32-bit stores of column pairs).
 * off: causal_offset clamped to [-nq, nk]. */
template <class C, bool BF16>
__global__ void __launch_bounds__(C::THREADS, 1) k_flash_wgmma(pcu_flash_args a, int nqt, int off, int flags) {
#if PCU_WGMMA_DEVICE
  constexpr int D = C::D, BN = C::BN, BM = C::BM;
  extern __shared__ __align__(128) uint8_t smem_wg[];
  constexpr int ST = C::ST;
  const uint32_t sQ = smem_addr(smem_wg), sK = sQ + C::Q_BYTES, sV = sK + ST * C::KV_BYTES;
  const int tid = threadIdx.x, wg = tid >> 7, w4 = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int nq = (int)a.q.n, nk = (int)a.k.n;
  const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt);
  const int ih = tile.ih, is = tile.is, ib = tile.ib, kh = tile.kh;
  const int q0 = tile.qt * BM;
  const bool causal = a.causal != 0;
  int kend = nk;
  if (causal) kend = min(nk, max(0, min(q0 + BM, nq) + off));
  const int ntiles = (kend + BN - 1) / BN;
  const int grow = q0 + wg * 64, wrow = grow + w4 * 16; /* the warpgroup's and the warp's first rows */
  const float u = a.scale * PCU_LOG2E;                   /* p = 2^(s*u - m*u) on raw scores s = q.k */

  float o[D / 2], m[2], l[2];
  m[0] = m[1] = -PCU_INF;
  l[0] = l[1] = 0.0f;
#pragma unroll
  for (int i = 0; i < D / 2; i++) o[i] = 0.0f;

  if (ntiles > 0) {
    const uint16_t *kg = (const uint16_t *)a.k.buf + pcu_row(a.k, ib, is, kh, 0);
    const uint16_t *vg = (const uint16_t *)a.v.buf + pcu_row(a.v, ib, is, kh, 0);
    /* kv tile j sits in buffer j % ST; the load groups: [Q, K(0)], then [K(i), V(i-1)] for
     * i = 1 .. ST-2, then one per iteration j: [K(j+ST-1), V(j+ST-2)] */
    auto kbuf = [&](int j) { return sK + (uint32_t)(j % ST) * C::KV_BYTES; };
    auto vbuf = [&](int j) { return sV + (uint32_t)(j % ST) * C::KV_BYTES; };
    auto load_k = [&](int j) {
      if (j < ntiles) load_cm<C, BN>(kbuf(j), kg + (int64_t)j * BN * a.k.sn, a.k.sn, nk - j * BN);
    };
    auto load_v = [&](int j) {
      if (j < ntiles) load_cm<C, BN>(vbuf(j), vg + (int64_t)j * BN * a.v.sn, a.v.sn, nk - j * BN);
    };
    load_cm<C, BM>(sQ, (const uint16_t *)a.q.buf + pcu_row(a.q, ib, is, ih, q0), a.q.sn, nq - q0);
    load_k(0);
    pcu_cp_commit();
#pragma unroll
    for (int i = 1; i < ST - 1; i++) {
      load_k(i);
      load_v(i - 1);
      pcu_cp_commit();
    }
    /* Q (this warpgroup's 64 rows) and K: K-major, LBO 128 (next 8 columns), SBO D*16 (next
     * 8 rows); V: MN-major, LBO D*16 (next 8 keys), SBO 128 (next 8 columns). A k16 step
     * moves Q and K by 256 bytes, V by 2*D*16 (encoded: >> 4). */
    const uint64_t dq = desc(sQ + (uint32_t)(wg * 64 * D * 2), 128, D * 16);
    uint32_t pa[BN / 16][4]; /* P(j-1), the A operand of its P V */

    /* Iteration j: S(j) = Q K(j)^T and O += P(j-1) V(j-1) go to the tensor cores together;
     * the softmax of S(j) runs while P V(j-1) does, then O is rescaled and P(j) packed. At
     * the top of iteration j, K(j) and V(j-1) have landed; K(j+ST-1) and V(j+ST-2) load
     * during it, into the buffers of K(j-1) and V(j-2), free once every warpgroup is past
     * the barrier.
     * No product sits under a branch that depends on the thread (ptxas would serialize them
     * all): a warpgroup computes even a causal tile none of its rows sees (all masked). */
    auto top = [&](int j) {
      pcu_cp_wait<ST - 2>();
      fence_proxy_async();
      __syncthreads();
      load_k(j + ST - 1);
      load_v(j + ST - 2);
      pcu_cp_commit();
    };
    auto qk = [&](float(&s)[BN / 2], int j) {
      const uint64_t dk = desc(kbuf(j), 128, D * 16);
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) mma_ss<BN, BF16>(s, dq + 16 * kk, dk + 16 * kk, kk);
      commit();
    };
    auto pv = [&](int j) {
      const uint64_t dv = desc(vbuf(j), D * 16, 128);
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) mma_rs<D, BF16>(o, pa[kk], dv + (uint64_t)(2 * D * kk));
      commit();
    };
    /* scores of tile j -> p (in s), m and l updated; alpha: the factor for O */
    auto softmax = [&](float(&s)[BN / 2], int j, float(&alpha)[2]) {
      const int k0 = j * BN;
      if (k0 + BN > nk || (causal && k0 + BN - 1 > wrow + off)) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int i = wrow + g + 8 * h, last = causal ? min(nk - 1, i + off) : nk - 1;
#pragma unroll
          for (int n = 0; n < BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 2; e++)
              if (k0 + n * 8 + 2 * t + e > last) s[4 * n + 2 * h + e] = -PCU_INF;
        }
      }
#pragma unroll
      for (int h = 0; h < 2; h++) {
        float mx = m[h];
#pragma unroll
        for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(s[4 * n + 2 * h], s[4 * n + 2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mu = mx == -PCU_INF ? 0.0f : mx * u;
        alpha[h] = ex2(fmaf(m[h], u, -mu)); /* 0 while m was -inf */
        m[h] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
          const float p0 = ex2(fmaf(s[4 * n + 2 * h], u, -mu)), p1 = ex2(fmaf(s[4 * n + 2 * h + 1], u, -mu));
          s[4 * n + 2 * h] = p0;
          s[4 * n + 2 * h + 1] = p1;
          sum += p0 + p1;
        }
        l[h] = l[h] * alpha[h] + sum;
      }
    };
    /* P rounded to the input type as the A operand of P V */
    auto pack = [&](const float(&s)[BN / 2]) {
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) {
        pa[kk][0] = pack_rn<BF16>(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = pack_rn<BF16>(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = pack_rn<BF16>(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = pack_rn<BF16>(s[8 * kk + 6], s[8 * kk + 7]);
      }
    };

    {
      float s[BN / 2], alpha[2];
      top(0);
      fence();
      qk(s, 0);
      wait<0>();
      pin(s);
      softmax(s, 0, alpha); /* O is still 0 */
      pack(s);
    }
    for (int j = 1; j < ntiles; j++) {
      float s[BN / 2], alpha[2];
      top(j);
      pin(o);
      fence();
      qk(s, j);
      pv(j - 1);
      wait<1>(); /* S(j) */
      pin(s);
      softmax(s, j, alpha);
      wait<0>(); /* P V(j-1) */
      pin(o);
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        o[4 * n] *= alpha[0];
        o[4 * n + 1] *= alpha[0];
        o[4 * n + 2] *= alpha[1];
        o[4 * n + 3] *= alpha[1];
      }
      pack(s);
    }
    /* the last tile's P V */
    pcu_cp_wait<0>();
    fence_proxy_async();
    __syncthreads();
    pin(o);
    fence();
    pv(ntiles - 1);
    wait<0>();
    pin(o);
  }

  /* out = out_scale * O / l, lse = ln(sum exp(score)); a row without visible keys: 0, -inf */
  const bool vout = flags & 1;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    float lt = l[h];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const int i = wrow + g + 8 * h;
    if (i >= nq) continue;
    const float inv = lt > 0.0f ? a.out_scale / lt : 0.0f;
    const int64_t r = pcu_row(a.out, ib, is, ih, i);
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      const int col = n * 8 + 2 * t;
      const float x0 = o[4 * n + 2 * h] * inv, x1 = o[4 * n + 2 * h + 1] * inv;
      if (vout) {
        const uint32_t w = a.out.dtype == PCU_BF16 ? (uint32_t)pcu_f32_to_bf16(x0) | ((uint32_t)pcu_f32_to_bf16(x1) << 16)
                                                   : (uint32_t)pcu_f32_to_f16(x0) | ((uint32_t)pcu_f32_to_f16(x1) << 16);
        *(uint32_t *)((uint16_t *)a.out.buf + r + col) = w;
      } else {
        pcu_store(a.out.buf, a.out.dtype, r + col, x0);
        pcu_store(a.out.buf, a.out.dtype, r + col + 1, x1);
      }
    }
    if (a.lse.buf && t == 0)
      pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i), lt > 0.0f ? m[h] * a.scale + logf(lt) : -PCU_INF);
  }
#else
  (void)a; (void)nqt; (void)off; (void)flags;
#endif
}

} /* namespace pcu_wg */

/* The variants, per head dim in order of preference: (D, BN, NWG, ST). One list feeds the
 * host table and, under NVRTC, the explicit instantiations (common.cuh, "Under NVRTC"). */
#define WG_VARIANTS(X) \
  X(64, 64, 2, 3)      \
  X(64, 64, 2, 2)      \
  X(128, 128, 2, 2)    \
  X(128, 128, 2, 3)    \
  X(256, 64, 2, 2)

#ifdef __CUDACC_RTC__
#define RTC_WG(D, BN, NWG, ST)                                                                                      \
  template __global__ void pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, NWG, ST>, false>(pcu_flash_args, int, int, int); \
  template __global__ void pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, NWG, ST>, true>(pcu_flash_args, int, int, int);
WG_VARIANTS(RTC_WG)
#else /* host side */

namespace {

typedef void (*wg_kernel_fn)(pcu_flash_args, int, int, int);

struct wg_variant {
  int d, bm, threads;
  size_t smem;
  wg_kernel_fn k[2]; /* [bf16] */
};

#define PCU_WG_CFG(D, BN, NWG, ST) pcu_wg::Cfg<D, BN, NWG, ST>
#define PCU_WG_ROW(D, BN, NWG, ST)                                     \
  {D, 64 * (NWG), 128 * (NWG), PCU_WG_CFG(D, BN, NWG, ST)::SMEM,      \
   {pcu_wg::k_flash_wgmma<PCU_WG_CFG(D, BN, NWG, ST), false>, pcu_wg::k_flash_wgmma<PCU_WG_CFG(D, BN, NWG, ST), true>}},

const wg_variant wg_variants[] = {WG_VARIANTS(PCU_WG_ROW)};

} /* namespace */

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash_mma.cu).
 * Built only where the module carries sm_90a code (PCU_WGMMA_BUILT, set by meson.build), and
 * run only on compute capability 9.0, the one that sm_90a code runs on. At d=128 it takes
 * only kv lengths up to 2048: beyond that flash_mma.cu was faster on the H200 (fa2 shapes,
 * bf16: 0.91-0.96x at nk = 4096-16384, 1.04-1.39x at 512-2048; results 2026-11-21, session 6).
 * PATTN_CUDA_WGMMA (temporary, for benchmarks): 0 turns this path off, 1 takes it at every
 * kv length; PATTN_CUDA_WG_CFG=k starts the search at the k-th entry of the head dim's list. */
extern "C" int pcu_flash_wgmma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin) {
#ifndef PCU_WGMMA_BUILT
  (void)s; (void)a; (void)cc; (void)smem_optin; (void)wg_variants;
  return (int)cudaErrorNotSupported;
#else
  const char *env = getenv("PATTN_CUDA_WGMMA");
  if (env && env[0] == '0') return (int)cudaErrorNotSupported;
  const bool always = env && env[0] == '1';
  const int dt = a->q.dtype;
  const int64_t nq = a->q.n, nk = a->k.n, d = a->q.d;
  if (cc != 90 || !pcu_flash_tc_args(a) || a->mask.buf || a->k.d != d || a->v.d != d || (d != 64 && d != 128 && d != 256) ||
      !pcu_rows_aligned(a->q, 2, 16) || !pcu_rows_aligned(a->k, 2, 16) || !pcu_rows_aligned(a->v, 2, 16))
    return (int)cudaErrorNotSupported;
  if (d == 128 && nk > 2048 && !always) return (int)cudaErrorNotSupported;
  const int i = pcu_pick_variant(wg_variants, (int)(sizeof wg_variants / sizeof wg_variants[0]), (int)d, "PATTN_CUDA_WG_CFG",
                                 [&](const wg_variant &v) { return v.smem <= smem_optin; });
  if (i < 0) return (int)cudaErrorNotSupported;
  const wg_variant *v = &wg_variants[i];
  wg_kernel_fn kernel = v->k[dt == PCU_BF16];
  const int64_t nqt = (nq + v->bm - 1) / v->bm, blocks = nqt * a->q.nh * a->q.ns * a->q.nb;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  cudaError_t e = pcu_prepare_smem((const void *)kernel, v->smem);
  if (e != cudaSuccess) return (int)e;
  const int64_t off = pcu_clamp_causal(a->causal_offset, nq, nk);
  const int vout = (a->out.dtype == PCU_F16 || a->out.dtype == PCU_BF16) && pcu_rows_aligned(a->out, 2, 4);
  kernel<<<(unsigned)blocks, v->threads, v->smem, s>>>(*a, (int)nqt, (int)off, vout);
  return (int)cudaGetLastError();
#endif
}
#endif /* !__CUDACC_RTC__ */
