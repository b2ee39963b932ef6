#!/usr/bin/env bash
# run-rdma-tests.sh DIR: run every Go test binary DIR/*.test (built on the host
# with `go test -c`) on the RDMA device of this machine, each from the source
# directory of its package, and print one summary line "N passed, N failed"
# counting binaries. A binary's name is its package path relative to the
# module root with "/" replaced by "_": cgo_verbs.test runs in ./cgo/verbs.
#
# Exits non-zero when any binary fails or DIR holds none. Extra arguments
# after DIR are passed to every binary (e.g. -test.run=Write). A file
# DIR/NAME.run holds a -test.run pattern for that binary alone: packages whose
# host tests already ran on the host run only their device tests here.
# Run it through scripts/softroce/run, which provides the device and sets
# MU_REQUIRE_RDMA=1 so tests fail rather than skip when the device is absent.
set -uo pipefail

prog=run-rdma-tests
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [TEST-FLAGS...]" >&2
  exit 2
fi
dir=$1
shift
[ -d "$dir" ] || { echo "$prog: $dir is not a directory" >&2; exit 2; }
dir=$(cd "$dir" && pwd -P)

root=$(git rev-parse --show-toplevel 2>/dev/null || pwd -P)

shopt -s nullglob
bins=("$dir"/*.test)
if [ ${#bins[@]} -eq 0 ]; then
  echo "$prog: no *.test binaries in $dir (build them with 'make rdma-tests')" >&2
  echo "0 passed, 0 failed"
  exit 1
fi

echo "=== RDMA devices"
if command -v rdma >/dev/null 2>&1; then
  rdma link show 2>&1 | sed 's/^/    /'
fi
if command -v ibv_devices >/dev/null 2>&1; then
  ibv_devices 2>&1 | sed 's/^/    /'
else
  ls /sys/class/infiniband 2>&1 | sed 's/^/    /'
fi
echo "    MU_REQUIRE_RDMA=${MU_REQUIRE_RDMA:-}"

passed=0 failed=0
failures=()
for bin in "${bins[@]}"; do
  name=$(basename "$bin" .test)
  rel=${name//_//}
  if [ ! -d "$root/$rel" ]; then
    # A directory name with "_" in it: find the directory that maps to name.
    while IFS= read -r d; do
      d=${d#"$root"/}
      [ "${d//\//_}" = "$name" ] && { rel=$d; break; }
    done < <(find "$root" -path "$root/.git" -prune -o -path "$root/build" -prune -o -type d -print)
  fi
  pkgdir=$root/$rel
  if [ ! -d "$pkgdir" ]; then
    echo "--- FAIL: $name: no package directory $pkgdir for this binary"
    failed=$((failed + 1))
    failures+=("$name")
    continue
  fi
  echo "=== BINARY $name (in ./$rel)"
  start=$(date +%s.%N)
  only=()
  [ -f "$dir/$name.run" ] && only=("-test.run=$(cat "$dir/$name.run")")
  (cd "$pkgdir" && "$bin" -test.v -test.count=1 "${only[@]}" "$@")
  rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.3f", e - s }')
  if [ "$rc" -eq 0 ]; then
    echo "ok  	./$rel	${secs}s"
    passed=$((passed + 1))
  else
    echo "FAIL	./$rel	${secs}s (exit status $rc)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
done

[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
