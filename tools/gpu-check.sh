#!/usr/bin/env bash
# On the GPU machine: build pattn there, run the conformance suite on every backend (CPU,
# CUDA, NVIDIA's OpenCL, PoCL when registered), run pattn-bench suites with the PyTorch
# peers, and print a short table last. Logs and results are packed into $OUT/gpu-results.tgz
# (the device tool returns at most 8 files), with the table in $OUT/summary.txt.
#   usage: tools/gpu-check.sh [bench suites...]     (default: quick; "none" skips the bench)
#   Issue 7's suites: tools/gpu-check.sh fa2 f32acc (bf16/f16 flash against FlashAttention-2
#   and cuDNN; f32 exact and TF32 speed and error against SDPA's efficient kernel). They use
#   their own per-row budgets (pattn-bench and run_peers.py defaults), not --max-seconds 20;
#   for the bench alone on CUDA: PATTN_SKIP_CONFORMANCE=1 PATTN_GPU_BACKENDS=cuda
#   PATTN_GPU_BACKENDS: backends to check (default "cpu cuda opencl")
#   PATTN_BENCH_ARGS, PATTN_PEERS_ARGS: extra options for pattn-bench and run_peers.py
#   PATTN_SKIP_CONFORMANCE=1: only the bench (for a second call)
#   PATTN_GPU_TAG: names the archive gpu-results-TAG.tgz (several runs in one call); an
#   existing build is reused (ninja only) so a second run in the same call does not rebuild
# Expects a prefix with cmocka, CLBlast and OpenCL headers in .deps (see DEVELOPERS notes:
# ../shared/tools/offline-prefix.sh .deps), carried with the working tree.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
final=${OUT:-$root/gpu-out}
out=/tmp/pattn-gpu-out
rm -rf "$out"
mkdir -p "$out" "$final"
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
if [ -f "$build/build.ninja" ] ||
   meson setup "$build" -Dbuildtype=release -Dcuda-archs="${PATTN_CUDA_ARCHS:-90}" > "$out/build.log" 2>&1; then
  ninja -C "$build" >> "$out/build.log" 2>&1 && note build ok || note build "FAILED (build.log)"
else
  note build "FAILED to configure (build.log)"
fi
"$build/tools/pattn-info" > "$out/pattn-info.txt" 2>&1

export PATTN_BACKEND_DIR=$build/backends/opencl:$build/backends/cuda
backends=${PATTN_GPU_BACKENDS:-cpu cuda opencl}
for be in $backends; do
  [ "${PATTN_SKIP_CONFORMANCE:-0}" = 1 ] && break
  log=$out/conformance-$be.log
  PATTN_BACKEND=$be PATTN_REQUIRE_BACKENDS=$be timeout 900 "$build/tests/test-conformance" > "$log" 2>&1
  rc=$?
  line=$(grep -E '^conformance .*passed' "$log" | tail -1)
  note "conformance $be" "${line:-exit $rc} (rc=$rc)"
done

# the two ceilings every speed figure is read against: copy bandwidth, bf16 GEMM rate
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  python3 - > "$out/ceilings.txt" 2>&1 <<'PY'
import torch
def t(f, reps=20):
    for _ in range(3): f()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); s.record()
    for _ in range(reps): f()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / reps / 1e3
a = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16); b = torch.empty_like(a)
sec = t(lambda: b.copy_(a)); print("copy %.0f GB/s (bytes read + written)" % (2 * a.numel() * 2 / sec / 1e9))
x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); y = torch.randn_like(x)
sec = t(lambda: x @ y); print("bf16 gemm %.0f TFLOP/s (8192^3, random data)" % (2 * 8192**3 / sec / 1e12))
x = x.float(); y = y.float()
torch.backends.cuda.matmul.allow_tf32 = False
sec = t(lambda: x @ y, 5); print("f32 gemm %.1f TFLOP/s (no TF32)" % (2 * 8192**3 / sec / 1e12))
PY
  note ceilings "$(tr '\n' ';' < "$out/ceilings.txt")"
fi

for s in "${suites[@]}"; do
  [ "$s" = none ] && break
  # fa2 (576 peer rows) and f32acc size their own per-row budgets to fit a few minutes
  case $s in fa2|f32acc) budget=() ;; *) budget=(--max-seconds 20) ;; esac
  compare=()
  if python3 -c 'import torch' 2>/dev/null; then
    PYTHONUNBUFFERED=1 timeout 900 python3 bench/peers/run_peers.py --suite "$s" --device cuda "${budget[@]}" ${PATTN_PEERS_ARGS:-} \
      --out "$out/peers-$s.json" > "$out/peers-$s.txt" 2>&1
    note "peers $s" "rc=$?"
    [ -s "$out/peers-$s.json" ] && compare=(--compare "$out/peers-$s.json")
  fi
  for be in $backends; do
    [ "$be" = cpu ] && continue
    timeout 900 "$build/bench/pattn-bench" --suite "$s" --backend "$be" "${budget[@]}" ${PATTN_BENCH_ARGS:-} "${compare[@]}" \
      --out "$out/bench-$be" > "$out/bench-$s-$be.txt" 2>&1
    note "bench $s $be" "rc=$?"
  done
done

{ echo "== $(head -1 "$out/device.txt")"; printf '%s\n' "${summary[@]}"; } > "$out/summary.txt"
tag=${PATTN_GPU_TAG:+-$PATTN_GPU_TAG}
tar czf "$final/gpu-results$tag.tgz" -C "$out" .
cp "$out/summary.txt" "$final/summary$tag.txt"
cat "$out/summary.txt"
