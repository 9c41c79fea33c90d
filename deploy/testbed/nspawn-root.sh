#!/usr/bin/env bash
# Build, or reuse from the cache, the amd64 Debian root that the deploy tests boot with
# `systemd-nspawn --boot`: systemd as PID 1, journald, sshd, and a `pi` user with passwordless sudo
# like Raspberry Pi OS's first user. Prints the root's path.
#
# The root lacks python3-systemd on purpose: `make deploy` must install missing Debian packages,
# as on a fresh Pi. Cached under $WAKEWORD_TESTBED_CACHE (default /var/cache/wakeword-testbed),
# keyed by this script, its package list and the host's CA certificates; the first build takes
# about a minute. Needs root and mmdebstrap. Test machinery only.
# shellcheck disable=SC2016  # the single-quoted mmdebstrap hooks expand "$1" (the root) themselves
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

suite=bookworm
packages=(
  systemd systemd-sysv dbus libpam-systemd   # a booted system with logind, as on a Pi
  openssh-server sudo rsync ca-certificates  # reached like a Pi: ssh + rsync + sudo
  python3 python3-venv python3-numpy python3-pyaudio libasound2
  alsa-utils procps
)
key=$(testbed_key "$0" "$here/common.sh" -- "$suite" "${packages[@]}")
cache=$(testbed_cache_dir)
out=$cache/nspawn-$suite-amd64-$key
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "nspawn-root: building the test root needs root" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "nspawn-root: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

tmp=$(mktemp -d "$cache/.nspawn-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mapfile -t ca_hooks < <(testbed_ca_hooks)
echo "nspawn-root: building $out (first run only, about a minute)" >&2
mmdebstrap --variant=minbase --mode=root --format=directory --quiet \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "${ca_hooks[@]}" \
  --customize-hook='echo pibox-ns > "$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 pibox-ns\n" > "$1/etc/hosts"' \
  --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo,audio pi' \
  --customize-hook='chroot "$1" install -d -m 0700 -o pi -g pi /home/pi/.ssh' \
  --customize-hook='echo "pi ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/010_pi-nopasswd"' \
  --customize-hook='chmod 0440 "$1/etc/sudoers.d/010_pi-nopasswd"' \
  --customize-hook='printf "%s\n" "ListenAddress 127.0.0.1" "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UseDNS no" > "$1/etc/ssh/sshd_config.d/10-testbed.conf"' \
  --customize-hook='for u in apt-daily.timer apt-daily-upgrade.timer console-getty.service getty@.service; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  "$suite" "$tmp/root" "$(testbed_mirror)"
touch "$tmp/root/.complete"
for old in "$cache"/nspawn-$suite-amd64-*; do  # earlier builds of other versions of this script
  if [ -d "$old" ] && [ "$old" != "$out" ]; then rm -rf "$old"; fi
done
rm -rf "$out"
mv "$tmp/root" "$out"
echo "$out"
