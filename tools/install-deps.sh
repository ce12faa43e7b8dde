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
# With a CUDA toolkit present, CI proves the kernels build for the A800 (sm_80) and the GTX
# 1080 (sm_61), and lists the ELF images with cuobjdump, which the Debian image's toolkit
# lacks: PyPI has it. An nvcc that cannot target sm_61 (CUDA 13) leaves sm_61 to NVRTC 12 and
# the CUDA 12 headers, from PyPI too (tools/check-cuda-archs.sh).
pip_install() { # those of the packages not installed yet (by name; the version is not rechecked)
  local want
  mapfile -t want < <(python3 -c 'import sys, importlib.metadata as m
for s in sys.argv[1:]:
    try: m.version(s.split("=")[0])
    except m.PackageNotFoundError: print(s)' "$@")
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing from PyPI: ${want[*]}"
    python3 -m pip install -q --disable-pip-version-check "${want[@]}"
  fi
}
if command -v nvcc >/dev/null 2>&1; then
  command -v cuobjdump >/dev/null 2>&1 || pip_install nvidia-cuda-cuobjdump
  nvcc --list-gpu-arch 2>/dev/null | grep -x compute_61 >/dev/null ||
    pip_install 'nvidia-cuda-nvrtc-cu12==12.9.*' 'nvidia-cuda-runtime-cu12==12.9.*'
fi
