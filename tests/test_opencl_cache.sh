#!/bin/sh
# The OpenCL kernel binary cache (DESIGN.md "Kernels"): with a fresh cache directory the first
# process builds its programs; a second process builds none and loads every one from the
# cache (shown by PATTN_LOG=debug); a truncated entry is rebuilt and replaced.
#   usage: test_opencl_cache.sh TEST-CONFORMANCE
# Exit 77 (skip) when the OpenCL backend is not available, as the conformance runner says.
set -u
prog=$1
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
export PATTN_BACKEND=opencl PATTN_CACHE_DIR=$dir PATTN_LOG=debug PATTN_CONF_FILTER=lrpe_forward

run() { "$prog" > "$dir/log" 2>&1; rc=$?; }

run
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { cat "$dir/log"; echo "FAIL: first run exited $rc"; exit 1; }
built=$(grep -c "opencl: built program" "$dir/log")
[ "$built" -gt 0 ] || { cat "$dir/log"; echo "FAIL: the first run built no program"; exit 1; }
ls "$dir"/*.clbin > /dev/null 2>&1 || { echo "FAIL: nothing was cached in $dir"; exit 1; }

run
[ $rc -eq 0 ] || { cat "$dir/log"; echo "FAIL: second run exited $rc"; exit 1; }
if grep -q "opencl: built program" "$dir/log"; then
  grep "opencl: built program" "$dir/log"; echo "FAIL: a warm cache still built programs"; exit 1
fi
loaded=$(grep -c "opencl: loaded program .* from cache" "$dir/log")
[ "$loaded" -eq "$built" ] || { echo "FAIL: built $built programs, loaded $loaded from the cache"; exit 1; }

# corrupt one entry: it must be rebuilt, replaced, and the results still pass
entry=$(ls "$dir"/*.clbin | head -n 1)
head -c 16 "$entry" > "$entry.tmp" && mv "$entry.tmp" "$entry"
run
[ $rc -eq 0 ] || { cat "$dir/log"; echo "FAIL: run with a truncated entry exited $rc"; exit 1; }
grep -q "invalid; rebuilding" "$dir/log" || { cat "$dir/log"; echo "FAIL: the truncated entry was not rebuilt"; exit 1; }
[ "$(wc -c < "$entry")" -gt 16 ] || { echo "FAIL: the truncated entry was not replaced"; exit 1; }
echo "kernel cache: $built programs built, then all $loaded loaded from the cache; a truncated entry was rebuilt"
