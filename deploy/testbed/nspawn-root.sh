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
testbed_cached "$out" && exit 0
testbed_can_build nspawn-root "the test root" "apt-get install mmdebstrap" mmdebstrap || exit 1

tmp=$(mktemp -d "$cache/.nspawn-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mapfile -t hooks < <(
  testbed_hostname_hooks pibox-ns
  testbed_user_hooks pi sudo,audio
  testbed_sshd_hooks loopback
  testbed_mask_hooks apt-daily.timer apt-daily-upgrade.timer console-getty.service getty@.service
)
echo "nspawn-root: building $out (first run only, about a minute)" >&2
t0=$(date +%s)
testbed_mmdebstrap --variant=minbase "$(testbed_include "${packages[@]}")" "${hooks[@]}" \
  --customize-hook='chroot "$1" install -d -m 0700 -o pi -g pi /home/pi/.ssh' \
  "$suite" "$tmp/root" "$(testbed_mirror)"
testbed_install nspawn-root "$t0" "$tmp/root" "$out"
echo "$out"
