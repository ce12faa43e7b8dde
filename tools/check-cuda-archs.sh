#!/bin/sh
# Prove that the CUDA kernels build for the GTX 1080 (sm_61) and the A800/A100 (sm_80):
# compile every kernels_cu/*.cu for both and list the ELF images with cuobjdump; fail unless
# every file has both.
#
#   tools/check-cuda-archs.sh NVCC [ARCHS]      ARCHS default: "61 80"
#
# The archs NVCC supports are compiled by NVCC into one fat object per file, whose ELF images
# cuobjdump --list-elf must show. The others go to tools/check-cuda-archs-nvrtc.py: CUDA 13
# dropped Pascal and PyPI has no CUDA 12 nvcc driver (nvidia-cuda-nvcc-cu12 ships only ptxas
# and libnvvm), so with nvcc 13 (CI, tools/test.sh) sm_61 is compiled by NVRTC 12 from PyPI
# (nvidia-cuda-nvrtc-cu12, with the nvidia-cuda-runtime-cu12 headers) to CUBINs, which must
# hold an sm_61 ELF image and exactly the kernels of NVCC's objects. With a CUDA 12 nvcc,
# everything is nvcc's. cuobjdump is looked for next to NVCC, then on PATH, then in the PyPI
# package nvidia-cuda-cuobjdump (13.x reads sm_61 ELF too); set CUOBJDUMP to choose one.
# Extra include directories (for a toolkit whose cuda_runtime.h lives elsewhere) go in
# CUDA_INCLUDE.
set -eu

NVCC=${1:?usage: $0 NVCC [ARCHS]}
ARCHS=${2:-61 80}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVCC=$(command -v "$NVCC" || echo "$NVCC")
NVCC_DIR=$(dirname "$NVCC")

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

# split ARCHS into those NVCC can build and those left to NVRTC
SUPPORTED=$("$NVCC" --list-gpu-arch 2>/dev/null || true)
NVCC_ARCHS=""
RTC_ARCHS=""
for a in $ARCHS; do
  if echo "$SUPPORTED" | grep -qx "compute_$a"; then NVCC_ARCHS="$NVCC_ARCHS $a"; else RTC_ARCHS="$RTC_ARCHS $a"; fi
done

echo "nvcc: $("$NVCC" --version | tail -1)"
echo "cuobjdump: $OBJDUMP"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0
if [ -n "$NVCC_ARCHS" ]; then
  GENCODE=""
  for a in $NVCC_ARCHS; do GENCODE="$GENCODE -gencode=arch=compute_$a,code=sm_$a"; done
  INCS="-I$ROOT/kernels_cu -I$ROOT/backends/cuda -I$ROOT/include -I$ROOT/src"
  for d in ${CUDA_INCLUDE:-}; do INCS="$INCS -I$d"; done
  for src in "$ROOT"/kernels_cu/*.cu; do
    name=$(basename "$src" .cu)
    # shellcheck disable=SC2086  # GENCODE and INCS are deliberately split into words
    if ! "$NVCC" -std=c++17 -O3 $GENCODE $INCS -Xcompiler=-fPIC -c "$src" -o "$WORK/$name.o"; then
      echo "FAIL $name.cu: nvcc does not compile it for$NVCC_ARCHS" >&2
      status=1
      continue
    fi
    elves=$("$OBJDUMP" --list-elf "$WORK/$name.o" || true)
    for a in $NVCC_ARCHS; do
      if echo "$elves" | grep -q "sm_$a\b"; then
        echo "ok   $name.cu: sm_$a"
      else
        echo "FAIL $name.cu: no sm_$a ELF image; cuobjdump --list-elf says:" >&2
        echo "$elves" >&2
        status=1
      fi
    done
  done
fi
if [ -n "$RTC_ARCHS" ]; then
  echo "nvcc cannot target$RTC_ARCHS: NVRTC compiles them"
  # the reference kernel sets: the objects just built, else NVCC builds its own
  if [ -n "$NVCC_ARCHS" ]; then ref="--reference=$WORK"; else ref="--nvcc=$NVCC"; fi
  # shellcheck disable=SC2086  # RTC_ARCHS is deliberately split into words
  CUOBJDUMP=$OBJDUMP python3 "$ROOT/tools/check-cuda-archs-nvrtc.py" "$ref" $RTC_ARCHS || status=1
fi
exit $status
