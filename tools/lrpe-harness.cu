// Stand-alone timing of kernels_cu/lrpe.cu (bench/results/2026-11-21-h200/session3/): seed-002 1-d
// sizes (bf16, b=12, h=12, d=128), forward and backward, with and without the angle cache, plus
// the same access patterns with no arithmetic (rw2, r2w) and a device copy of the same bytes.
// Each launch follows a 256 MB pass on the stream (FLUSH: 0 none, 1 memset, 2 read-only kernel).
// Build on the GPU machine from the repository root, with any of lrpe.cu's compile-time knobs:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Ikernels_cu -Ibackends/cuda -Iinclude -Isrc -DFLUSH=2 \
//        [-DTARGET_THREADS='(1<<17)' -DBU=4 -DFWD_THREADS=256 ...] tools/lrpe-harness.cu -o lrpe-harness
//   ./lrpe-harness TAG [n]      (n: one sequence length instead of 256 .. 32768)
//   ./lrpe-harness TAG check    (the kernels against a host reference on small odd cases; exit 1 on a failure)
#include "lrpe.cu"
#include <cstdio>
#include <vector>
#include <algorithm>
#include <cmath>
#include <cstring>
#define CK(x) do { cudaError_t e_ = (x); if (e_) { printf("CUDA %s at %d\n", cudaGetErrorString(e_), __LINE__); return 1; } } while (0)

/* ---- check: every dtype, ndims 1-3, extra tokens, e < V, unaligned views, the angle cache
 * (compared bit for bit: one f32 product), n > 65535, angles past 1e5 rad, a grid big enough
 * for one batch chunk. Host reference in double from the f32 angle (SPEC.md section 6). ---- */
struct lcase { int dt, tdt; int64_t b, h, d, m, shape[3], extra, oin, oout, oc; bool cache; float ts; };
static uint16_t h_bf16(float f) {
  uint32_t u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float h_load(const std::vector<char> &v, int dt, size_t i) {
  if (dt == PCU_F32) { float f; memcpy(&f, v.data() + 4 * i, 4); return f; }
  uint16_t h; memcpy(&h, v.data() + 2 * i, 2);
  if (dt == PCU_F16) return __half2float(__ushort_as_half(h));
  uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}
static void h_store(std::vector<char> &v, int dt, size_t i, float f) {
  if (dt == PCU_F32) { memcpy(v.data() + 4 * i, &f, 4); return; }
  uint16_t h = dt == PCU_F16 ? __half_as_ushort(__float2half_rn(f)) : h_bf16(f);
  memcpy(v.data() + 2 * i, &h, 2);
}
static uint32_t g_rng = 12345u;
static float urand() { g_rng = g_rng * 1664525u + 1013904223u; return (float)(g_rng >> 8) / 16777216.0f * 2.0f - 1.0f; }
static int check_case(int ci, const lcase &c, cudaStream_t s) {
  int64_t N = 1, e = 1; for (int i = 0; i < c.m; i++) N *= c.shape[i];
  while (e < (c.d + c.m - 1) / c.m) e <<= 1;
  const int64_t n = N + c.extra, nx = c.b * c.h * n * c.d, sz = c.dt == PCU_F32 ? 4 : 2, tsz = c.tdt == PCU_F32 ? 4 : 2;
  std::vector<char> hx((c.oin + nx) * sz), ho((c.oout + 2 * nx) * sz), hth(c.h * e * tsz), hc((c.oc + c.h * n * c.d) * 4, 0);
  for (int64_t i = 0; i < nx; i++) h_store(hx, c.dt, c.oin + i, urand());
  for (int64_t i = 0; i < c.h * e; i++) h_store(hth, c.tdt, i, c.ts * powf(10000.f, -(float)(i % e) / e) * (1.0f + 0.1f * urand()));
  void *dx, *dout, *dth, *dc = nullptr;
  CK(cudaMalloc(&dx, hx.size())); CK(cudaMalloc(&dout, ho.size())); CK(cudaMalloc(&dth, hth.size()));
  if (c.cache) CK(cudaMalloc(&dc, hc.size()));
  CK(cudaMemcpy(dx, hx.data(), hx.size(), cudaMemcpyHostToDevice)); CK(cudaMemcpy(dth, hth.data(), hth.size(), cudaMemcpyHostToDevice));
  if (c.cache) CK(cudaMemset(dc, 0xff, hc.size()));
  pcu_lrpe_args a; memset(&a, 0, sizeof a);
  a.theta = pcu_mat{dth, c.tdt, 0}; a.cache = pcu_mat{dc, PCU_F32, c.oc};
  a.b = c.b; a.h = c.h; a.n = n; a.d = c.d; a.e = e; a.ndims = (int)c.m; a.extra_tokens = c.extra;
  for (int i = 0; i < c.m; i++) a.shape[i] = c.shape[i];
  a.in = pcu_mat{dx, c.dt, c.oin}; a.out = pcu_mat{dout, c.dt, c.oout};
  CK((cudaError_t)pcu_lrpe_forward(s, &a)); CK(cudaStreamSynchronize(s));
  CK(cudaMemcpy(ho.data(), dout, ho.size(), cudaMemcpyDeviceToHost));
  if (c.cache) CK(cudaMemcpy(hc.data(), dc, hc.size(), cudaMemcpyDeviceToHost));
  std::vector<double> cs(c.h * n * c.d), sn(c.h * n * c.d);
  int64_t badc = 0;
  for (int64_t hh = 0; hh < c.h; hh++)
    for (int64_t t = 0; t < n; t++)
      for (int64_t k = 0; k < c.d; k++) {
        float an = 0.0f;
        if (t >= c.extra) {
          int64_t cc = t - c.extra, p[3] = {0, 0, 0};
          for (int i = (int)c.m - 1; i >= 0; i--) { p[i] = cc % c.shape[i]; cc /= c.shape[i]; }
          volatile float pf = (float)p[k / e], th = h_load(hth, c.tdt, hh * e + k % e);
          an = pf * th;
        }
        const int64_t ai = (hh * n + t) * c.d + k;
        cs[ai] = cos((double)an); sn[ai] = sin((double)an);
        if (c.cache) { float g; memcpy(&g, hc.data() + 4 * (c.oc + ai), 4); badc += memcmp(&g, &an, 4) != 0; }
      }
  const double R = c.dt == PCU_F32 ? 4e-6 : c.dt == PCU_F16 ? 1e-3 : 8e-3, A = c.dt == PCU_F32 ? 4e-6 : 1e-3;
  double ef = 0, eb = 0; int64_t badf = 0, badb = 0;
  for (int64_t r = 0; r < c.b * c.h * n; r++)
    for (int64_t k = 0; k < c.d; k++) {
      const int64_t ai = (r % (c.h * n)) * c.d + k;
      const double x = h_load(hx, c.dt, c.oin + r * c.d + k), rc = x * cs[ai], rs = x * sn[ai];
      const double gc = h_load(ho, c.dt, c.oout + r * 2 * c.d + k), gs = h_load(ho, c.dt, c.oout + r * 2 * c.d + c.d + k);
      const double d1 = std::max(fabs(gc - rc), fabs(gs - rs));
      ef = std::max(ef, d1); badf += !(d1 <= R * std::max(fabs(rc), fabs(rs)) + A);
    }
  /* backward: a fresh dout in out's place, dx into x's (with the cache the forward wrote) */
  for (int64_t i = 0; i < 2 * nx; i++) h_store(ho, c.dt, c.oout + i, urand());
  CK(cudaMemcpy(dout, ho.data(), ho.size(), cudaMemcpyHostToDevice)); CK(cudaMemset(dx, 0xff, hx.size()));
  a.in = pcu_mat{dout, c.dt, c.oout}; a.out = pcu_mat{dx, c.dt, c.oin};
  CK((cudaError_t)pcu_lrpe_backward(s, &a)); CK(cudaStreamSynchronize(s));
  CK(cudaMemcpy(hx.data(), dx, hx.size(), cudaMemcpyDeviceToHost));
  for (int64_t r = 0; r < c.b * c.h * n; r++)
    for (int64_t k = 0; k < c.d; k++) {
      const int64_t ai = (r % (c.h * n)) * c.d + k;
      const double gc = h_load(ho, c.dt, c.oout + r * 2 * c.d + k), gs = h_load(ho, c.dt, c.oout + r * 2 * c.d + c.d + k);
      const double ref = gc * cs[ai] + gs * sn[ai], got = h_load(hx, c.dt, c.oin + r * c.d + k), d1 = fabs(got - ref);
      eb = std::max(eb, d1); badb += !(d1 <= R * fabs(ref) + A);
    }
  cudaFree(dx); cudaFree(dout); cudaFree(dth); if (dc) cudaFree(dc);
  const bool ok = !badf && !badb && !badc;
  printf("check %d: dt=%d theta=%d b=%lld h=%lld n=%lld d=%lld e=%lld m=%lld extra=%lld off=%lld/%lld/%lld cache=%d: "
         "fwd max err %.2e (%lld bad), bwd %.2e (%lld bad), cache %lld not bit-equal: %s\n", ci, c.dt, c.tdt,
         (long long)c.b, (long long)c.h, (long long)n, (long long)c.d, (long long)e, (long long)c.m, (long long)c.extra,
         (long long)c.oin, (long long)c.oout, (long long)c.oc, (int)c.cache, ef, (long long)badf, eb, (long long)badb,
         (long long)badc, ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}
static int check(const char *tag) {
  const lcase cs[] = {
      {PCU_F32, PCU_F32, 3, 2, 24, 1, {32}, 5, 0, 0, 0, true, 1.f},         /* V=8, 1-d, extra tokens */
      {PCU_BF16, PCU_F32, 5, 3, 128, 2, {4, 8}, 3, 0, 0, 0, true, 1.f},    /* 2-d, e=64, 3 chunks */
      {PCU_F16, PCU_BF16, 4, 2, 20, 3, {2, 3, 5}, 0, 0, 0, 0, true, 1.f},  /* V=4 vector, 3-d, bf16 theta */
      {PCU_BF16, PCU_F32, 3, 2, 6, 2, {3, 4}, 2, 3, 5, 1, true, 1.f},      /* unaligned: element-wise, tail, cache offset */
      {PCU_F32, PCU_F32, 2, 3, 8, 3, {2, 2, 3}, 1, 0, 0, 0, true, 1.f},    /* e=4 < V=8 */
      {PCU_F16, PCU_F16, 2, 2, 4, 3, {3, 2, 2}, 0, 0, 0, 0, false, 1.f},   /* e=2 < V=4, no cache */
      {PCU_F32, PCU_F32, 1, 1, 8, 1, {70000}, 0, 0, 0, 0, true, 1.f},      /* n > 65535 */
      {PCU_BF16, PCU_F32, 9, 2, 128, 1, {8192}, 0, 0, 0, 0, true, 20.f},   /* one chunk, 3 passes of BU, angles to 1.6e5 */
  };
  cudaStream_t s; CK(cudaStreamCreate(&s));
  int bad = 0;
  for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++) bad += check_case(i, cs[i], s);
  printf("%s check: %d of %d cases failed\n", tag, bad, (int)(sizeof cs / sizeof cs[0]));
  return bad ? 1 : 0;
}
static void *g_flush; static size_t g_flush_bytes = 256u << 20;
#ifndef FLUSH
#define FLUSH 1 /* 0: none, 1: memset (leaves dirty lines in L2), 2: read-only kernel */
#endif
__global__ void k_readflush(const uint4 *p, size_t n, unsigned *sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) acc ^= p[i].x ^ p[i].w;
  if (acc == 0x12345678u) *sink = acc;
}
static unsigned *g_sink;
/* LRPE's access pattern with no arithmetic: fwd reads x (16 B per thread) and writes it to
 * both halves of out's row; bwd reads both halves and writes their sum */
__global__ void k_rw2(const uint4 *x, uint4 *o, size_t n16, int rowq) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += (size_t)gridDim.x * blockDim.x) {
    size_t r = i / rowq, q = i % rowq; uint4 v = x[i];
    __stcs(o + r * 2 * rowq + q, v); __stcs(o + r * 2 * rowq + rowq + q, v);
  }
}
__global__ void k_r2w(const uint4 *o, uint4 *x, size_t n16, int rowq) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += (size_t)gridDim.x * blockDim.x) {
    size_t r = i / rowq, q = i % rowq; uint4 a = o[r * 2 * rowq + q], b = o[r * 2 * rowq + rowq + q];
    __stcs(x + i, make_uint4(a.x ^ b.x, a.y ^ b.y, a.z ^ b.z, a.w ^ b.w));
  }
}
static void flush(cudaStream_t s) {
  if (FLUSH == 1) cudaMemsetAsync(g_flush, 0, g_flush_bytes, s);
  if (FLUSH == 2) k_readflush<<<132 * 8, 256, 0, s>>>((const uint4 *)g_flush, g_flush_bytes / 16, g_sink);
}
template <class F> static float timeit(F f, cudaStream_t s, int reps = 15) {
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  std::vector<float> t;
  for (int r = 0; r < reps + 2; r++) {
    flush(s);
    cudaEventRecord(a, s); f(); cudaEventRecord(b, s); cudaEventSynchronize(b);
    float ms; cudaEventElapsedTime(&ms, a, b); if (r >= 2) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
int main(int argc, char **argv) {
  const char *tag = argc > 1 ? argv[1] : "default";
  if (argc > 2 && !strcmp(argv[2], "check")) return check(tag);
  cudaStream_t s; CK(cudaStreamCreate(&s));
  CK(cudaMalloc(&g_flush, g_flush_bytes)); CK(cudaMemset(g_flush, 1, g_flush_bytes)); CK(cudaMalloc(&g_sink, 4));
  const long long only = argc > 2 ? atoll(argv[2]) : 0;
  const int64_t B = 12, H = 12, D = 128, NMAX = 32768;
  void *x, *o, *c; float *th;
  // x holds the copy's source too: 1.5x the bytes of x (it was short of them at n = 32768)
  CK(cudaMalloc(&x, B * H * NMAX * D * 2 * 3 / 2)); CK(cudaMalloc(&o, B * H * NMAX * 2 * D * 2));
  CK(cudaMalloc(&c, H * NMAX * D * 4)); CK(cudaMalloc(&th, H * D * 4));
  std::vector<float> hth(H * D); for (int i = 0; i < H * D; i++) hth[i] = powf(10000.f, -(float)(i % D) / D);
  CK(cudaMemcpy(th, hth.data(), H * D * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(x, 0, B * H * NMAX * D * 2)); CK(cudaMemset(o, 0, B * H * NMAX * 2 * D * 2));
  for (int64_t n = only ? only : 256; n <= (only ? only : NMAX); n *= 2) {
    for (int fwd = 1; fwd >= 0; fwd--)
      for (int cache = 0; cache <= 1; cache++) {
        pcu_lrpe_args a; memset(&a, 0, sizeof a);
        a.in = pcu_mat{fwd ? x : o, PCU_BF16, 0}; a.out = pcu_mat{fwd ? o : x, PCU_BF16, 0};
        a.theta = pcu_mat{th, PCU_F32, 0}; a.cache = pcu_mat{cache ? c : nullptr, PCU_F32, 0};
        a.b = B; a.h = H; a.n = n; a.d = D; a.e = D; a.ndims = 1; a.shape[0] = n; a.extra_tokens = 0;
        double bytes = (double)B * H * n * D * 2 * 3 + (cache ? (double)H * n * D * 4 : 0);
        int err = 0;
        float ms = timeit([&] { err |= fwd ? pcu_lrpe_forward(s, &a) : pcu_lrpe_backward(s, &a); }, s);
        if (err) { printf("launch error %d\n", err); return 1; }
        printf("%s %s%s n= %lld %8.1f us %7.0f GB/s\n", tag, fwd ? "fwd" : "bwd", cache ? "+C" : "  ", (long long)n, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
      }
    {
      size_t n16 = (size_t)B * H * n * D * 2 / 16; double bytes = (double)B * H * n * D * 2 * 3;
      for (int f = 1; f >= 0; f--) {
        float ms = timeit([&] { if (f) k_rw2<<<132 * 16, 256, 0, s>>>((const uint4 *)x, (uint4 *)o, n16, D * 2 / 16);
                                else k_r2w<<<132 * 16, 256, 0, s>>>((const uint4 *)o, (uint4 *)x, n16, D * 2 / 16); }, s);
        printf("%s %s   n= %lld %8.1f us %7.0f GB/s\n", tag, f ? "rw2" : "r2w", (long long)n, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
      }
    }
    double cb = (double)B * H * n * D * 2 * 3 / 2; // same total bytes as LRPE, as a copy
    float ms = timeit([&] { cudaMemcpyAsync(o, x, (size_t)cb, cudaMemcpyDeviceToDevice, s); }, s);
    printf("%s copy   n= %lld %8.1f us %7.0f GB/s\n", tag, (long long)n, ms * 1e3, 2 * cb / (ms * 1e-3) / 1e9);
  }
  double cb = 2.0e9;
  void *p, *q; CK(cudaMalloc(&p, (size_t)cb)); CK(cudaMalloc(&q, (size_t)cb));
  float ms = timeit([&] { cudaMemcpyAsync(q, p, (size_t)cb, cudaMemcpyDeviceToDevice, s); }, s);
  printf("%s copy-2GB %7.0f GB/s\n", tag, 2 * cb / (ms * 1e-3) / 1e9);
  return 0;
}
