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
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "pi-image: building the emulated Pi needs root" >&2; exit 1; }
for tool in mmdebstrap mkfs.ext4 qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "pi-image: $tool is missing (make setup-test installs it)" >&2; exit 1; }
done

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
mapfile -t ca_hooks < <(testbed_ca_hooks)
mapfile -t mirror < <(testbed_sources "$suite" "$tmp")
echo "pi-image: building $out (first run only, 7-15 minutes)" >&2
t0=$(date +%s)
mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=directory --quiet \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='force-confold' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
  --essential-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/testbed.conf"' \
  --essential-hook="printf '%s\n' ${initrd_modules[*]} > \"\$1/etc/initramfs-tools/modules\"" \
  "${ca_hooks[@]}" \
  --customize-hook='echo pibox > "$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 pibox\n" > "$1/etc/hosts"' \
  --customize-hook='echo "/dev/vda / ext4 defaults,noatime 0 1" > "$1/etc/fstab"' \
  --customize-hook='printf "[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n" > "$1/etc/systemd/network/10-eth0.network"' \
  --customize-hook='echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
  --customize-hook='chroot "$1" systemctl enable -q systemd-networkd' \
  --customize-hook='echo snd-aloop > "$1/etc/modules-load.d/snd-aloop.conf"' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/wakeword.service.d"' \
  --customize-hook='printf "# The emulated board is no Pi: tell rpi-lgpio to act as a Pi 5 on gpiochip0 (the PL061).\n[Service]\nEnvironment=RPI_LGPIO_REVISION=c04170 RPI_LGPIO_CHIP=0\n" > "$1/etc/systemd/system/wakeword.service.d/emulated-pi.conf"' \
  --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo,audio pi' \
  --customize-hook='echo "pi ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/010_pi-nopasswd"; chmod 0440 "$1/etc/sudoers.d/010_pi-nopasswd"' \
  --customize-hook="mkdir -p \"\$1/home/pi/.ssh\"; cp '$tmp/id_ed25519.pub' \"\$1/home/pi/.ssh/authorized_keys\"; chroot \"\$1\" chown -R pi:pi /home/pi/.ssh" \
  --customize-hook='printf "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/10-testbed.conf"' \
  --customize-hook='for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  "$suite" "$tmp/root" "${mirror[@]}"
cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
cp "$tmp"/root/boot/initrd.img-* "$tmp/initrd.img"
mkfs.ext4 -q -L root -d "$tmp/root" "$tmp/rootfs.img" 4G
rm -rf "$tmp/root"
touch "$tmp/.complete"
echo "pi-image: built in $(( $(date +%s) - t0 )) s" >&2
for old in "$cache"/pi-$suite-arm64-*; do  # earlier builds of other versions of this script
  if [ -d "$old" ] && [ "$old" != "$out" ]; then rm -rf "$old"; fi
done
rm -rf "$out"
mv "$tmp" "$out"
trap binfmt_off EXIT
echo "$out"
