// Stand-alone timing of kernels_cu/lrpe.cu (bench/results/2026-11-21-h200/session3/): seed-002 1-d
// sizes (bf16, b=12, h=12, d=128), forward and backward, with and without the angle cache, plus
// the same access patterns with no arithmetic (rw2, r2w) and a device copy of the same bytes.
// Each launch follows a 256 MB pass on the stream (FLUSH: 0 none, 1 memset, 2 read-only kernel).
// Build on the GPU machine from the repository root, with any of lrpe.cu's compile-time knobs:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Ikernels_cu -Ibackends/cuda -Iinclude -Isrc -DFLUSH=2 \
//        [-DTARGET_THREADS='(1<<17)' -DBU=4 -DFWD_THREADS=256 ...] tools/lrpe-harness.cu -o lrpe-harness
//   ./lrpe-harness TAG [n]      (n: one sequence length instead of 256 .. 32768)
#include "lrpe.cu"
#include <cstdio>
#include <vector>
#include <algorithm>
#include <cstring>
#define CK(x) do { cudaError_t e_ = (x); if (e_) { printf("CUDA %s at %d\n", cudaGetErrorString(e_), __LINE__); return 1; } } while (0)
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
  cudaStream_t s; CK(cudaStreamCreate(&s));
  CK(cudaMalloc(&g_flush, g_flush_bytes)); CK(cudaMemset(g_flush, 1, g_flush_bytes)); CK(cudaMalloc(&g_sink, 4));
  const long long only = argc > 2 ? atoll(argv[2]) : 0;
  const int64_t B = 12, H = 12, D = 128, NMAX = 32768;
  void *x, *o, *c; float *th;
  CK(cudaMalloc(&x, B * H * NMAX * D * 2)); CK(cudaMalloc(&o, B * H * NMAX * 2 * D * 2));
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
