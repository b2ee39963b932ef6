# Functions of scripts/softroce/cluster: a group of Soft-RoCE VMs, one
# kernel each, joined by a QEMU multicast socket network. Sourced after
# lib.sh, not executed. See docs/jepsen.md.

# sc_cache_dir prints the cache vm-run fills (same rule as vm-run).
sc_cache_dir() {
  local c=${SOFTROCE_CACHE:-}
  if [ -z "$c" ]; then
    c=/var/cache/mu-softroce
    if [ ! -w "$c" ]; then
      c=${XDG_CACHE_HOME:-$HOME/.cache}/mu-softroce
    fi
  fi
  echo "$c"
}

# sc_prepare_kernel makes sure vm-run's cache holds a kernel and an
# initramfs (one throwaway `vm-run -- true`), then sets sc_entry, sc_kernel
# and sc_initrd.
sc_prepare_kernel() {
  local cache
  cache=$(sc_cache_dir)
  if [ ! -f "$cache/current" ] || ! ls "$cache/$(cat "$cache/current")"/initrd-*.img >/dev/null 2>&1; then
    sr_note "preparing the VM kernel and initramfs (vm-run -- true)"
    SOFTROCE_MEM=256 SOFTROCE_SMP=1 "$sc_here/vm-run" --timeout 600 -- true >/dev/null ||
      sr_die "vm-run could not boot a VM"
  fi
  sc_entry=$cache/$(cat "$cache/current")
  sc_kernel=$sc_entry/vmlinuz
  [ "${SOFTROCE_PVH:-1}" = 1 ] && [ -f "$sc_entry/vmlinux-pvh" ] && sc_kernel=$sc_entry/vmlinux-pvh
  # vm-run keeps only the newest initramfs of a kernel.
  sc_initrd=$(ls -t "$sc_entry"/initrd-*.img 2>/dev/null | head -n1)
  [ -n "$sc_initrd" ] || sr_die "no initramfs in $sc_entry"
}

# Netfilter and netem modules for the fault injector. The guest's
# initramfs does not carry them; they are cut once from the same kernel
# package into $sc_entry/cluster-modules and loaded by the guest agent
# (insmod by path, in the order file) before it reports ready.
sc_extra_modules=(x_tables ip_tables iptable_filter xt_tcpudp sch_netem)

sc_prepare_modules() {
  local dir=$sc_entry/cluster-modules
  sc_mods=$dir
  [ -f "$dir/order" ] && return 0
  local pkg ver build kver m deps kind path base ko
  read -r pkg ver < "$sc_entry/package" || sr_die "no $sc_entry/package"
  sr_note "extracting ${sc_extra_modules[*]} from $pkg $ver (once)"
  build=$(mktemp -d "${TMPDIR:-/tmp}/mu-cluster-mods.XXXXXX") || sr_die "mktemp failed"
  (cd "$build" && apt-get download -o APT::Sandbox::User=root -qq "$pkg=$ver") ||
    { rm -rf "$build"; sr_die "apt-get download $pkg=$ver failed"; }
  dpkg -x "$build"/"$pkg"_*.deb "$build/x" || { rm -rf "$build"; sr_die "dpkg -x failed"; }
  kver=$(cat "$sc_entry/kver")
  depmod -b "$build/x" "$kver" || { rm -rf "$build"; sr_die "depmod failed"; }
  mkdir -p "$build/m"
  : > "$build/m/order"
  for m in "${sc_extra_modules[@]}"; do
    deps=$(modprobe -d "$build/x" -S "$kver" --show-depends "$m" 2>&1) ||
      { rm -rf "$build"; sr_die "module $m not in $pkg: $deps"; }
    while read -r kind path _; do
      [ "$kind" = insmod ] || continue
      base=$(basename "$path")
      ko=${base%%.ko*}.ko
      grep -qx "$ko" "$build/m/order" && continue
      # Modules the initramfs already loads are skipped.
      grep -qx "$ko" "$sc_entry/modules/order" && continue
      case "$base" in
      *.ko) cp "$path" "$build/m/$ko" ;;
      *.ko.xz) xz -dc "$path" > "$build/m/$ko" ;;
      *.ko.zst) zstd -qdc "$path" > "$build/m/$ko" ;;
      *.ko.gz) gzip -dc "$path" > "$build/m/$ko" ;;
      esac || { rm -rf "$build"; sr_die "cannot copy $path"; }
      echo "$ko" >> "$build/m/order"
    done <<< "$deps"
  done
  rm -rf "$dir"
  mv "$build/m" "$dir" || sr_die "cannot move modules into $dir"
  rm -rf "$build"
}

# sc_free_port prints an unused loopback TCP port.
sc_free_port() {
  python3 - <<'EOF' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

# sc_boot_vm I: starts VM I (1-based) in the background. Its RoCE NIC
# (eth0, the first virtio-net) is on the shared multicast backend with MAC
# 52:54:00:6d:75:0I and address 10.77.0.I; its second NIC (eth1) is user
# networking whose forwarded ports carry the agent's control channel and
# the client endpoint (sc_ctl_port[I], sc_cli_port[I]).
sc_boot_vm() {
  local i=$1 run=$sc_dir/vm$i
  mkdir -p "$run" || sr_die "mkdir $run"
  rm -f "$run/status" "$run/agent.log"
  local ctl cli
  ctl=$(sc_free_port) cli=$(sc_free_port)
  sc_ctl_port[i]=$ctl sc_cli_port[i]=$cli
  {
    echo "GUEST_IP=10.77.0.$i"
    echo "GUEST_GW=10.77.0.254"
    printf "RW_SHARES='rw0 %s '\n" "$sc_work"
  } > "$run/config"
  {
    echo "export HOME=/tmp/home; mkdir -p \"\$HOME\""
    printf 'export PATH=%q\n' "$PATH:/usr/local/sbin:/usr/sbin:/sbin"
    echo "export MU_REQUIRE_RDMA=1 SOFTROCE_VM=1 GOTRACEBACK=all"
    echo "ip addr add 10.0.2.15/24 dev eth1 && ip link set eth1 up || exit 120"
    printf 'exec %q agent --id %d --listen 10.0.2.15:7300 --proxy 10.0.2.15:7301=10.77.0.%d:7201 --modules %q --dir %q\n' \
      "$sc_agent" "$i" "$i" "$sc_mods" "$sc_dir/vm$i"
  } > "$run/job.sh"
  local mac
  mac=$(printf '52:54:00:6d:75:%02x' "$i")
  # The RoCE NIC comes first so that the guest names it eth0, which its
  # init puts rxe0 on.
  timeout -k 10 "$sc_timeout" qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
    -machine pc "${sc_accel[@]}" -smp "$sc_smp" -m "$sc_mem" \
    -kernel "$sc_kernel" -initrd "$sc_initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off cryptomgr.notests no_timer_check rdinit=/init" \
    -serial "file:$run/console.log" -monitor none \
    -netdev "socket,id=n1,mcast=$sc_mcast,localaddr=127.0.0.1" \
    -device "virtio-net-pci,netdev=n1,mac=$mac,romfile=" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$ctl-10.0.2.15:7300,hostfwd=tcp:127.0.0.1:$cli-10.0.2.15:7301" \
    -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:$(printf '%02x' "$i"),romfile=" \
    -device virtio-rng-pci \
    -fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
    -fsdev "local,id=run,path=$run,security_model=none" \
    -device virtio-9p-pci,fsdev=run,mount_tag=murun \
    -fsdev "local,id=rw0,path=$sc_work,security_model=none,multidevs=remap" \
    -device virtio-9p-pci,fsdev=rw0,mount_tag=rw0 \
    -device virtio-serial-pci \
    -chardev "file,id=out,path=$run/agent.log" \
    -device virtserialport,chardev=out,name=mu.out \
    < /dev/null > "$run/qemu.log" 2>&1 &
  sc_pid[i]=$!
}

# sc_wait_ready I: waits until VM I's agent answers. A VM that stops or
# hangs during boot (a loaded TCG host can fail the kernel's early timer
# checks) is booted again, up to SOFTROCE_BOOT_ATTEMPTS (3) times.
sc_wait_ready() {
  local i=$1 attempt=1
  until sc_wait_ready_once "$i"; do
    attempt=$((attempt + 1))
    [ "$attempt" -le "${SOFTROCE_BOOT_ATTEMPTS:-3}" ] || sr_die "VM $i did not boot in ${SOFTROCE_BOOT_ATTEMPTS:-3} attempts"
    sr_note "booting VM $i again (attempt $attempt)"
    kill -TERM "${sc_pid[i]}" 2>/dev/null
    wait "${sc_pid[i]}" 2>/dev/null
    sc_boot_vm "$i"
  done
}

sc_wait_ready_once() {
  local i=$1 t0=$SECONDS
  while :; do
    if [ -s "$sc_dir/vm$i/status" ] && ! grep -qx running "$sc_dir/vm$i/status"; then
      tail -n 20 "$sc_dir/vm$i/console.log" >&2
      sr_note "VM $i stopped: $(cat "$sc_dir/vm$i/status")"
      return 1
    fi
    kill -0 "${sc_pid[i]}" 2>/dev/null || {
      tail -n 3 "$sc_dir/vm$i/console.log" "$sc_dir/vm$i/qemu.log" >&2
      sr_note "VM $i's qemu exited during boot"
      return 1
    }
    grep -q '^agent ready' "$sc_dir/vm$i/agent.log" 2>/dev/null && return 0
    [ $((SECONDS - t0)) -lt "$sc_boot_timeout" ] || {
      tail -n 5 "$sc_dir/vm$i/console.log" "$sc_dir/vm$i/agent.log" >&2
      sr_note "VM $i not ready within ${sc_boot_timeout}s"
      return 1
    }
    sleep 0.5
  done
}

# sc_teardown stops every VM this cluster started.
sc_teardown() {
  local i
  for i in "${!sc_pid[@]}"; do
    kill -TERM "${sc_pid[i]}" 2>/dev/null
  done
  for i in "${!sc_pid[@]}"; do
    wait "${sc_pid[i]}" 2>/dev/null
  done
  sc_pid=()
}
