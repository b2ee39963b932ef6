#!/usr/bin/env bash
# Install what mu builds and tests with, from Debian's archive and the Go
# module proxy. Idempotent and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Build: make, a C compiler and libibverbs headers for cgo/verbs (without gcc
# cgo is silently disabled and the verbs binding compiles as a stub).
# Soft-RoCE VM: qemu, busybox, kmod, cpio, xz; RDMA user space and perftest.
# prometheus: its promtool checks deploy/'s alerting rules (make test-alerts).
# tmux: the test that drives `mu status --watch` in a terminal reads its screen.
for p in make gcc libc6-dev pkg-config curl unzip ca-certificates \
         libibverbs-dev rdma-core ibverbs-providers ibverbs-utils perftest \
         qemu-system-x86 busybox-static kmod cpio xz-utils iproute2 smartmontools \
         prometheus tmux; do
  have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go: the version go.mod names. Debian 12 ships 1.19, which cannot switch
# toolchains, so a missing or too-old go is replaced by the official toolchain
# module from the Go module proxy.
want=$(awk '/^go /{print $2; exit}' go.mod)
gover() { go env GOVERSION 2>/dev/null | sed 's/^go//'; }
older() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" != "$2" ]; }
export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null 2>&1 || older "$(gover)" "$want"; then
  ver=${MU_GO_VERSION:-1.26.8}
  proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
  url="$proxy/golang.org/toolchain/@v/v0.0.1-go$ver.linux-amd64.zip"
  echo "deps: installing Go $ver from the module proxy into /usr/local/go"
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" "$url"
  unzip -q "$tmp/go.zip" -d "$tmp"
  $sudo rm -rf /usr/local/go
  $sudo mv "$tmp/golang.org/toolchain@v0.0.1-go$ver.linux-amd64" /usr/local/go
  $sudo chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
  rm -rf "$tmp"
fi
go mod download
(cd bench && go mod download)
