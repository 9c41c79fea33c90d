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
testbed_cached "$out" && exit 0
testbed_can_build fresh-root "the root" "apt-get install mmdebstrap" mmdebstrap || exit 1

tmp=$(mktemp -d "$cache/.fresh-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mapfile -t keyring < <(testbed_keyring "$distro")
mapfile -t mirror < <(testbed_sources "$distro" "$tmp")
mapfile -t hooks < <(
  testbed_hostname_hooks "fresh-$distro"
  testbed_user_hooks "$user" sudo
  testbed_mask_hooks apt-daily.timer apt-daily-upgrade.timer unattended-upgrades.service console-getty.service getty@.service
)
echo "fresh-root: building $out (first run only, a few minutes)" >&2
t0=$(date +%s)
testbed_mmdebstrap --variant=standard --skip=cleanup/apt/lists "$(testbed_include "${packages[@]}")" "${keyring[@]}" \
  "${hooks[@]}" "$distro" "$tmp/root" "${mirror[@]}"
testbed_install fresh-root "$t0" "$tmp/root" "$out"
echo "$out"
