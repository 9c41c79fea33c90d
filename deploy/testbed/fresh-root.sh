#!/usr/bin/env bash
# Build, or reuse from the cache, the root of a freshly installed workstation for the fresh-system
# tier (`make fresh-systems`, deploy/testbed/fresh.py), booted with `systemd-nspawn --boot`:
#
#   fresh-root.sh DISTRO    bookworm (Debian 12), trixie (Debian 13) or noble (Ubuntu 24.04)
#
# What an installation with the standard system utilities has (mmdebstrap --variant=standard:
# every package of priority required, important and standard, which brings python3 and systemd),
# plus sudo and git, and a user `tester` in group sudo with passwordless sudo. Nothing else: no
# make, no compiler, no python3-venv -- what the README's commands need beyond that they must
# install or name themselves. The package lists stay (an installed system has them, so
# `sudo apt-get install` works at once); the apt timers are masked so that no background apt run
# holds the dpkg lock during a measurement. Prints the root's path.
#
# Cached under $WAKEWORD_TESTBED_CACHE (default /var/cache/wakeword-testbed), keyed by this
# script, common.sh, the distro and the host's CA certificates (copied in, so that pip and apt
# inside reach the registries as the host does). Needs root and mmdebstrap; noble needs the Ubuntu
# archive ($WAKEWORD_UBUNTU_MIRROR). 2-5 minutes the first time. Test machinery only.
# shellcheck disable=SC2016  # the single-quoted mmdebstrap hooks expand "$1" (the root) themselves
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

distro=${1:-}
case "$distro" in
  bookworm|trixie|noble) ;;
  *) echo "fresh-root: unknown distro '$distro' (bookworm, trixie or noble)" >&2; exit 2 ;;
esac
user=tester
packages=(sudo git)
key=$(testbed_key "$0" "$here/common.sh" -- "$distro" "${packages[@]}" "$user" "${WAKEWORD_UBUNTU_MIRROR:-}")
cache=$(testbed_cache_dir)
out=$cache/fresh-$distro-amd64-$key
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "fresh-root: building the root needs root" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "fresh-root: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

tmp=$(mktemp -d "$cache/.fresh-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mapfile -t ca_hooks < <(testbed_ca_hooks)
mapfile -t keyring < <(testbed_keyring "$distro")
mapfile -t mirror < <(testbed_sources "$distro" "$tmp")
echo "fresh-root: building $out (first run only, a few minutes)" >&2
t0=$(date +%s)
mmdebstrap --variant=standard --mode=root --format=directory --quiet --skip=cleanup/apt/lists \
  --include="$(IFS=,; echo "${packages[*]}")" "${keyring[@]}" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "${ca_hooks[@]}" \
  --customize-hook="echo fresh-$distro > \"\$1/etc/hostname\"" \
  --customize-hook="printf '127.0.0.1 localhost\n127.0.1.1 fresh-$distro\n' > \"\$1/etc/hosts\"" \
  --customize-hook="chroot \"\$1\" useradd -m -s /bin/bash -G sudo $user" \
  --customize-hook="echo '$user ALL=(ALL) NOPASSWD: ALL' > \"\$1/etc/sudoers.d/010_$user-nopasswd\"" \
  --customize-hook="chmod 0440 \"\$1/etc/sudoers.d/010_$user-nopasswd\"" \
  --customize-hook='for u in apt-daily.timer apt-daily-upgrade.timer unattended-upgrades.service console-getty.service getty@.service; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  "$distro" "$tmp/root" "${mirror[@]}"
touch "$tmp/root/.complete"
echo "fresh-root: built in $(( $(date +%s) - t0 )) s" >&2
for old in "$cache"/fresh-$distro-amd64-*; do  # earlier builds of other versions of this script
  if [ -d "$old" ] && [ "$old" != "$out" ]; then rm -rf "$old"; fi
done
rm -rf "$out"
mv "$tmp/root" "$out"
echo "$out"
