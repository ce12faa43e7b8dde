#!/usr/bin/env bash
# Installs what is missing, builds pattn and runs the whole test suite: unit, error-handling
# and conformance tests on every backend built here, then the same suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

# Backends that must not be skipped here: the CPU, and OpenCL through PoCL (a silently
# missing OpenCL must never pass).
export PATTN_REQUIRE_BACKENDS=${PATTN_REQUIRE_BACKENDS:-cpu,opencl}
jobs=$(nproc)

if command -v nvcc >/dev/null 2>&1; then
  # sm_80 with the toolkit's nvcc; sm_61, which CUDA 13's nvcc cannot target, with NVRTC 12
  # from PyPI (installed by install-deps), checked against nvcc's kernels
  echo "== CUDA kernels build for the GTX 1080 (sm_61) and the A800 (sm_80)"
  tools/check-cuda-archs.sh "$(command -v nvcc)" "61 80"
fi

echo "== build (release) and test"
prefix="$PWD/build-test/install"
opts=(-Dbuildtype=release --prefix="$prefix" -Dlibdir=lib)
meson setup build-test --wipe "${opts[@]}" >/dev/null 2>&1 || meson setup build-test "${opts[@]}"
meson compile -C build-test
meson test -C build-test --print-errorlogs --num-processes "$jobs"

echo "== an outside program against the installed library (pkg-config pattn)"
meson install -C build-test --quiet
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c99 -Wall -Wextra -o build-test/consumer tests/consumer/consumer.c $(pkg-config --cflags --libs pattn) -lm
LD_LIBRARY_PATH="$prefix/lib" build-test/consumer

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer and test"
meson setup build-asan --wipe -Dcuda=disabled -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
  >/dev/null 2>&1 || meson setup build-asan -Dcuda=disabled -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
# intercept_tls_get_addr=0: with PoCL's libraries dlopen'ed, gcc 12's LeakSanitizer reads a
# bogus dynamic-TLS range of the main thread at exit and crashes in its own tracer (after
# every test passed); without the interception it scans the same memory and still reports leaks.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:intercept_tls_get_addr=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 4
