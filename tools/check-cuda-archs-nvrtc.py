#!/usr/bin/env python3
"""Prove that the CUDA kernels compile for architectures the local nvcc cannot target, above
all the GTX 1080 (sm_61), which CUDA 13 dropped. PyPI has no CUDA 12 nvcc driver (the
nvidia-cuda-nvcc-cu12 wheels hold only ptxas and libnvvm), but it has NVRTC 12
(nvidia-cuda-nvrtc-cu12: nvcc 12's C++ front end, optimizer and ptxas in one library) and
the CUDA 12 headers (nvidia-cuda-runtime-cu12). tools/check-cuda-archs.sh calls this for
the archs its nvcc lacks; by hand:

  tools/check-cuda-archs-nvrtc.py [--reference DIR | --nvcc NVCC] [--source F.cu]... [ARCH...]

compiles every kernels_cu/*.cu (or each F.cu) with NVRTC to a CUBIN for each ARCH (default
61): __CUDA_ARCH__ = ARCH*10, -std=c++17, the include directories of the real build. It
fails with NVRTC's log on any error, then checks each CUBIN with cuobjdump: --list-elf must
show one sm_ARCH ELF image, and its kernels (the ENTRY functions of -symbols) must be
exactly those of nvcc's build of the same file: DIR/NAME.o, or else NVCC -cubin for an arch
it supports (default: nvcc on PATH). nvcc compiles the host code, so its build holds every
kernel and template instantiation the launchers use; a kernel the NVRTC build lacks or adds
fails the check, named. Without an nvcc, there is no such reference.

NVRTC compiles device code only: each file's host side sits in #ifndef __CUDACC_RTC__ and
its kernel templates are instantiated explicitly in #ifdef __CUDACC_RTC__ from the list the
host side uses (kernels_cu/common.cuh, "Under NVRTC"). Options beyond the real build's:
-default-device, so that the host prototypes of backends/cuda/cuda_kernels.h are accepted
(NVRTC rejects host declarations; nothing unannotated is called from device code, which
nvcc would reject anyway), and --no-cache. NVRTC has no C library headers: the three the
kernels include get the stand-in headers below (glibc x86-64 types; math.h empty, since NVRTC declares
CUDA's math functions itself). Everything else comes from the CUDA 12 headers.

Found: libnvrtc.so.12 in $NVRTC_LIB, else nvidia/cuda_nvrtc/lib of this python3's
packages, else /usr/local/cuda-12*; headers in $CUDA_INCLUDE (directories separated by
spaces), else nvidia/cuda_runtime/include beside it; cuobjdump in $CUOBJDUMP, next to
NVCC, on PATH, or in the nvidia-cuda-cuobjdump package. Prints one line per file,
"ok   NAME.cu: sm_61 (N kernels), as nvcc's build"; exits 1 on any failure.
"""
import argparse
import concurrent.futures
import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE_DIRS = [os.path.join(ROOT, d) for d in ("kernels_cu", "backends/cuda", "include", "src")]

STANDIN_HEADERS = {
    "stdint.h": """#pragma once
typedef signed char int8_t; typedef short int16_t; typedef int int32_t; typedef long int64_t;
typedef unsigned char uint8_t; typedef unsigned short uint16_t; typedef unsigned int uint32_t;
typedef unsigned long uint64_t; typedef long intptr_t; typedef unsigned long uintptr_t;
typedef long intmax_t; typedef unsigned long uintmax_t;
#define INT32_MAX 2147483647
#define INT64_MAX 9223372036854775807L
#define UINT32_MAX 4294967295U
#define UINT64_MAX 18446744073709551615UL
""",
    "stddef.h": """#pragma once
typedef long ptrdiff_t;
#ifndef NULL
#define NULL 0
#endif
#define offsetof(t, m) __builtin_offsetof(t, m)
""",
    "math.h": "#pragma once\n",
}

DEPRECATED_ARCH = re.compile(r"^nvrtc: warning: Architectures prior to .* are deprecated.*$", re.M)


def site_dirs():
    import site
    dirs = list(sys.path)
    try:
        dirs += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:
        pass
    return [d for d in dirs if d and os.path.isdir(d)]


def find_nvrtc():
    if os.environ.get("NVRTC_LIB"):
        return os.environ["NVRTC_LIB"]
    cands = [os.path.join(d, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.12") for d in site_dirs()]
    cands += sorted(glob.glob("/usr/local/cuda-12*/lib64/libnvrtc.so.12"), reverse=True)
    return next((c for c in cands if os.path.exists(c)), None)


def find_cuda_include(nvrtc):
    if os.environ.get("CUDA_INCLUDE"):
        return os.environ["CUDA_INCLUDE"].split()
    # the CUDA 12 headers that belong with this NVRTC: the runtime wheel beside it, or the toolkit's
    base = os.path.dirname(os.path.dirname(os.path.dirname(nvrtc)))
    cands = [os.path.join(base, "cuda_runtime", "include"), os.path.join(os.path.dirname(os.path.dirname(nvrtc)), "include")]
    cands += [os.path.join(d, "nvidia", "cuda_runtime", "include") for d in site_dirs()]
    for c in cands:
        if os.path.exists(os.path.join(c, "cuda_fp16.h")) and os.path.exists(os.path.join(c, "cuda_runtime.h")):
            return [c]
    return None


def find_cuobjdump(nvcc):
    if os.environ.get("CUOBJDUMP"):
        return os.environ["CUOBJDUMP"]
    if nvcc and os.path.exists(os.path.join(os.path.dirname(nvcc), "cuobjdump")):
        return os.path.join(os.path.dirname(nvcc), "cuobjdump")
    if shutil.which("cuobjdump"):
        return shutil.which("cuobjdump")
    for d in site_dirs():
        hits = glob.glob(os.path.join(d, "nvidia", "*", "bin", "cuobjdump"))
        if hits:
            return hits[0]
    return None


class Nvrtc:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)
        n = ctypes.c_int()
        self.check(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(n)), "nvrtcGetNumSupportedArchs")
        archs = (ctypes.c_int * n.value)()
        self.check(self.lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
        self.archs = list(archs)

    def check(self, rc, what):
        if rc != 0:
            raise RuntimeError("%s: %s" % (what, self.lib.nvrtcGetErrorString(rc).decode()))

    def compile(self, src_path, arch, includes):
        """(cubin bytes or None, log)"""
        lib = self.lib
        prog = ctypes.c_void_p()
        names = list(STANDIN_HEADERS)
        heads = (ctypes.c_char_p * len(names))(*[STANDIN_HEADERS[n].encode() for n in names])
        incs = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
        with open(src_path, "rb") as f:
            src = f.read()
        self.check(lib.nvrtcCreateProgram(ctypes.byref(prog), src, src_path.encode(), len(names), heads, incs),
                   "nvrtcCreateProgram")
        try:
            opts = ["--gpu-architecture=sm_%d" % arch, "-std=c++17", "-default-device", "--no-cache"] + ["-I" + d for d in includes]
            copts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
            rc = lib.nvrtcCompileProgram(prog, len(opts), copts)
            size = ctypes.c_size_t()
            self.check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            buf = ctypes.create_string_buffer(size.value)
            self.check(lib.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
            log = DEPRECATED_ARCH.sub("", buf.value.decode(errors="replace")).strip()
            if rc != 0:
                return None, log or lib.nvrtcGetErrorString(rc).decode()
            self.check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self.check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return cubin.raw, log
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


_nvrtc = None


def nvrtc_job(lib_path, src, arch, includes, out):
    """Runs in a worker process: compile src for arch into the file out. (ok, log)"""
    global _nvrtc
    if _nvrtc is None:
        _nvrtc = Nvrtc(lib_path)
    cubin, log = _nvrtc.compile(src, arch, includes)
    if cubin is None:
        return False, log
    with open(out, "wb") as f:
        f.write(cubin)
    return True, log


def nvcc_job(nvcc, src, arch, out):
    cmd = [nvcc, "-cubin", "-arch=sm_%d" % arch, "-std=c++17", "-O3"] + ["-I" + d for d in INCLUDE_DIRS] + [src, "-o", out]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode == 0, p.stdout.strip()


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stdout.strip()))
    return p.stdout


def elf_archs(cuobjdump, path):
    out = run([cuobjdump, "--list-elf", path])
    return re.findall(r"\bsm_(\d+)\.cubin$", out, re.M), out.strip()


def entries(cuobjdump, path):
    """Names of the kernels (ENTRY functions) in a CUBIN, or in every ELF of an object."""
    out = run([cuobjdump, "-symbols", path])
    return {line.split()[-1] for line in out.splitlines() if line.startswith("FUNC") and " ENTRY " in line}


def demangle(names):
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if not tool or not names:
        return list(names)
    p = subprocess.run([tool], input="\n".join(names) + "\n", stdout=subprocess.PIPE, text=True)
    out = p.stdout.splitlines()
    return ["%s  (%s)" % (d, n) for n, d in zip(names, out)] if len(out) == len(names) else list(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archs", nargs="*", type=int, default=[61], help="compute capabilities (default: 61)")
    ap.add_argument("--reference", metavar="DIR",
                    help="nvcc's objects of the same files, DIR/NAME.o, for the reference kernel sets")
    ap.add_argument("--nvcc", default=shutil.which("nvcc"),
                    help="else build the reference with this nvcc (default: nvcc on PATH)")
    ap.add_argument("--source", action="append", metavar="F.cu",
                    help="check this file instead of every kernels_cu/*.cu (repeatable)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    lib = find_nvrtc()
    if not lib:
        sys.exit("check-cuda-archs-nvrtc: no libnvrtc.so.12 (pip install nvidia-cuda-nvrtc-cu12, or set NVRTC_LIB)")
    nv = Nvrtc(lib)
    cuda_inc = find_cuda_include(lib)
    if not cuda_inc:
        sys.exit("check-cuda-archs-nvrtc: no CUDA 12 headers (pip install nvidia-cuda-runtime-cu12, or set CUDA_INCLUDE)")
    cuobjdump = find_cuobjdump(args.nvcc)
    if not cuobjdump:
        sys.exit("check-cuda-archs-nvrtc: no cuobjdump (pip install nvidia-cuda-cuobjdump, or set CUOBJDUMP)")
    missing = [a for a in args.archs if a not in nv.archs]
    if missing:
        sys.exit("check-cuda-archs-nvrtc: NVRTC %d.%d cannot target sm_%s (it supports %s)" %
                 (nv.version[0], nv.version[1], ", sm_".join(map(str, missing)), " ".join(map(str, nv.archs))))
    ref_arch = None
    if not args.reference and args.nvcc:
        listed = run([args.nvcc, "--list-gpu-arch"])
        ok = sorted(int(a) for a in re.findall(r"compute_(\d+)\b", listed))
        ref_arch = next((a for a in sorted(args.archs) if a in ok), ok[0] if ok else None)
    print("nvrtc: %d.%d, %s" % (nv.version[0], nv.version[1], lib))
    print("headers: %s" % " ".join(cuda_inc))
    print("cuobjdump: %s" % cuobjdump)
    if args.reference:
        print("reference kernel sets: nvcc's objects in %s" % args.reference)
    elif ref_arch:
        print("reference kernel sets: %s -cubin -arch=sm_%d" % (args.nvcc, ref_arch))
    else:
        print("reference kernel sets: none (no nvcc): kernel templates are not checked against the host code")
    sys.stdout.flush()

    includes = INCLUDE_DIRS + cuda_inc
    if args.source:
        sources = [os.path.abspath(f) for f in args.source]
    else:
        sources = sorted(glob.glob(os.path.join(ROOT, "kernels_cu", "*.cu")))
    work = tempfile.mkdtemp(prefix="pattn-nvrtc-")
    status = 0
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            jobs = {}
            for src in sources:  # the slowest first would be better; the files are few
                name = os.path.basename(src)[:-3]
                if ref_arch:
                    out = os.path.join(work, "%s.nvcc.cubin" % name)
                    jobs[(name, "ref")] = (out, pool.submit(nvcc_job, args.nvcc, src, ref_arch, out))
                for a in args.archs:
                    os.makedirs(os.path.join(work, str(a)), exist_ok=True)
                    out = os.path.join(work, str(a), name + ".cubin")  # cuobjdump lists it as NAME.sm_A.cubin
                    jobs[(name, a)] = (out, pool.submit(nvrtc_job, lib, src, a, includes, out))
            for src in sources:
                name = os.path.basename(src)[:-3]
                fail, counts, ref = [], [], None
                try:
                    if args.reference:
                        obj = os.path.join(args.reference, name + ".o")
                        if os.path.exists(obj):
                            ref = entries(cuobjdump, obj)
                        else:
                            fail.append("no reference object %s" % obj)
                    elif ref_arch:
                        out, fut = jobs[(name, "ref")]
                        ok, log = fut.result()
                        if ok:
                            ref = entries(cuobjdump, out)
                        else:
                            fail.append("the reference build (nvcc -cubin -arch=sm_%d) failed:\n%s" % (ref_arch, log))
                    for a in args.archs:
                        out, fut = jobs[(name, a)]
                        ok, log = fut.result()
                        if not ok:
                            fail.append("NVRTC cannot compile it for sm_%d:\n%s" % (a, log))
                            continue
                        if log:
                            print("warn %s.cu sm_%d: NVRTC says:\n%s" % (name, a, log))
                        found, listing = elf_archs(cuobjdump, out)
                        if found != [str(a)]:
                            fail.append("not one sm_%d ELF image; cuobjdump --list-elf says:\n%s" % (a, listing))
                            continue
                        got = entries(cuobjdump, out)
                        if not got and not ref:
                            fail.append("the sm_%d CUBIN holds no kernel" % a)
                        elif ref is not None and got != ref:
                            fail.append("the sm_%d CUBIN's kernels are not those of nvcc's build (see common.cuh, "
                                        "\"Under NVRTC\"):%s%s" % (
                                            a, "".join("\n  missing " + k for k in demangle(sorted(ref - got))),
                                            "".join("\n  extra   " + k for k in demangle(sorted(got - ref)))))
                        counts.append("sm_%d (%d kernels)" % (a, len(got)))
                except RuntimeError as e:
                    fail.append(str(e))
                sys.stdout.flush()
                if fail:
                    status = 1
                    for f in fail:
                        print("FAIL %s.cu: %s" % (name, f), file=sys.stderr)
                    sys.stderr.flush()
                else:
                    print("ok   %s.cu: %s%s" % (name, ", ".join(counts), ", as nvcc's build" if ref is not None else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
