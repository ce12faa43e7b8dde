/* pattn over MPI: a communicator for distributed ring attention (pattn_ring_attention,
 * pattn_ring_dilated_attention) made from an MPI communicator. Installed only when pattn
 * was built with MPI; link with MPI as well (pkg-config pattn-mpi or your mpicc).
 *
 * Works with every backend: cpu buffers go to MPI as they are; device buffers are staged
 * through host memory, or handed to MPI directly when the context's backend is cuda and the
 * MPI library is CUDA-aware (MPIX_Query_cuda_support). PATTN_MPI_DIRECT=0 forces staging. The comm duplicates `comm` (so pattn's messages never mix with
 * the caller's), belongs to `ctx` (only that context may use it), and must be destroyed with
 * pattn_comm_destroy before MPI_Finalize and before the context. Creation is collective
 * over `comm`. */
#ifndef PATTN_PATTN_MPI_H
#define PATTN_PATTN_MPI_H

#include <mpi.h>

#include "pattn/pattn.h"

#ifdef __cplusplus
extern "C" {
#endif

PATTN_API pattn_status pattn_comm_create_mpi(pattn_context *ctx, MPI_Comm comm, pattn_comm **out);

#ifdef __cplusplus
}
#endif
#endif /* PATTN_PATTN_MPI_H */
