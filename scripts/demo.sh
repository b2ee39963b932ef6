#!/usr/bin/env bash
# demo.sh: the replicated order book demo behind `make demo`. Three replicas,
# a stream of orders, the leader crashed mid-stream; prints the failover time
# and checks that every acknowledged order survived on identical replicas.
#
# Where it runs, in order of preference, and it says which it used:
#   1. Soft-RoCE natively: this kernel has an RDMA device, or rdma_rxe can be
#      loaded (scripts/softroce/run brings rxe0 up and down);
#   2. Soft-RoCE inside a throwaway QEMU VM (scripts/softroce/vm-run), when
#      the kernel has no RDMA but QEMU is installed (scripts/deps.sh installs it);
#   3. the in-process fabric (rdma/inproc), when neither can be had or the VM
#      fails to boot.
# MU_DEMO_FABRIC=inproc|verbs|vm forces one; extra arguments go to `mu demo`.
# Inside the emulated VM the nodes run with timings for a machine ~100x
# slower than hardware (MU_DEMO_VM_FLAGS overrides them): they sleep when
# idle, read heartbeats every 20 ms, and bound each leader-change step by
# 500 ms, because three spinning nodes starve an emulated 2-CPU guest and
# the detector then suspects everyone.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mu=build/mu
[ -x "$mu" ] || { echo "demo: $mu is missing; build it with: go build -o $mu ./cmd/mu" >&2; exit 2; }
sr=scripts/softroce
choice=${MU_DEMO_FABRIC:-auto}

inproc() {
  local why=$1; shift
  echo "demo: running on the IN-PROCESS fabric (rdma/inproc: one process, no RDMA device; $why)"
  exec "$mu" demo --fabric inproc "$@"
}

has_device() { compgen -G "/sys/class/infiniband/*" >/dev/null; }
can_load_rxe() { [ "$(id -u)" -eq 0 ] && modinfo rdma_rxe >/dev/null 2>&1; }

if [ "$choice" = inproc ]; then
  inproc "asked for with MU_DEMO_FABRIC=inproc" "$@"
fi
if [ "$choice" = auto ] || [ "$choice" = verbs ]; then
  if has_device; then
    echo "demo: running on Soft-RoCE NATIVELY (RDMA devices: $(ls /sys/class/infiniband | tr '\n' ' '))"
    exec "$sr/run" -- "$mu" demo --fabric verbs "$@"
  elif can_load_rxe; then
    echo "demo: running on Soft-RoCE NATIVELY (loading rdma_rxe and binding rxe0 with scripts/softroce/up)"
    exec "$sr/run" -- "$mu" demo --fabric verbs "$@"
  elif [ "$choice" = verbs ]; then
    echo "demo: MU_DEMO_FABRIC=verbs but this kernel has no RDMA device and cannot load rdma_rxe" >&2
    exit 1
  fi
fi
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  echo "demo: this kernel has no RDMA; running on Soft-RoCE INSIDE A THROWAWAY VM (QEMU ${SOFTROCE_ACCEL:-tcg}, rxe0 on the guest's eth0)"
  echo "demo: (the VM is emulated, so latencies are far above real hardware; booting takes a few seconds)"
  # shellcheck disable=SC2086
  "$sr/vm-run" --timeout "${MU_DEMO_VM_TIMEOUT:-900}" -- "$mu" demo --fabric verbs \
    ${MU_DEMO_VM_FLAGS:---drive idle-sleep --read-interval 20ms --permission-timeout 500ms --before 500 --after 300} "$@"
  rc=$?
  case $rc in
  0) echo "demo: ran on Soft-RoCE inside the VM"; exit 0 ;;
  125) inproc "the Soft-RoCE VM failed to start (vm-run status 125)" "$@" ;;
  *) echo "demo: the demo on Soft-RoCE inside the VM FAILED (status $rc)" >&2; exit "$rc" ;;
  esac
fi
inproc "no RDMA in this kernel and QEMU is not installed (scripts/deps.sh installs it)" "$@"
