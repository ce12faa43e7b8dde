/* Fused tiled attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for
 * f16/bf16 inputs: the semantics of flash_mma.cu (strided views, GQA, causal with any offset,
 * lse, out_scale, nq != nk) for the common case it serves faster on an H100/H200: no mask,
 * equal head dims of 64, 128 or 256, views that a TMA tensor map describes (16-byte aligned
 * rows and strides). Everything else, and every other device, stays with flash_mma.cu (the
 * host returns cudaErrorNotSupported).
 *
 * Warp-specialised, as FlashAttention-3: a block of three warpgroups computes BM = 128 query
 * rows of one (batch, segment, head); where such blocks would leave half the multiprocessors
 * idle, a block of two computes BM = 64 rows (one consumer; wg_consumers).
 *   - Warpgroup 0 is the producer: one thread issues every load as TMA boxes of 64 columns
 *     (128 bytes) by the tile's rows, in the 128-byte swizzle layout (wgmma.cuh, desc_sw128);
 *     rows past n arrive as zeros. Its other threads leave at once, and its registers go to
 *     the consumers (setmaxnreg).
 *   - K and V each have ST stages with a "full" barrier (the producer's expect_tx, completed
 *     by the transfers) and an "empty" one (every consumer thread arrives once the products
 *     that read the stage have completed), so no load waits on a block-wide barrier.
 *   - Warpgroups 1 and 2 (or 1 alone) each own 64 query rows and keep their scores and
 *     output in registers. S = Q K^T: wgmma m64nBNk16 with Q and K from shared memory (K-major); the
 *     online softmax in base 2 as in flash_mma.cu; P converted in registers to the A operand
 *     of O += P V: wgmma m64nDk16 with V from shared memory as an MN-major operand. The
 *     products of one tile's scores and the previous tile's P V run together, and the
 *     softmax overlaps the latter (FlashAttention-3's intra-warpgroup pipelining).
 *   - Causal: score checks only on the tiles that need them; a block visits the tiles its
 *     last row sees.
 * Grid: blockIdx.x = ((ib*ns + is)*hq + ih)*nqt + (nqt-1-qt): the longest causal tiles first.
 * f32 q, k, v with PATTN_PRECISION_TF32 run here too, as scaled f16 copies (SCALED; see "TF32
 * through f16" below). */
#ifndef __CUDACC_RTC__
#include <stdlib.h>
#endif

#include "mma.cuh"
#include "wgmma.cuh"

namespace pcu_wg {

#if PCU_WGMMA_DEVICE
using namespace pcu_mma_ops;
using namespace pcu_wgmma_ops;
#endif

/* D: head dim; BN keys per kv tile; ST stages each for K and V; NC consumer warpgroups (2, or
 * 1 for grids that would leave half the multiprocessors idle: wg_consumers). */
template <int D_, int BN_, int ST_, int NC_ = 2> struct Cfg {
  static constexpr int D = D_, BN = BN_, ST = ST_, NC = NC_;
  static constexpr int THREADS = 128 * (NC + 1), BM = 64 * NC; /* a producer and NC consumers */
  static constexpr int Q_BYTES = BM * D * 2, KV_BYTES = BN * D * 2;
  /* + 1024: the swizzle pattern needs 1024-byte aligned tiles, dynamic shared memory is only
   * 16-byte aligned */
  static constexpr size_t SMEM = 1024 + (size_t)Q_BYTES + 2 * ST * (size_t)KV_BYTES;
  static_assert(D % 64 == 0 && BN % 64 == 0 && BN <= 256 && ST >= 2 && (NC == 1 || NC == 2), "tile shape");
};

/* The register cap is that of three warpgroups whatever NC: the consumers' setmaxnreg needs
 * it from the pool the block starts with. */
template <class C, bool BF16, bool SCALED = false>
__global__ void __launch_bounds__(384, 1)
    k_flash_wgmma(PCU_TMAP tq, PCU_TMAP tk, PCU_TMAP tv, pcu_flash_args a, int nqt, int nwork, int off, int flags) {
#if PCU_WGMMA_DEVICE
  constexpr int D = C::D, BN = C::BN, BM = C::BM, ST = C::ST;
  extern __shared__ __align__(128) uint8_t smem_wg[];
  __shared__ __align__(8) uint64_t bars[2 + 4 * ST];
  const uint32_t sQ = (smem_addr(smem_wg) + 1023u) & ~1023u, sK = sQ + C::Q_BYTES, sV = sK + ST * C::KV_BYTES;
  /* barriers: Q full, Q empty, then per stage K full, K empty, V full, V empty */
  const uint32_t bQf = smem_addr(&bars[0]), bQe = bQf + 8u;
  auto bar = [&](int kind, int st) { return bQf + 8u * (uint32_t)(2 + kind * ST + st); };
  enum { KF, KE, VF, VE };
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0); /* warp-uniform for the compiler */
  const int nq = (int)a.q.n, nk = (int)a.k.n;
  const bool causal = a.causal != 0;
  /* the kv tiles that work item w's rows see */
  auto tiles_of = [&](const pcu_flash_tile_t<int> &tile) { return wg_kv_tiles<BM, BN>(tile.qt * BM, nq, nk, off, causal); };

  if (tid == 0) {
    mbar_init(bQf, 1);
    mbar_init(bQe, 128 * C::NC);
    wg_kv_bars_init<ST>(bar(KF, 0), 1, 128 * C::NC);
    mbar_init_fence();
  }
  __syncthreads();
  /* SCALED runs as a programmatic dependent of the copies' kernel (wg_launch): everything
   * above overlapped its end; nothing below may read the copies or their exponents before it
   * has finished. */
  if (SCALED) asm volatile("griddepcontrol.wait;\n" ::: "memory");

  /* Persistent: block b takes work items b, b + gridDim.x, ...; the kv stages run on across
   * items (it: tiles loaded so far), so the next item's Q, K and V load while the consumers
   * finish the last one. */
  if (wg == 0) { /* the producer */
    regs_dec<24>();
    if (tid == 0) {
      /* kv tile j of `tile` into stage st of base (K or V) once its empty barrier has
       * completed phase ph ^ 1 */
      auto load_kv = [&](const void *map, uint32_t base, int full, int empty, const pcu_flash_tile_t<int> &tile, int j, int st,
                         uint32_t ph) {
        mbar_wait(bar(empty, st), ph ^ 1u);
        mbar_expect_tx(bar(full, st), C::KV_BYTES);
#pragma unroll
        for (int c = 0; c < D / 64; c++)
          tma_load5(base + (uint32_t)(st * C::KV_BYTES + c * BN * 128), map, c * 64, j * BN, tile.kh, tile.is, tile.ib, bar(full, st));
      };
      int it = 0, wi = 0;
      for (int w = blockIdx.x; w < nwork; w += gridDim.x) {
        const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
        const int ntiles = tiles_of(tile);
        if (ntiles == 0) continue;
        mbar_wait(bQe, ((uint32_t)wi & 1u) ^ 1u);
        wi++;
        mbar_expect_tx(bQf, C::Q_BYTES);
#pragma unroll
        for (int c = 0; c < D / 64; c++)
          tma_load5(sQ + (uint32_t)(c * BM * 128), &tq, c * 64, tile.qt * BM, tile.ih, tile.is, tile.ib, bQf);
        for (int j = 0; j < ntiles; j++, it++) {
          const int st = it % ST;
          const uint32_t ph = (uint32_t)(it / ST) & 1u;
          load_kv(&tk, sK, KF, KE, tile, j, st, ph);
          load_kv(&tv, sV, VF, VE, tile, j, st, ph);
        }
      }
    }
    return;
  }
  regs_inc<240>();
  const int cw = wg - 1, w4 = (tid >> 5) & 3;
  const float u0 = a.scale * PCU_LOG2E;
  /* SCALED: the exponents of the copies' query tiles, then of the kv tiles of K and of V */
  const int nkt = (nk + BN - 1) / BN;
  const int16_t *const eq = a.f16_exp;
  const uint32_t *const ekv = (const uint32_t *)(eq + (a.q.nb * a.q.ns * a.q.nh * (int64_t)nqt + 1) / 2 * 2);
  /* Q: this warpgroup's 64 rows of each 64-column box; a k16 step is 32 bytes inside the
   * 128-byte row, then the next box (descriptor units: >> 4) */
  const uint64_t dq = desc_sw128(sQ + (uint32_t)(cw * 64 * 128), 16, 1024);
  int it = 0, wi = 0;
  for (int w = blockIdx.x; w < nwork; w += gridDim.x) {
    const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
    const int ih = tile.ih, is = tile.is, ib = tile.ib;
    const int ntiles = tiles_of(tile);
    const int wrow = tile.qt * BM + cw * 64 + w4 * 16; /* the warp's first row */

    float o[D / 2], m[2], l[2];
    wg_item_start(o, m, l);
    /* SCALED: Q's tile is 2^eqi q; K's and V's tile j are 2^ekj k and 2^evj v. S comes in units
     * of 2^(eqi + ekj): u takes the first factor, the softmax the second (KF); o is kept in
     * the units of the last V tile added (alpha takes the change), undone at the store. */
    const int eqi = SCALED ? __ldg(eq + ((int64_t)(ib * a.q.ns + is) * a.q.nh + ih) * nqt + tile.qt) : 0;
    const int64_t kvt = SCALED ? ((int64_t)(ib * a.k.ns + is) * a.k.nh + tile.kh) * nkt : 0;
    const float u = SCALED ? ldexpf(u0, -eqi) : u0;
    /* the exponents of kv tile j (ekj, evj; K's in the low half of a pair), read a tile ahead
     * (next); evl: o's units */
    int ekj = 0, evj = 0, evl = 0;
    uint32_t next = SCALED && ntiles > 0 ? __ldg(ekv + kvt) : 0u;

    if (ntiles > 0) {
      uint32_t pa[BN / 16][4];
      /* kv tile j of this item is the (it + j)-th loaded */
      auto full = [&](int kind, int j) { mbar_wait(bar(kind, (it + j) % ST), (uint32_t)((it + j) / ST) & 1u); };
      auto release = [&](int kind, int j) { mbar_arrive(bar(kind, (it + j) % ST)); };
      auto qk = [&](float(&s)[BN / 2], int j) {
        if (SCALED) { /* tile j's, and the next one's read a tile ahead */
          ekj = (int)(int16_t)(next & 0xffffu);
          evj = (int)next >> 16;
          if (j + 1 < ntiles) next = __ldg(ekv + kvt + j + 1);
        }
        const uint64_t dk = desc_sw128(sK + (uint32_t)(((it + j) % ST) * C::KV_BYTES), 16, 1024);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
          mma_ss<BN, BF16>(s, dq + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), dk + (uint64_t)((kk >> 2) * BN * 8 + (kk & 3) * 2), kk);
        commit();
      };
      auto pv = [&](int j) {
        const uint64_t dv = desc_sw128(sV + (uint32_t)(((it + j) % ST) * C::KV_BYTES), BN * 128, 1024);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) mma_rs<D, BF16>(o, pa[kk], dv + (uint64_t)(kk * 128));
        commit();
      };
      auto softmax = [&](float(&s)[BN / 2], int j, float(&alpha)[2]) {
        if (!SCALED) {
          wg_softmax<BN>(s, m, l, alpha, j * BN, nk, wrow, off, causal, u, g, t);
          return;
        }
        wg_softmax<BN, false, true>(s, m, l, alpha, j * BN, nk, wrow, off, causal, u, g, t, __int_as_float((127 - ekj) << 23));
        if (j > 0 && evj != evl) { /* o (tiles before j) from V tile j - 1's units to j's: 2^(evj -
                                    * evl), exact up to 2^±126 (where o would overflow anyway) */
          const float fv = __int_as_float((127 + max(-126, min(127, evj - evl))) << 23);
          alpha[0] *= fv;
          alpha[1] *= fv;
        }
        evl = evj;
      };
      auto pack = [&](const float(&s)[BN / 2]) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
          pa[kk][0] = pack_rn<BF16>(s[8 * kk + 0], s[8 * kk + 1]);
          pa[kk][1] = pack_rn<BF16>(s[8 * kk + 2], s[8 * kk + 3]);
          pa[kk][2] = pack_rn<BF16>(s[8 * kk + 4], s[8 * kk + 5]);
          pa[kk][3] = pack_rn<BF16>(s[8 * kk + 6], s[8 * kk + 7]);
        }
      };

      /* S(j) is the last product that reads Q: after the last one, Q's buffer is released */
      mbar_wait(bQf, (uint32_t)wi & 1u);
      wi++;
      wg_forward_tiles<D, BN, KF, KE, VF, VE>(ntiles, o, full, release, qk, pv, softmax, pack, [&] { mbar_arrive(bQe); });
      it += ntiles;
    }

    const float2 sc = SCALED ? make_float2(ldexpf(a.scale, -eqi), ldexpf(a.out_scale, -evl)) : make_float2(a.scale, a.out_scale);
    wg_forward_store<D>(a, sc, o, m, l, wrow, nq, ib, is, ih, g, t, [&](int64_t at, float x0, float x1) {
      if (flags & 1) {
        const uint32_t w = a.out.dtype == PCU_BF16 ? (uint32_t)pcu_f32_to_bf16(x0) | ((uint32_t)pcu_f32_to_bf16(x1) << 16)
                                                   : (uint32_t)pcu_f32_to_f16(x0) | ((uint32_t)pcu_f32_to_f16(x1) << 16);
        *(uint32_t *)((uint16_t *)a.out.buf + at) = w;
      } else if (SCALED && (flags & 2)) {
        *(float2 *)((float *)a.out.buf + at) = make_float2(x0, x1);
      } else {
        pcu_store(a.out.buf, a.out.dtype, at, x0);
        pcu_store(a.out.buf, a.out.dtype, at + 1, x1);
      }
    });
  }
#else
  (void)tq; (void)tk; (void)tv; (void)a; (void)nqt; (void)nwork; (void)off; (void)flags;
#endif
}

} /* namespace pcu_wg */

/* The variants, per head dim in order of preference: (D, BN, ST). One list feeds the host
 * table and, under NVRTC, the explicit instantiations (common.cuh, "Under NVRTC"). */
#define WG_VARIANTS(X) \
  X(64, 128, 2)        \
  X(64, 64, 3)         \
  X(128, 128, 2)       \
  X(128, 64, 3)        \
  X(256, 64, 2)

#ifdef __CUDACC_RTC__
#define RTC_WG1(D, BN, ST, NC, BF, SC) \
  template __global__ void pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, ST, NC>, BF, SC>(PCU_TMAP, PCU_TMAP, PCU_TMAP, pcu_flash_args, int, int, int, int);
#define RTC_WGN(D, BN, ST, NC) RTC_WG1(D, BN, ST, NC, false, false) RTC_WG1(D, BN, ST, NC, true, false) RTC_WG1(D, BN, ST, NC, false, true)
#define RTC_WG(D, BN, ST) RTC_WGN(D, BN, ST, 1) RTC_WGN(D, BN, ST, 2)
WG_VARIANTS(RTC_WG)
#else /* host side */

namespace {

typedef void (*wg_kernel_fn)(const pcu_tmap, const pcu_tmap, const pcu_tmap, pcu_flash_args, int, int, int,
                             int);

struct wg_variant {
  int d, bn;
  size_t smem[2];       /* by consumers - 1 */
  wg_kernel_fn k[2][3]; /* by consumers - 1: f16, bf16, f16 scaled (PATTN_PRECISION_TF32) */
};

#define PCU_WG_KS(D, BN, ST, NC)                                                                                      \
  {pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, ST, NC>, false>, pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, ST, NC>, true>, \
   pcu_wg::k_flash_wgmma<pcu_wg::Cfg<D, BN, ST, NC>, false, true>}
#define PCU_WG_ROW(D, BN, ST)                                                                                     \
  {D, BN, {pcu_wg::Cfg<D, BN, ST, 1>::SMEM, pcu_wg::Cfg<D, BN, ST, 2>::SMEM},                               \
   {PCU_WG_KS(D, BN, ST, 1), PCU_WG_KS(D, BN, ST, 2)}},
const wg_variant wg_variants[] = {WG_VARIANTS(PCU_WG_ROW)};

} /* namespace */

#ifdef PCU_WGMMA_BUILT
/* The variant for a's head dim (a knob's pick first) whose shared memory fits, or -1. */
static int wg_pick(const pcu_flash_args *a, size_t smem_optin) {
  return pcu_pick_variant(wg_variants, (int)(sizeof wg_variants / sizeof wg_variants[0]), (int)a->q.d, "PATTN_CUDA_WG_CFG",
                          [&](const wg_variant &v) { return v.smem[1] <= smem_optin; });
}
/* Whether this path takes q, k and v of a's shape (their dtype aside). */
static bool wg_applies(const pcu_flash_args *a, int cc) {
  const int64_t d = a->q.d;
  return pcu_wgmma_usable(cc) && pcu_flash_tc_shape(a) && !a->mask.buf && a->k.d == d && a->v.d == d &&
         (d == 64 || d == 128 || d == 256);
}
/* Consumer warpgroups a block for a: one (64 query rows a block) where blocks of two would
 * leave at least half the multiprocessors idle, so that twice the blocks run, each with the
 * tensor cores to itself; else two. At b=1 h=12 n=512 d=128 (H200, run 90): bf16 12.7 against
 * 15.9 us a call. Splitting each block's kv tiles between two consumers on the same 64 rows
 * instead was no faster (13.2 us, run 92). */
static int wg_consumers(const pcu_flash_args *a) { return pcu_small_grid(a, 128) ? 1 : 2; }
/* The launch of variant i with nc consumers for 16-bit q, k, v. */
static int wg_launch(cudaStream_t s, const pcu_flash_args *a, int i, int nc) {
  const wg_variant *v = &wg_variants[i];
  const int64_t nq = a->q.n, nk = a->k.n, bm = 64 * nc;
  pcu_tmap tq, tk, tv;
  if (!pcu_make_tmap(&tq, a->q, (int)bm) || !pcu_make_tmap(&tk, a->k, v->bn) || !pcu_make_tmap(&tv, a->v, v->bn))
    return (int)cudaErrorNotSupported;
  wg_kernel_fn kernel = v->k[nc - 1][a->f16_exp ? 2 : a->q.dtype == PCU_BF16];
  const size_t smem = v->smem[nc - 1];
  const unsigned threads = 128u * (unsigned)(nc + 1);
  const int64_t nqt = (nq + bm - 1) / bm, nwork = nqt * a->q.nh * a->q.ns * a->q.nb;
  if (nwork <= 0) return 0;
  if (nwork > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  /* Without causal masking every work item costs the same, and one block per multiprocessor
   * takes them in turn (the loads of the next overlap the end of the last: 1.08-1.27x at n =
   * 512, H200). Causal items differ up to nqt-fold: a block each, longest first, lets the
   * hardware balance them (taken in turn they were 0.56-0.73x at n >= 8192 with 16 heads). */
  const int64_t blocks = a->causal || a->num_sms <= 0 || nwork < a->num_sms ? nwork : a->num_sms;
  cudaError_t e = pcu_prepare_smem((const void *)kernel, smem);
  if (e != cudaSuccess) return (int)e;
  const int64_t off = pcu_clamp_causal(a->causal_offset, nq, nk);
  /* out's stores: 16-bit pairs (1), f32 pairs (2), else element by element */
  const int vout = (a->out.dtype == PCU_F16 || a->out.dtype == PCU_BF16) && pcu_rows_aligned(a->out, 2, 4) ? 1
                   : a->out.dtype == PCU_F32 && pcu_rows_aligned(a->out, 4, 8)                               ? 2
                                                                                                               : 0;
  /* TF32's f16 copies: after the copies' kernel (pcu_f16_tiles) as a programmatic dependent;
   * its blocks start once every block of the copies has, and wait in the kernel
   * (griddepcontrol.wait) for their writes */
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)blocks);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = at;
  cfg.numAttrs = a->f16_exp ? 1 : 0;
  return (int)cudaLaunchKernelEx(&cfg, kernel, tq, tk, tv, *a, (int)nqt, (int)nwork, (int)off, vout);
}
#endif

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash_mma.cu).
 * Built only where the module carries sm_90a code (PCU_WGMMA_BUILT, set by meson.build), and
 * run only on compute capability 9.0, the one that sm_90a code runs on.
 * PATTN_CUDA_WGMMA=0 (temporary, for benchmarks) turns this path off; PATTN_CUDA_WG_CFG=k
 * starts the search at the k-th entry of the head dim's list. */
extern "C" int pcu_flash_wgmma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin) {
#ifndef PCU_WGMMA_BUILT
  (void)s; (void)a; (void)cc; (void)smem_optin; (void)wg_variants;
  return (int)cudaErrorNotSupported;
#else
  if (!wg_applies(a, cc) || !pcu_flash_tc_args(a)) return (int)cudaErrorNotSupported;
  const int i = wg_pick(a, smem_optin);
  return i < 0 ? (int)cudaErrorNotSupported : wg_launch(s, a, i, wg_consumers(a));
#endif
}

/* ---- PATTN_PRECISION_TF32 through f16 ----
 * f16 keeps 11 significant bits, as many as tf32 (rounded to nearest, as SPEC.md's TF32 row
 * assumes), but only 5 exponent bits. So f32 q, k and v are copied to f16 (pcu_f16_tiles), each
 * tile scaled by the power of two that brings its largest finite magnitude into [2^14, 2^15):
 * Q by the kernel's query tiles (BM rows), K and V by its kv tiles (BN rows). The kernel's
 * SCALED instantiation undoes the factors: Q's in the softmax scale, K's per tile in the
 * softmax (wg_softmax's KF), V's in o's rescale between tiles and at the store. Every product
 * then rounds as TF32 does, except values below 2^-28 of their tile's largest magnitude, which
 * become f16 subnormals (an absolute error of at most 2^-40 of that magnitude). o is kept in
 * the units of the latest V tile, so V tiles of one head more than about 2^80 apart in
 * magnitude would overflow it (inf, not a finite wrong value). The copies cost a workspace of
 * 2 bytes an element of q, k and v and 2 bytes a tile, taken TF32_F16_CHUNK bytes' worth of
 * batches at a time (at least one batch). */
#define TF32_F16_CHUNK ((int64_t)256 << 20)

#ifdef PCU_WGMMA_BUILT
/* The tiles of rows rows of v. */
static int64_t view_tiles(const pcu_view &v, int rows) { return v.nb * v.ns * v.nh * ((v.n + rows - 1) / rows); }
/* View v restricted to batches b0 .. b0 + nb - 1. */
static pcu_view batches(pcu_view v, int64_t b0, int64_t nb) {
  v.offset += b0 * v.sb;
  v.nb = nb;
  return v;
}
/* Bytes of the exponents of q's tiles of bm rows and k's and v's tiles of bn rows
 * (pcu_f16_tiles' layout), rounded up to 256. */
static int64_t tf32_f16_ex_bytes(const pcu_view &q, const pcu_view &k, int bm, int bn) {
  const int64_t n = (view_tiles(q, bm) + 1) / 2 * 2 + 2 * view_tiles(k, bn);
  return (n * (int64_t)sizeof(int16_t) + 255) / 256 * 256;
}
/* Workspace bytes of the copies of nb batches of a with query tiles of bm rows and kv tiles
 * of bn rows: the exponents, then q, k, v. */
static int64_t tf32_f16_bytes(const pcu_flash_args *a, int64_t nb, int bm, int bn) {
  const pcu_view q = batches(a->q, 0, nb), k = batches(a->k, 0, nb), v = batches(a->v, 0, nb);
  return tf32_f16_ex_bytes(q, k, bm, bn) + 2 * (pcu_view_count(q) + pcu_view_count(k) + pcu_view_count(v));
}
#endif

extern "C" size_t pcu_flash_wgmma_tf32_plan(const pcu_flash_args *a, int cc, size_t smem_optin, int *variant, int64_t *nb_chunk) {
#ifndef PCU_WGMMA_BUILT
  (void)a; (void)cc; (void)smem_optin; (void)variant; (void)nb_chunk;
  return 0;
#else
  if (!wg_applies(a, cc) || a->q.dtype != PCU_F32 || a->k.dtype != PCU_F32 || a->v.dtype != PCU_F32 ||
      !pcu_rows_aligned(a->q, 4, 16) || !pcu_rows_aligned(a->k, 4, 16) || !pcu_rows_aligned(a->v, 4, 16))
    return 0;
  const int i = wg_pick(a, smem_optin);
  if (i < 0) return 0;
  /* the consumers (and so the query tiles) are those of the whole call, batch chunks or not */
  const int bm = 64 * wg_consumers(a), bn = wg_variants[i].bn;
  const int64_t per = tf32_f16_bytes(a, 1, bm, bn);
  if (per <= 0 || a->q.nb <= 0) return 0;
  int64_t nb = TF32_F16_CHUNK / per;
  nb = nb < 1 ? 1 : nb > a->q.nb ? a->q.nb : nb;
  *variant = i;
  *nb_chunk = nb;
  return (size_t)tf32_f16_bytes(a, nb, bm, bn);
#endif
}

extern "C" int pcu_flash_wgmma_tf32(cudaStream_t s, const pcu_flash_args *a, int variant, void *ws, int64_t nb_chunk) {
#ifndef PCU_WGMMA_BUILT
  (void)s; (void)a; (void)variant; (void)ws; (void)nb_chunk;
  return (int)cudaErrorNotSupported;
#else
  const int i = variant;
  if (i < 0 || i >= (int)(sizeof wg_variants / sizeof wg_variants[0]) || nb_chunk < 1) return (int)cudaErrorNotSupported;
  const int nc = wg_consumers(a), bn = wg_variants[i].bn, rows[3] = {64 * nc, bn, bn};
  for (int64_t b0 = 0; b0 < a->q.nb; b0 += nb_chunk) {
    const int64_t nb = a->q.nb - b0 < nb_chunk ? a->q.nb - b0 : nb_chunk;
    pcu_flash_args f = *a;
    const pcu_view src[3] = {batches(a->q, b0, nb), batches(a->k, b0, nb), batches(a->v, b0, nb)};
    int16_t *const exps = (int16_t *)ws;
    uint16_t *const q16 = (uint16_t *)((char *)ws + tf32_f16_ex_bytes(src[0], src[1], rows[0], bn)), *const k16 = q16 + pcu_view_count(src[0]);
    uint16_t *const dst[3] = {q16, k16, k16 + pcu_view_count(src[1])};
    f.q = pcu_dense_view(dst[0], PCU_F16, src[0], src[0].d);
    f.k = pcu_dense_view(dst[1], PCU_F16, src[1], src[1].d);
    f.v = pcu_dense_view(dst[2], PCU_F16, src[2], src[2].d);
    f.out = batches(a->out, b0, nb);
    if (f.lse.buf) f.lse = batches(a->lse, b0, nb);
    f.f16_exp = exps;
    int e = pcu_f16_tiles(s, src, dst, rows, exps, a->num_sms);
    if (e == 0) e = wg_launch(s, &f, i, nc);
    if (e != 0) return e;
  }
  return 0;
#endif
}
#endif /* !__CUDACC_RTC__ */
