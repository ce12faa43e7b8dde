#!/usr/bin/env bash
# On the GPU machine: build pattn there, run the conformance suite on every backend (CPU,
# CUDA, NVIDIA's OpenCL, PoCL when registered), run pattn-bench suites with the PyTorch
# peers, and print a short table last. Logs and results go to $OUT (or ./gpu-out).
#   usage: tools/gpu-check.sh [bench suites...]     (default: quick)
# Expects a prefix with cmocka, CLBlast and OpenCL headers in .deps (see DEVELOPERS notes:
# ../shared/tools/offline-prefix.sh .deps), carried with the working tree.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(quick)

export PKG_CONFIG_PATH=$root/.deps/lib/pkgconfig LD_LIBRARY_PATH=$root/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# NVIDIA's OpenCL driver is installed there but not registered with the ICD loader.
mkdir -p /tmp/icd
echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
cp /etc/OpenCL/vendors/*.icd /tmp/icd/ 2>/dev/null || true
export OCL_ICD_VENDORS=/tmp/icd
export PATTN_CACHE_DIR=/tmp/pattn-cache

build=/tmp/pattn-build
summary=()
note() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1; } > "$out/device.txt" 2>&1
if meson setup "$build" --wipe -Dbuildtype=release -Dcuda-archs="${PATTN_CUDA_ARCHS:-90}" > "$out/build.log" 2>&1 ||
   meson setup "$build" -Dbuildtype=release -Dcuda-archs="${PATTN_CUDA_ARCHS:-90}" >> "$out/build.log" 2>&1; then
  ninja -C "$build" >> "$out/build.log" 2>&1 && note build ok || note build "FAILED (build.log)"
else
  note build "FAILED to configure (build.log)"
fi
"$build/tools/pattn-info" > "$out/pattn-info.txt" 2>&1

export PATTN_BACKEND_DIR=$build/backends/opencl:$build/backends/cuda
for be in cpu cuda opencl; do
  log=$out/conformance-$be.log
  PATTN_BACKEND=$be PATTN_REQUIRE_BACKENDS=$be timeout 900 "$build/tests/test-conformance" > "$log" 2>&1
  rc=$?
  line=$(grep -E '^conformance .*passed' "$log" | tail -1)
  note "conformance $be" "${line:-exit $rc} (rc=$rc)"
done

for s in "${suites[@]}"; do
  for be in cuda opencl; do
    PATTN_BACKEND=$be timeout 600 "$build/bench/pattn-bench" --suite "$s" --backend "$be" --format json --out "$out/bench-$be" \
      > "$out/bench-$s-$be.txt" 2>&1
    note "bench $s $be" "rc=$? (bench-$s-$be.txt)"
  done
  if python3 -c 'import torch' 2>/dev/null && [ -f bench/peers/run_peers.py ]; then
    timeout 600 python3 bench/peers/run_peers.py --suite "$s" --out "$out/peers-$s.json" > "$out/peers-$s.txt" 2>&1
    note "peers $s" "rc=$? (peers-$s.txt)"
  fi
done

echo "== $(head -1 "$out/device.txt")"
printf '%s\n' "${summary[@]}"
