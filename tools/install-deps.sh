#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test pattn (the one place the
# package list lives; README's commands and CI call it). Safe to run again.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
pkgs=(build-essential meson ninja-build pkg-config python3
      libcmocka-dev                                  # tests
      ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd clinfo   # OpenCL backend, PoCL on the CPU
      libopenmpi-dev openmpi-bin)                    # distributed ring attention
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# With a CUDA toolkit present, CI proves the kernels build for the A800 (sm_80) and lists the
# ELF images with cuobjdump, which the Debian image's toolkit lacks: PyPI has it.
if command -v nvcc >/dev/null 2>&1 && ! command -v cuobjdump >/dev/null 2>&1 &&
   ! python3 -m pip show -q nvidia-cuda-cuobjdump >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check nvidia-cuda-cuobjdump
fi
