/* The C interface of the CUDA kernels (kernels_cu/ .cu files) used by the host side of the CUDA
 * backend (backends/cuda/ .c files). Plain C, so the host files are compiled by the C compiler;
 * every launcher enqueues on the given stream and returns the launch's cudaError_t as an
 * int (0 = cudaSuccess), never synchronising. */
#ifndef PATTN_CUDA_KERNELS_H
#define PATTN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { PCU_F32 = 0, PCU_F16 = 1, PCU_BF16 = 2 }; /* same values as pattn_dtype */

/* A strided view, the device-side twin of pattn_view: element (ib, is, ih, i, j) at
 * buf[offset + ib*sb + is*ss + ih*sh + i*sn + j]. */
typedef struct pcu_view {
  void   *buf;
  int     dtype;
  int64_t offset;
  int64_t nb, ns, nh, n, d;
  int64_t sb, ss, sh, sn;
} pcu_view;

/* A dense row-major matrix or vector (buf NULL: absent). */
typedef struct pcu_mat {
  void   *buf;
  int     dtype;
  int64_t offset;
} pcu_mat;

/* ---- elementwise (elementwise.cu) ---- */
int pcu_fill(cudaStream_t s, pcu_view dst, float value);
int pcu_copy(cudaStream_t s, pcu_view dst, pcu_view src, float alpha);
int pcu_merge(cudaStream_t s, pcu_view acc_out, pcu_view acc_lse, pcu_view part_out, pcu_view part_lse);
/* out (and lse where lse.buf is set) from S partial results over disjoint key ranges, dense f32:
 * po [S][rows][out.d] normalised outputs, pl [S][rows] their log-sum-exps, rows in out's
 * (nb, ns, nh, n) order; out = out_scale * the combined softmax average. */
int pcu_split_combine(cudaStream_t s, pcu_view out, pcu_view lse, const float *po, const float *pl, int S,
                      float out_scale);
/* TF32 through f16 (flash_wgmma.cu): dst[t] = dense f16 [nb][ns][nh][n][d] copies of the f32 views
 * src[t] (t = 0, 1, 2: q, k, v; rows 16-byte aligned; 256 divisible by d / 4). Each tile of
 * rows[t] rows of a (batch, segment, head) is scaled by the power of two 2^e that brings its largest finite magnitude into [2^14, 2^15) (e = pcu_f16_exp, 0 for a
 * tile of zeros), and e goes to exps: q's [unit][tile] over the units (nb ns nh) and
 * ceil(n / rows[0]) tiles, padded to an even count; then k's and v's (of one shape, as
 * attention's) in pairs, [unit][tile][k, v], one 32-bit load a kv tile. num_sms (0: unknown)
 * picks the kernel: when every tile gets a block in one wave, each tile is read once, held in
 * registers. The kernel lets a programmatic dependent launch start early (griddepcontrol). */
int pcu_f16_tiles(cudaStream_t s, const pcu_view src[3], uint16_t *const dst[3], const int rows[3], int16_t *exps,
                  int num_sms);
/* Dense f32 [nu][H][n][d] from units u0 .. u0+nu-1 of a view (unit = ib*ns + is); head ih
 * of the result reads head ih / group of the view (GQA expansion). */
int pcu_gather(cudaStream_t s, float *dst, pcu_view src, int64_t u0, int64_t nu, int64_t H, int64_t group);
/* View units u0 .. u0+nu-1 = alpha * sum over g < group of dense f32 [nu][H*group][n][d]
 * head (ih*group + g), H = dst.nh (group 1: a plain scatter). */
int pcu_scatter(cudaStream_t s, pcu_view dst, const float *src, int64_t u0, int64_t nu, int64_t group, float alpha);
/* D[u][ih][i] = dot(a row, b row) of two views with equal extents, units u0.. */
int pcu_rowdot(cudaStream_t s, float *D, pcu_view a, pcu_view b, int64_t u0, int64_t nu);
/* y[r][c] = src[r][c] + bias[c] (bias.buf may be NULL), stored in y's dtype. */
int pcu_bias_store(cudaStream_t s, int64_t m, int64_t n, const float *src, pcu_mat bias, pcu_mat y);

/* ---- layernorm.cu ---- */
int pcu_layernorm(cudaStream_t s, int64_t rows, int64_t cols, float eps, pcu_mat x, pcu_mat gamma,
                  pcu_mat beta, pcu_mat y);

/* ---- softmax.cu: the elementwise parts of the materialised (NAIVE) attention ---- */
/* Rows of S [nu][H][nq][nk] (already scaled): add mask, apply causal, softmax in place;
 * lse (buf may be NULL) receives the rows' logsumexp. */
int pcu_softmax_rows(cudaStream_t s, float *S, int64_t u0, int64_t nu, int64_t H, int64_t nq, int64_t nk,
                     int64_t ns, pcu_view mask, pcu_view lse, int causal, int64_t causal_offset);
/* Backward: S (scaled scores) becomes P = exp(S - lse), dP becomes scale * P * (dP - D). */
int pcu_softmax_bwd(cudaStream_t s, float *S, float *dP, const float *lse, const float *D, int64_t rows,
                    int64_t nq, int64_t nk, float scale, int causal, int64_t causal_offset);

/* ---- flash.cu: fused tiled attention (dense and block-sparse) ---- */
typedef struct pcu_flash_args {
  pcu_view q, k, v, out;
  pcu_view mask;          /* buf NULL: none; broadcast over nb/nh of extent 1 */
  pcu_view lse;           /* buf NULL: none */
  float    scale, out_scale;
  int      causal;
  int64_t  causal_offset;
  /* block-sparse (layout NULL: dense) */
  const uint8_t *layout;  /* device copy of [layout_heads][nqb][nkb] */
  int      layout_heads;
  int64_t  nqb, nkb;
  int      block_size;
  const int *tile_ptr;    /* CSR over (layout head, query tile): kv tiles to visit */
  const int *tile_idx;
  int      num_sms;         /* multiprocessors, for the occupancy choice of dense launches */
  /* NULL, or q, k and v are f16 copies of f32 tensors scaled by powers of two per tile
   * (pcu_f16_tiles, with q's tiles the kernel's query tiles and k's and v's its kv tiles):
   * their exponents, which the kernel undoes */
  const int16_t *f16_exp;
} pcu_flash_args;

/* Tile shape the flash kernel would use for head dims dk, dv on a device whose per-block
 * shared-memory limit is smem_optin: 0 and *bm, *bn set, or -1 if no variant fits. */
int pcu_flash_plan(int64_t dk, int64_t dv, size_t smem_optin, int *bm, int *bn);
int pcu_flash_forward(cudaStream_t s, const pcu_flash_args *a, size_t smem_optin);
/* flash_mma.cu: f16/bf16 dense attention on tensor cores (compute capability cc >= 80);
 * cudaErrorNotSupported when it does not apply (then use pcu_flash_forward). */
int pcu_flash_mma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin);
/* flash_wgmma.cu: the same on Hopper's wgmma with TMA loads (compute capability 9.0 with the
 * module's sm_90a code) for no mask, equal head dims of 64, 128 or 256 and views whose starts
 * and strides are multiples of 16 bytes; cudaErrorNotSupported elsewhere (then use
 * pcu_flash_mma_forward). */
int pcu_flash_wgmma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin);
/* The same kernel for f32 q, k, v with PATTN_PRECISION_TF32 (16-byte aligned rows): f16 copies
 * scaled per tile (pcu_f16_tiles) of nb_chunk batches at a time. First the plan: the workspace
 * bytes, *variant and *nb_chunk, or 0 where this path does not apply (then use
 * pcu_flash_wgmma_f32_forward); then the launches of that variant, with that workspace. */
size_t pcu_flash_wgmma_tf32_plan(const pcu_flash_args *a, int cc, size_t smem_optin, int *variant, int64_t *nb_chunk);
int pcu_flash_wgmma_tf32(cudaStream_t s, const pcu_flash_args *a, int variant, void *ws, int64_t nb_chunk);
/* flash_tf32.cu: f32 dense attention on tensor cores (cc >= 80, head dims <= 256): 3xTF32 split
 * products (f32 accuracy), or plain TF32 if tf32_only (PATTN_PRECISION_TF32). First the plan:
 * the variant, its grid and, for grids that leave the device's block slots idle, a split of
 * the keys over nsplit blocks per query tile that needs ws_bytes of workspace (0: no split);
 * cudaErrorNotSupported when this path does not apply (then use pcu_flash_forward). Then the
 * launch, with that workspace (ws NULL: no split). */
typedef struct pcu_tf32_plan {
  int     variant, nsplit;
  int64_t nqt, blocks, kchunk;
  size_t  ws_bytes;
} pcu_tf32_plan;
int pcu_flash_tf32_plan(const pcu_flash_args *a, int cc, size_t smem_optin, int tf32_only, pcu_tf32_plan *p);
int pcu_flash_tf32_forward(cudaStream_t s, const pcu_flash_args *a, const pcu_tf32_plan *p, void *ws);
/* flash_wgmma_f32.cu: f32 attention on Hopper's wgmma (no mask, 16-byte aligned rows, head
 * dims 64, 128, 256), exact (three bf16 parts an operand) or, if tf32, the TF32 precision;
 * cudaErrorNotSupported where it does not apply (then use flash_tf32.cu). */
int pcu_flash_wgmma_f32_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin, int tf32);

/* ---- fused attention backward: flash_mma_bwd.cu (f16/bf16 on tensor cores, cc >= 80) and
 * flash_bwd.cu (f32 arithmetic, any dtypes, any architecture) ---- */
/* Units (ib*ns + is) u0 .. u0+nu-1 of the views; the results are f32 workspaces, dense over
 * the chunk's units and the QUERY heads (GQA groups are summed afterwards by pcu_scatter). */
typedef struct pcu_flash_bwd_args {
  pcu_view     q, k, v, dout;  /* tensor-core kernel: f16 or bf16, one dtype; FMA kernel: any */
  pcu_view     lse;            /* [nb][ns][hq][nq], natural log, -inf: the row sees no key */
  const float *delta;          /* D = rowdot(dout, out): [nu][hq][nq] (pcu_rowdot) */
  float       *dq;             /* [nu][hq][nq][dk], zeroed by the caller (accumulated atomically) */
  float       *dk, *dv;        /* [nu][hq][nk][dk], [nu][hq][nk][dv], every element written */
  pcu_view     gk, gv;         /* where .buf is set (no GQA; every row start on an even element):
                                  dK and dV go straight to these views instead of dk and dv */
  int64_t      u0, nu;
  float        scale;
  int          causal;
  int64_t      causal_offset;  /* query i sees key j iff j <= i + causal_offset */
} pcu_flash_bwd_args;
/* Whether pcu_flash_mma_backward applies (dtypes, head dims up to 256, cc, shared memory). */
int pcu_flash_mma_backward_supported(const pcu_flash_bwd_args *a, int cc, size_t smem_optin);
/* cudaErrorNotSupported when it does not apply (then use the cuBLAS path). */
int pcu_flash_mma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, int cc, size_t smem_optin);
/* flash_wgmma_bwd.cu: the same on Hopper's wgmma with TMA loads (compute capability 9.0 with
 * the module's sm_90a code) for one of f16/bf16, equal head dims of 64 or 128 and views whose
 * starts and strides are multiples of 16 bytes; cudaErrorNotSupported elsewhere (then use
 * pcu_flash_mma_backward). */
int pcu_flash_wgmma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, int cc, size_t smem_optin);
/* flash_bwd.cu: whether it applies (head dims up to 256 whose tile fits smem_optin), and the
 * launch (cudaErrorNotSupported when it does not apply: then use the cuBLAS path). */
int pcu_flash_fma_backward_supported(const pcu_flash_bwd_args *a, size_t smem_optin);
int pcu_flash_fma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, size_t smem_optin);

/* ---- lrpe.cu ---- */
typedef struct pcu_lrpe_args {
  pcu_mat  in, theta, out, cache;
  int64_t  b, h, n, d, e;
  int      ndims;
  int64_t  shape[8];
  int64_t  extra_tokens;
} pcu_lrpe_args;
int pcu_lrpe_forward(cudaStream_t s, const pcu_lrpe_args *a);
int pcu_lrpe_backward(cudaStream_t s, const pcu_lrpe_args *a);

#ifdef __cplusplus
}
#endif
#endif /* PATTN_CUDA_KERNELS_H */
