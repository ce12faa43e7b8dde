/* wgmma (sm_90a) building blocks of the Hopper flash forward and backward (flash_wgmma.cu,
 * flash_wgmma_bwd.cu): the warpgroup-wide m64nNk16 products with f32 accumulators, A from
 * shared memory (descriptor) or from registers, B from shared memory; the fences and barriers
 * that order them; the mbarriers, TMA loads and register reallocation of their warp
 * specialisation; on the host, the tensor maps of the TMA loads. The device code compiles only
 * where __CUDA_ARCH_FEAT_SM90_ALL is defined (an sm_90a or compute_90a target), the host code
 * only where the module has such code (PCU_WGMMA_BUILT).
 *
 * Shared-memory operands use the 128-byte swizzle layout that TMA's SWIZZLE_128B writes: a
 * box of 64 16-bit columns is stored as rows of 128 bytes, and 8 rows form a 1024-byte atom
 * in which the 16-byte chunk c of row r sits at chunk c ^ r. A descriptor (PTX ISA, "Matrix
 * Descriptor Format") holds the start address, the leading-dimension byte offset (LBO) and the
 * stride-dimension byte offset (SBO), each >> 4, and the swizzle mode. Accumulator and
 * A-register fragments, per warp w of the warpgroup (g = lane/4, t = lane%4): rows 16w + g
 * and 16w + g + 8, the same as mma.m16n8k16's, repeated over N/8 column blocks: d[4j + 0,1] =
 * row g, columns 8j + 2t, +1; d[4j + 2,3] = row g + 8. */
#ifndef PCU_WGMMA_CUH
#define PCU_WGMMA_CUH

#include <stdint.h>

#include "mma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PCU_WGMMA_DEVICE 1
#else
#define PCU_WGMMA_DEVICE 0
#endif

/* A tensor map as a kernel parameter (a CUtensorMap, made on the host): TMA reads it in place
 * (__grid_constant__, compute_70 and newer; the kernels are empty below sm_90a anyway). */
struct __align__(64) pcu_tmap {
  unsigned long long w[16];
};
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#define PCU_TMAP const pcu_tmap
#else
#define PCU_TMAP const __grid_constant__ pcu_tmap
#endif

#if PCU_WGMMA_DEVICE
namespace pcu_wgmma_ops {

/* Descriptor of an operand in the 128-byte swizzle layout at shared address addr (its atoms
 * 1024-byte aligned). K-major: SBO = 1024 (next 8 rows), LBO unused, and a k16 step adds 32
 * bytes inside the 128-byte row; MN-major: LBO = bytes to the next 64 MN elements, SBO = 1024
 * (next 8 K rows). Adding n to the descriptor moves its start by 16n bytes. */
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFFu) >> 4) | (uint64_t)(lbo >> 4) << 16 | (uint64_t)(sbo >> 4) << 32 | (uint64_t)1 << 62;
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
/* Makes this thread's generic-proxy writes to shared memory (st.shared, stmatrix) visible to
 * the async proxy that wgmma reads operands through; then a barrier. */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
/* Named barrier `id` (0 is __syncthreads') of `count` threads. */
__device__ __forceinline__ void bar_sync(int id, int count) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory"); }
/* Four 8x8 16-bit matrices to shared memory: register i of the lanes holds matrix i in the
 * accumulator layout (lane l: row l/4, columns 2(l%4), +1); lane 8i + r gives the address of
 * row r of matrix i. */
__device__ __forceinline__ void stsm_x4(uint32_t addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]), "r"(r[2]),
               "r"(r[3])
               : "memory");
}
/* The same transposed: lane 8i + r gives the address of row r of the stored matrix i, which
 * is column r of the held one. */
__device__ __forceinline__ void stsm_x4_trans(uint32_t addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accumulator reads or writes across a fence or wait. */
template <int N> __device__ __forceinline__ void pin(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* ---- mbarriers, TMA and register reallocation (the warp-specialised forward) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* Makes the initialised barriers visible to the async proxy (TMA) before the block barrier. */
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
/* The producer's arrival that also announces `bytes` of TMA transfers to come. */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Until the phase of the given parity has completed (a fresh barrier counts as having
 * completed the phase of parity 1). */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile("{\n.reg .pred p;\nWAIT:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
               "@!p bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
/* A TMA load of one box of a 5-d tensor map (a __grid_constant__ parameter) to shared dst,
 * completing on barrier bar. */
__device__ __forceinline__ void tma_load5(uint32_t dst, const void *map, int c0, int c1, int c2, int c3, int c4, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n"
               ::"r"(dst), "l"((uint64_t)(uintptr_t)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4), "r"(bar) : "memory");
}
template <int R> __device__ __forceinline__ void regs_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R)); }
template <int R> __device__ __forceinline__ void regs_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R)); }

#define PCU_WG_D8(d, b) "+f"(d[(b) + 0]), "+f"(d[(b) + 1]), "+f"(d[(b) + 2]), "+f"(d[(b) + 3]), "+f"(d[(b) + 4]), \
  "+f"(d[(b) + 5]), "+f"(d[(b) + 6]), "+f"(d[(b) + 7])
#define PCU_WG_D16(d) PCU_WG_D8(d, 0), PCU_WG_D8(d, 8)
#define PCU_WG_D32(d, b) PCU_WG_D8(d, b), PCU_WG_D8(d, (b) + 8), PCU_WG_D8(d, (b) + 16), PCU_WG_D8(d, (b) + 24)
#define PCU_WG_D64(d) PCU_WG_D32(d, 0), PCU_WG_D32(d, 32)
#define PCU_WG_D128(d) PCU_WG_D64(d), PCU_WG_D32(d, 64), PCU_WG_D32(d, 96)
#define PCU_WG_ACC16 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15" "}"
#define PCU_WG_ACC32 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" "}"
#define PCU_WG_ACC64 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, " \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, " \
  "%56, %57, %58, %59, %60, %61, %62, %63" "}"
#define PCU_WG_ACC128 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, " \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, " \
  "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, " \
  "%74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, " \
  "%92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, " \
  "%108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, " \
  "%123, %124, %125, %126, %127" "}"

/* d (64 x N, f32) = (acc ? d : 0) + A (64 x 16 at descriptor da, K-major) * B (16 x N at
 * descriptor db, K-major). */
template <int N, bool BF16> __device__ __forceinline__ void mma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* The same with B (16 x N at descriptor db) MN-major. */
template <int N, bool BF16> __device__ __forceinline__ void mma_ss_mn(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* The same with A and B both MN-major. */
template <int N, bool BF16> __device__ __forceinline__ void mma_ss_tt(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* d (64 x N, f32) = (acc ? d : 0) + A (64 x 16 in registers a) * B (16 x N at descriptor db,
 * MN-major). */
template <int N, bool BF16>
__device__ __forceinline__ void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db, int acc = 1);

/* One specialization per (N, type): the accumulator operands %0 .. %(N/2-1) (ACC, OUT), then
 * A (descriptor, or four registers), B's descriptor and the scale-d flag at the numbers given. */
#define PCU_WG_SS_AS(FN, TA, TB, N, BF, TY, ACC, OUT, IA, IB, IP)                                                   \
  template <> __device__ __forceinline__ void FN<N, BF>(float (&d)[N / 2], uint64_t da, uint64_t db, int acc) {   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" IP ", 0;\n"                                            \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " ACC ", %" IA ", %" IB          \
                 ", p, 1, 1, " #TA ", " #TB ";\n}\n"                                                                  \
                 : OUT(d) : "l"(da), "l"(db), "r"(acc));                                                      \
  }
#define PCU_WG_SS(...) PCU_WG_SS_AS(mma_ss, 0, 0, __VA_ARGS__)
#define PCU_WG_RS(N, BF, TY, ACC, OUT, IA, IB, IP)                                                                  \
  template <> __device__ __forceinline__ void mma_rs<N, BF>(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db, int acc) { \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" IP ", 0;\n"                                                 \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " ACC ", " IA ", %" IB               \
                 ", p, 1, 1, 1;\n}\n"                                                                                \
                 : OUT(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc));                        \
  }
#define PCU_WG_OUT32(d) PCU_WG_D32(d, 0)
PCU_WG_SS(32, true, "bf16", PCU_WG_ACC16, PCU_WG_D16, "16", "17", "18")
PCU_WG_SS(32, false, "f16", PCU_WG_ACC16, PCU_WG_D16, "16", "17", "18")
PCU_WG_SS(64, true, "bf16", PCU_WG_ACC32, PCU_WG_OUT32, "32", "33", "34")
PCU_WG_SS(64, false, "f16", PCU_WG_ACC32, PCU_WG_OUT32, "32", "33", "34")
PCU_WG_SS(128, true, "bf16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_SS(128, false, "f16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_SS_AS(mma_ss_mn, 0, 1, 64, true, "bf16", PCU_WG_ACC32, PCU_WG_OUT32, "32", "33", "34")
PCU_WG_SS_AS(mma_ss_mn, 0, 1, 64, false, "f16", PCU_WG_ACC32, PCU_WG_OUT32, "32", "33", "34")
PCU_WG_SS_AS(mma_ss_mn, 0, 1, 128, true, "bf16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_SS_AS(mma_ss_mn, 0, 1, 128, false, "f16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_SS_AS(mma_ss_tt, 1, 1, 128, true, "bf16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_SS_AS(mma_ss_tt, 1, 1, 128, false, "f16", PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_RS(64, true, "bf16", PCU_WG_ACC32, PCU_WG_OUT32, "{%32, %33, %34, %35}", "36", "37")
PCU_WG_RS(64, false, "f16", PCU_WG_ACC32, PCU_WG_OUT32, "{%32, %33, %34, %35}", "36", "37")
PCU_WG_RS(128, true, "bf16", PCU_WG_ACC64, PCU_WG_D64, "{%64, %65, %66, %67}", "68", "69")
PCU_WG_RS(128, false, "f16", PCU_WG_ACC64, PCU_WG_D64, "{%64, %65, %66, %67}", "68", "69")
PCU_WG_RS(256, true, "bf16", PCU_WG_ACC128, PCU_WG_D128, "{%128, %129, %130, %131}", "132", "133")
PCU_WG_RS(256, false, "f16", PCU_WG_ACC128, PCU_WG_D128, "{%128, %129, %130, %131}", "132", "133")

/* tf32 (f32 bit patterns, of which the tensor cores read the top 19 bits): d (64 x N, f32)
 * = (acc ? d : 0) + A (64 x 8, K-major, at da) * B (8 x N, K-major, at db); and d += A (64 x 8
 * in registers: a0 = row g, column t; a1 = row g + 8, column t; a2, a3 the same at column
 * t + 4) * B. tf32 operands in shared memory are K-major only (no transpose). */
template <int N> __device__ __forceinline__ void mma_tf32_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
template <int N> __device__ __forceinline__ void mma_tf32_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db);
#define PCU_WG_TF_SS(N, ACC, OUT, IA, IB, IP)                                                                  \
  template <> __device__ __forceinline__ void mma_tf32_ss<N>(float (&d)[N / 2], uint64_t da, uint64_t db, int acc) { \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" IP ", 0;\n"                                            \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k8.f32.tf32.tf32 " ACC ", %" IA ", %" IB ", p, 1, 1;\n}\n" \
                 : OUT(d) : "l"(da), "l"(db), "r"(acc));                                                      \
  }
#define PCU_WG_TF_RS(N, ACC, OUT, IA, IB, IP)                                                                             \
  template <> __device__ __forceinline__ void mma_tf32_rs<N>(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db) {    \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" IP ", 0;\n"                                                       \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k8.f32.tf32.tf32 " ACC ", " IA ", %" IB ", p, 1, 1;\n}\n"           \
                 : OUT(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));                                 \
  }
PCU_WG_TF_SS(64, PCU_WG_ACC32, PCU_WG_OUT32, "32", "33", "34")
PCU_WG_TF_SS(128, PCU_WG_ACC64, PCU_WG_D64, "64", "65", "66")
PCU_WG_TF_RS(64, PCU_WG_ACC32, PCU_WG_OUT32, "{%32, %33, %34, %35}", "36", "37")
PCU_WG_TF_RS(128, PCU_WG_ACC64, PCU_WG_D64, "{%64, %65, %66, %67}", "68", "69")

/* ---- the forward kernels' shared frame (flash_wgmma.cu, flash_wgmma_f32.cu) ---- */
/* The kv tiles of BN keys that a work item of BM query rows from q0 sees: all of them, or
 * causally up to the last row's last visible key (j <= i + off). */
template <int BM, int BN>
__device__ __forceinline__ int wg_kv_tiles(int q0, int nq, int nk, int off, bool causal) {
  const int kend = causal ? min(nk, max(0, min(q0 + BM, nq) + off)) : nk;
  return (kend + BN - 1) / BN;
}
/* The four barriers of each of ST K/V stages at b0 + 8 (kind ST + st), kinds K full, K empty,
 * V full, V empty: full ones completed by `fills` arrivals, empty ones by `readers`. */
template <int ST> __device__ __forceinline__ void wg_kv_bars_init(uint32_t b0, int fills, int readers) {
  for (int st = 0; st < ST; st++) {
    mbar_init(b0 + 8u * (uint32_t)(0 * ST + st), fills);
    mbar_init(b0 + 8u * (uint32_t)(1 * ST + st), readers);
    mbar_init(b0 + 8u * (uint32_t)(2 * ST + st), fills);
    mbar_init(b0 + 8u * (uint32_t)(3 * ST + st), readers);
  }
}
/* A work item's start: o = 0, running max -inf, running sum 0. */
template <int N> __device__ __forceinline__ void wg_item_start(float (&o)[N], float (&m)[2], float (&l)[2]) {
  m[0] = m[1] = -PCU_INF;
  l[0] = l[1] = 0.0f;
#pragma unroll
  for (int i = 0; i < N; i++) o[i] = 0.0f;
}

/* The online softmax of the forward kernels (flash_wgmma.cu, flash_wgmma_f32.cu) on one kv
 * tile of BN keys from k0: s is the tile's S = Q K^T accumulator (rows wrow + g and + 8 of the
 * warp). Where some key of the tile is past nk or causally hidden from a row (j > i + off), its
 * scores become -inf; then per row h: the new max m[h], alpha[h] = 2^((m_old - m_new) u) for
 * the output, s becomes P = 2^(s u - m u) and l[h] = l[h] alpha[h] + this lane's sum of P.
 * u = scale * log2 e; a row with nothing visible yet keeps base 0 (P = 0, never NaN).
 * EXACT (f32 accuracy): alpha from two equally rounded products, so that it is exactly 1
 * where the max holds. With one fma it is 2^(rounding error of m u), the same factor off 1 on
 * every tile of a row, which reweights the tiles by about an ulp each: 5e-6 relative at 16k
 * keys in f32 (run 68), nothing at bf16 or tf32 accuracy, where the fma saves an instruction
 * (3-5% of the bf16 forward at d = 64, run 69).
 * KF (keys scaled per tile, flash_wgmma.cu's TF32 copies): the scores are s f, f > 0 a power of
 * two; m stays in those units. */
template <int BN, bool EXACT = false, bool KF = false>
__device__ __forceinline__ void wg_softmax(float (&s)[BN / 2], float (&m)[2], float (&l)[2], float (&alpha)[2], int k0, int nk,
                                           int wrow, int off, bool causal, float u, int g, int t, float f = 1.0f) {
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
  const float uf = KF ? u * f : u;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    float mx = KF ? -PCU_INF : m[h];
#pragma unroll
    for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(s[4 * n + 2 * h], s[4 * n + 2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    if (KF) mx = fmaxf(m[h], mx * f); /* f > 0: the tile's max in m's units */
    float mu;
    if (EXACT) { /* both products rounded alike: where the max holds, alpha is exactly 1 */
      mu = mx == -PCU_INF ? 0.0f : __fmul_rn(mx, u);
      alpha[h] = pcu_mma_ops::ex2(__fmul_rn(m[h], u) - mu);
    } else {
      mu = mx == -PCU_INF ? 0.0f : mx * u;
      alpha[h] = pcu_mma_ops::ex2(fmaf(m[h], u, -mu));
    }
    m[h] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < BN / 8; n++) {
      const float p0 = pcu_mma_ops::ex2(fmaf(s[4 * n + 2 * h], uf, -mu)), p1 = pcu_mma_ops::ex2(fmaf(s[4 * n + 2 * h + 1], uf, -mu));
      s[4 * n + 2 * h] = p0;
      s[4 * n + 2 * h + 1] = p1;
      sum += p0 + p1;
    }
    l[h] = l[h] * alpha[h] + sum;
  }
}

/* The kv-tile loop of the forward kernels (flash_wgmma.cu, flash_wgmma_f32.cu) over ntiles
 * tiles: S(j) = Q K(j)^T and P(j-1) V(j-1) issued together, the softmax of S(j) while P(j-1) V
 * runs (FlashAttention-3's intra-warpgroup pipelining), then o rescaled and P(j) packed.
 * full(kind, j) waits for, release(kind, j) arrives on tile j's stage barrier of that kind
 * (KF, KE, VF, VE: K full, K empty, V full, V empty); q_done() runs once the last product that
 * reads Q has completed. Once P(j-1) V has completed, fold(alpha) brings o to tile j's row
 * maxima (o *= alpha, where P V accumulates in o itself), and last() ends the item after the
 * last P V. */
template <int D, int BN, int KF, int KE, int VF, int VE, class Full, class Release, class QK, class PV, class Softmax,
          class Pack, class QDone, class Fold, class Last>
__device__ __forceinline__ void wg_forward_tiles(int ntiles, float (&o)[D / 2], const Full &full, const Release &release,
                                                 const QK &qk, const PV &pv, const Softmax &softmax, const Pack &pack,
                                                 const QDone &q_done, const Fold &fold, const Last &last) {
  {
    float s[BN / 2], alpha[2];
    full(KF, 0);
    fence();
    qk(s, 0);
    wait<0>();
    pin(s);
    release(KE, 0);
    if (ntiles == 1) q_done();
    softmax(s, 0, alpha);
    pack(s);
  }
  for (int j = 1; j < ntiles; j++) {
    float s[BN / 2], alpha[2];
    full(KF, j);
    full(VF, j - 1);
    pin(o);
    fence();
    qk(s, j);
    pv(j - 1);
    wait<1>();
    pin(s);
    release(KE, j);
    if (j == ntiles - 1) q_done();
    softmax(s, j, alpha);
    wait<0>();
    pin(o);
    release(VE, j - 1);
    fold(alpha);
    pack(s);
  }
  full(VF, ntiles - 1);
  pin(o);
  fence();
  pv(ntiles - 1);
  wait<0>();
  pin(o);
  release(VE, ntiles - 1);
  last();
}
/* o *= alpha per row (rows g and g + 8 of the accumulator layout). */
template <int N> __device__ __forceinline__ void wg_rescale(float (&o)[N], const float (&alpha)[2]) {
#pragma unroll
  for (int n = 0; n < N / 4; n++) {
    o[4 * n] *= alpha[0];
    o[4 * n + 1] *= alpha[0];
    o[4 * n + 2] *= alpha[1];
    o[4 * n + 3] *= alpha[1];
  }
}
/* The loop where P V accumulates in o itself. */
template <int D, int BN, int KF, int KE, int VF, int VE, class Full, class Release, class QK, class PV, class Softmax,
          class Pack, class QDone>
__device__ __forceinline__ void wg_forward_tiles(int ntiles, float (&o)[D / 2], const Full &full, const Release &release,
                                                 const QK &qk, const PV &pv, const Softmax &softmax, const Pack &pack,
                                                 const QDone &q_done) {
  wg_forward_tiles<D, BN, KF, KE, VF, VE>(ntiles, o, full, release, qk, pv, softmax, pack, q_done,
                                          [&](const float(&alpha)[2]) { wg_rescale<D / 2>(o, alpha); }, [] {});
}

/* The end of a forward work item: rows wrow + g and + 8 of the warp (those < nq) get
 * out = out_scale * o / l through store(element offset, x0, x1) for each pair of columns, and
 * lse = ln(sum of exp(scores)) (m in score units), -inf where no key was visible; sc: the
 * softmax scale and out_scale (a's own, or with scaled copies' factors undone). */
template <int D, class Store>
__device__ __forceinline__ void wg_forward_store(const pcu_flash_args &a, float2 sc, const float (&o)[D / 2], const float (&m)[2],
                                                 const float (&l)[2], int wrow, int nq, int ib, int is, int ih, int g, int t,
                                                 const Store &store) {
#pragma unroll
  for (int h = 0; h < 2; h++) {
    float lt = l[h];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const int i = wrow + g + 8 * h;
    if (i >= nq) continue;
    const float inv = lt > 0.0f ? sc.y / lt : 0.0f;
    const int64_t r = pcu_row(a.out, ib, is, ih, i);
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      const int col = n * 8 + 2 * t;
      const float x0 = o[4 * n + 2 * h] * inv, x1 = o[4 * n + 2 * h + 1] * inv;
      store(r + col, x0, x1);
    }
    if (a.lse.buf && t == 0)
      pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i), lt > 0.0f ? m[h] * sc.x + logf(lt) : -PCU_INF);
  }
}

} /* namespace pcu_wgmma_ops */
#endif /* PCU_WGMMA_DEVICE */

#if !defined(__CUDACC_RTC__) && defined(PCU_WGMMA_BUILT)
#include <stdlib.h>
#include <cuda.h>
#include <cudaTypedefs.h>

/* Whether the sm_90a kernels may run: on compute capability 9.0 (the one sm_90a code runs on),
 * unless PATTN_CUDA_WGMMA=0 (temporary, for benchmarks) turns them off. */
static inline bool pcu_wgmma_usable(int cc) {
  const char *env = getenv("PATTN_CUDA_WGMMA");
  return cc == 90 && !(env && env[0] == '0');
}

/* The driver's tensor-map encoder, looked up once through the runtime (no -lcuda); NULL where
 * the driver has none. */
static inline PFN_cuTensorMapEncodeTiled_v12000 pcu_tmap_encoder(void) {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void *p = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      p = NULL;
    }
    return (PFN_cuTensorMapEncodeTiled_v12000)p;
  }();
  return fn;
}

/* A 5-d tensor map of 16-bit view v, dims (d, n, nh, ns, nb) innermost first, boxes of 64
 * columns by `rows` rows in the 128-byte swizzle layout. A dim of extent 1 gets a stride that
 * follows from the inner ones (its own is never used, and may be anything). false where TMA
 * cannot describe the view (a start or a stride not a multiple of 16 bytes, a stride <= 0 or
 * beyond 2^40 bytes). */
static inline bool pcu_make_tmap(pcu_tmap *m, const pcu_view &v, int rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 enc = pcu_tmap_encoder();
  uint16_t *base = (uint16_t *)v.buf + v.offset;
  if (!enc || (uintptr_t)base % 16 != 0) return false;
  const cuuint64_t dims[5] = {(cuuint64_t)v.d, (cuuint64_t)v.n, (cuuint64_t)v.nh, (cuuint64_t)v.ns, (cuuint64_t)v.nb};
  const int64_t given[4] = {v.sn, v.sh, v.ss, v.sb};
  cuuint64_t strides[4];
  int64_t span = v.d; /* elements spanned by the dims inside the current one */
  for (int i = 0; i < 4; i++) {
    const int64_t st = dims[i + 1] == 1 ? span : given[i];
    if (st <= 0 || st % 8 != 0 || st >= ((int64_t)1 << 39)) return false;
    strides[i] = (cuuint64_t)st * 2;
    span = st * (int64_t)dims[i + 1];
  }
  const cuuint32_t box[5] = {64, (cuuint32_t)rows, 1, 1, 1}, es[5] = {1, 1, 1, 1, 1};
  return enc((CUtensorMap *)m, v.dtype == PCU_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 5,
             base, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}
#endif /* host, sm_90a built */

#endif /* PCU_WGMMA_CUH */

