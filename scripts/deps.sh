#!/usr/bin/env bash
# Install what mu builds and tests with, from Debian's archive and the Go
# module proxy. Idempotent and quiet when everything is present.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libibverbs-dev rdma-core ibverbs-providers ibverbs-utils perftest \
         qemu-system-x86 busybox-static kmod cpio xz-utils iproute2 sqlite3; do
  have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go mod download
