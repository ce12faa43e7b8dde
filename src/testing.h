/* Test hooks (not part of the public API): guard bands around tensors, so the conformance
 * suite can prove that an operator writes nothing outside its outputs. Available to
 * programs that link the static library. */
#ifndef PATTN_TESTING_H
#define PATTN_TESTING_H

#include <stddef.h>

#include "pattn/pattn.h"

/* Tensors created on ctx afterwards get `bytes` of guard band on each side (rounded up to
 * 256), filled with a fixed pattern. 0 turns it off. */
void pattn_testing_set_guard_bytes(pattn_context *ctx, size_t bytes);
/* 1 if both guard bands of t still hold the pattern (also 1 for a tensor without guards),
 * 0 if anything wrote into them or they could not be read. */
int pattn_testing_guards_intact(const pattn_tensor *t);

#endif
