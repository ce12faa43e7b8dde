#!/bin/sh
# Prove that the CUDA kernels build for the GTX 1080 (sm_61) and the A800/A100 (sm_80):
# compile every kernels_cu/*.cu for both into a fat object and list its ELF images with
# cuobjdump; fail unless every object holds both.
#
#   tools/check-cuda-archs.sh NVCC [ARCHS]      ARCHS default: "61 80"
#
# NVCC must support every arch asked for: sm_61 needs a CUDA 12.x (or older) nvcc, since
# CUDA 13 dropped Pascal. PyPI has no CUDA 12 nvcc driver (nvidia-cuda-nvcc-cu12 ships only
# ptxas and libnvvm), so CI (tools/test.sh) checks sm_80 with the toolkit's nvcc 13 and the
# sm_61 check runs only where a CUDA 12 toolkit is installed. cuobjdump is looked for next to
# NVCC, then on PATH, then in the PyPI package nvidia-cuda-cuobjdump (13.x reads sm_61
# ELF too); set CUOBJDUMP to choose one. Extra include directories (for a toolkit whose
# cuda_runtime.h lives elsewhere) go in CUDA_INCLUDE.
set -eu

NVCC=${1:?usage: $0 NVCC [ARCHS]}
ARCHS=${2:-61 80}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVCC_DIR=$(dirname "$(command -v "$NVCC" || echo "$NVCC")")

find_cuobjdump() {
  if [ -n "${CUOBJDUMP:-}" ]; then echo "$CUOBJDUMP"; return; fi
  if [ -x "$NVCC_DIR/cuobjdump" ]; then echo "$NVCC_DIR/cuobjdump"; return; fi
  if command -v cuobjdump >/dev/null 2>&1; then command -v cuobjdump; return; fi
  for py in python3 python; do
    p=$($py -c 'import glob, os, nvidia; d = list(nvidia.__path__)[0]; print((glob.glob(os.path.join(d, "*", "bin", "cuobjdump")) + [""])[0])' 2>/dev/null || true)
    if [ -n "$p" ]; then echo "$p"; return; fi
  done
  echo ""
}
OBJDUMP=$(find_cuobjdump)
if [ -z "$OBJDUMP" ]; then
  echo "check-cuda-archs: no cuobjdump (install one: pip install nvidia-cuda-cuobjdump, or set CUOBJDUMP)" >&2
  exit 1
fi

echo "nvcc: $("$NVCC" --version | tail -1)"
echo "cuobjdump: $OBJDUMP"
GENCODE=""
for a in $ARCHS; do GENCODE="$GENCODE -gencode=arch=compute_$a,code=sm_$a"; done
INCS="-I$ROOT/kernels_cu -I$ROOT/backends/cuda -I$ROOT/include -I$ROOT/src"
for d in ${CUDA_INCLUDE:-}; do INCS="$INCS -I$d"; done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0
for src in "$ROOT"/kernels_cu/*.cu; do
  name=$(basename "$src" .cu)
  # shellcheck disable=SC2086  # GENCODE and INCS are deliberately split into words
  if ! "$NVCC" -std=c++17 -O3 $GENCODE $INCS -Xcompiler=-fPIC -c "$src" -o "$WORK/$name.o"; then
    echo "FAIL $name.cu: does not compile for $ARCHS" >&2
    status=1
    continue
  fi
  elves=$("$OBJDUMP" --list-elf "$WORK/$name.o" || true)
  for a in $ARCHS; do
    if echo "$elves" | grep -q "sm_$a\b"; then
      echo "ok   $name.cu: sm_$a"
    else
      echo "FAIL $name.cu: no sm_$a ELF image; cuobjdump --list-elf says:" >&2
      echo "$elves" >&2
      status=1
    fi
  done
done
exit $status
