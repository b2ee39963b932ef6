# Functions shared by the Soft-RoCE scripts. Sourced, not executed.

sr_prog=${sr_prog:-$(basename "$0")}

sr_die() {
  echo "$sr_prog: $*" >&2
  exit 1
}

sr_note() {
  echo "$sr_prog: $*" >&2
}

sr_is_root() { [ "$(id -u)" -eq 0 ]; }

sr_pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# sr_install PKG... installs the Debian packages that are missing. It needs
# root (or sudo without a password) and runs `apt-get update` when the first
# attempt fails, since a fresh machine often has no package lists yet.
sr_install() {
  local need=() p installed
  # One dpkg-query for all: this runs on every vm-run.
  installed=" $(dpkg-query -W -f='${Package}:${Status}\n' "$@" 2>/dev/null |
    awk -F: '/install ok installed/ { printf "%s ", $1 }')"
  for p in "$@"; do
    [[ $installed == *" $p "* ]] || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 ||
    sr_die "missing packages ${need[*]} and no apt-get to install them; install them by hand"
  local sudo=()
  if ! sr_is_root; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      sr_die "missing packages ${need[*]}; run as root (or with passwordless sudo) so they can be installed, or install them by hand"
    fi
  fi
  sr_note "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq >/dev/null ||
      sr_die "apt-get update failed; cannot install ${need[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
      sr_die "apt-get install ${need[*]} failed"
  fi
}

# sr_rxe_devices prints the names of this kernel's rxe devices, one a line:
# the RDMA devices with a "parent" attribute (the netdev rxe is bound to),
# which hardware devices do not have.
sr_rxe_devices() {
  local d
  for d in /sys/class/infiniband/*; do
    [ -e "$d" ] || continue
    if [ -r "$d/parent" ] || [[ $(basename "$d") == rxe* ]]; then
      basename "$d"
    fi
  done
}

# sr_kernel_has_rxe: 0 when rdma_rxe is loaded, built in, or loadable.
sr_kernel_has_rxe() {
  [ -d /sys/module/rdma_rxe ] && return 0
  local kver
  kver=$(uname -r)
  [ -f "/lib/modules/$kver/modules.builtin" ] &&
    grep -q '/rdma_rxe\.ko' "/lib/modules/$kver/modules.builtin" && return 0
  command -v modinfo >/dev/null 2>&1 && modinfo rdma_rxe >/dev/null 2>&1 && return 0
  return 1
}

# sr_make_disk IMG MIB creates IMG, a sparse raw image of MIB MiB holding an
# empty ext4 file system, for the VM's scratch virtio-blk disk. The inode
# tables and the journal are written now (cheap on the host) rather than
# lazily by the guest kernel, whose background zeroing would sit under the
# latencies measured on the disk.
sr_make_disk() {
  local img=$1 mib=$2 mkfs
  mkfs=$(PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4) ||
    sr_die "mkfs.ext4 not found (package e2fsprogs); SOFTROCE_DISK_MB=0 runs without the scratch disk"
  rm -f "$img"
  truncate -s "${mib}M" "$img" || sr_die "cannot create the disk image $img"
  "$mkfs" -q -F -m 0 -L mu-scratch -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$img" ||
    sr_die "mkfs.ext4 on $img failed"
}

# sr_usage prints the comment block at the top of the calling script.
sr_usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}
