#!/usr/bin/env bash
# Build, or reuse from the cache, the emulated Pi for `make e2e-pi`: an arm64 Debian disk image
# for qemu-system-aarch64's `virt` board (cortex-a72), with its kernel and initrd beside it.
#
#   pi-image.sh [SUITE]   bookworm (default: Debian 12, Python 3.11, the base of Raspberry Pi OS
#                         Bookworm) or trixie (Debian 13, Python 3.13: today's Raspberry Pi OS)
#
# Each suite has its own cache directory; building one never touches the other's.
# Prints the cache directory, which holds:
#   rootfs.img          ext4 file system, root=/dev/vda (boot it through a qcow2 overlay)
#   vmlinuz, initrd.img Debian's arm64 kernel and a small initramfs (MODULES=list: virtio + ext4)
#   id_ed25519[.pub]    the throwaway key that logs in as `pi` (passwordless sudo, like Raspberry Pi OS)
#
# The guest: systemd, sshd, networkd (DHCP on qemu's user network), snd-aloop loaded at boot (the
# microphone: play into hw:Loopback,0,0, the daemon captures hw:Loopback,1,0), the board's PL061
# GPIO chip (8 lines; line 3 is the power button) standing in for the Pi's header, and a drop-in
# telling rpi-lgpio which board to pretend to be. The Debian packages the daemon uses are
# preinstalled (apt under full-system emulation took 4-5 minutes per run); the nspawn tests
# cover `make deploy` installing missing ones. The venv and pip install are left to the deploy.
#
# Needs root, mmdebstrap, qemu-user-static (binfmt: registered for the build and removed again if
# this script registered it) and e2fsprogs. 7-15 minutes the first time (qemu-user), cached under
# $WAKEWORD_TESTBED_CACHE (default /var/cache/wakeword-testbed), keyed by this script and the
# host's CA certificates. Test machinery only.
# shellcheck disable=SC2016  # the single-quoted mmdebstrap hooks expand "$1" (the root) themselves
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

suite=${1:-bookworm}
case "$suite" in
  bookworm|trixie) ;;
  *) echo "pi-image: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
esac
packages=(
  systemd systemd-sysv udev kmod dbus libpam-systemd
  linux-image-arm64 initramfs-tools
  openssh-server sudo rsync ca-certificates
  python3 python3-venv python3-systemd python3-pyaudio python3-numpy
  alsa-utils procps iproute2
)
# Only what the VM needs to find its root: the whole build takes minutes instead of half an hour.
initrd_modules=(virtio_pci virtio_blk ext4 crc32c_generic)
key=$(testbed_key "$0" "$here/common.sh" -- "$suite" "${packages[@]}" "${initrd_modules[@]}")
cache=$(testbed_cache_dir)
out=$cache/pi-$suite-arm64-$key
testbed_cached "$out" && exit 0
testbed_can_build pi-image "the emulated Pi" "make setup-test installs it" mmdebstrap mkfs.ext4 qemu-aarch64-static || exit 1

registered_here=no
binfmt_on() {
  # mmdebstrap runs the arm64 maintainer scripts through qemu-user: the kernel must know how.
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
    registered_here=yes
  fi
}
binfmt_off() {
  if [ "$registered_here" = yes ]; then echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64; fi
}

tmp=$(mktemp -d "$cache/.pi-build.XXXXXX")
trap 'binfmt_off; rm -rf "$tmp"' EXIT
binfmt_on
ssh-keygen -q -t ed25519 -N '' -C wakeword-emulated-pi -f "$tmp/id_ed25519"
mapfile -t mirror < <(testbed_sources "$suite" "$tmp")
mapfile -t hooks < <(
  testbed_hostname_hooks pibox
  testbed_user_hooks pi sudo,audio
  testbed_sshd_hooks all
  testbed_mask_hooks apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer
)
echo "pi-image: building $out (first run only, 7-15 minutes)" >&2
t0=$(date +%s)
testbed_mmdebstrap --arch=arm64 --variant=minbase "$(testbed_include "${packages[@]}")" --dpkgopt='force-confold' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
  --essential-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/testbed.conf"' \
  --essential-hook="printf '%s\n' ${initrd_modules[*]} > \"\$1/etc/initramfs-tools/modules\"" \
  "${hooks[@]}" \
  --customize-hook='echo "/dev/vda / ext4 defaults,noatime 0 1" > "$1/etc/fstab"' \
  --customize-hook='printf "[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n" > "$1/etc/systemd/network/10-eth0.network"' \
  --customize-hook='echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
  --customize-hook='chroot "$1" systemctl enable -q systemd-networkd' \
  --customize-hook='echo snd-aloop > "$1/etc/modules-load.d/snd-aloop.conf"' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/wakeword.service.d"' \
  --customize-hook='printf "# The emulated board is no Pi: tell rpi-lgpio to act as a Pi 5 on gpiochip0 (the PL061).\n[Service]\nEnvironment=RPI_LGPIO_REVISION=c04170 RPI_LGPIO_CHIP=0\n" > "$1/etc/systemd/system/wakeword.service.d/emulated-pi.conf"' \
  --customize-hook="mkdir -p \"\$1/home/pi/.ssh\"; cp '$tmp/id_ed25519.pub' \"\$1/home/pi/.ssh/authorized_keys\"; chroot \"\$1\" chown -R pi:pi /home/pi/.ssh" \
  "$suite" "$tmp/root" "${mirror[@]}"
cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
cp "$tmp"/root/boot/initrd.img-* "$tmp/initrd.img"
mkfs.ext4 -q -L root -d "$tmp/root" "$tmp/rootfs.img" 4G
rm -rf "$tmp/root"
testbed_install pi-image "$t0" "$tmp" "$out"
trap binfmt_off EXIT
echo "$out"
