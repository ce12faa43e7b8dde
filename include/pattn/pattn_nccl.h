/* pattn over NCCL: a communicator for distributed ring attention on the cuda backend, made
 * from an initialised ncclComm_t whose device is the context's device. Transfers
 * (ncclSend/ncclRecv) run on a stream of their own, ordered against the context's stream
 * with events, so the next K/V shard travels while the current one is computed.
 *
 * pattn does not take ownership of `comm`: destroy the pattn_comm (pattn_comm_destroy)
 * before ncclCommDestroy and before the context. A context whose backend is not cuda (or a
 * cuda module built without NCCL) gives PATTN_ERR_UNSUPPORTED. libpattn itself does not
 * link NCCL; the program does. */
#ifndef PATTN_PATTN_NCCL_H
#define PATTN_PATTN_NCCL_H

#include <nccl.h>

#include "pattn/pattn.h"

#ifdef __cplusplus
extern "C" {
#endif

PATTN_API pattn_status pattn_comm_create_nccl(pattn_context *ctx, ncclComm_t comm, pattn_comm **out);

#ifdef __cplusplus
}
#endif
#endif /* PATTN_PATTN_NCCL_H */
