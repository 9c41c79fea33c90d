# shellcheck shell=bash
# Shared by the test-machine builders (sourced, not run). Test machinery only: nothing here is
# installed on a real Pi.
#
#   testbed_cache_dir                 where built roots/images are kept between runs
#   testbed_key FILE... -- WORD...    short hash of files (comment lines left out, so editing
#                                     the docs does not cost a rebuild) and words: a build's cache key
#   testbed_mirror                    the apt sources to build from (this machine's, when it has some)
#   testbed_sources SUITE DIR         mmdebstrap's mirror arguments for SUITE, one a line (a sources
#                                     file written into DIR, or URLs): a Debian suite from this
#                                     machine's sources with the suite renamed, Ubuntu's noble from
#                                     $WAKEWORD_UBUNTU_MIRROR (default http://archive.ubuntu.com/ubuntu)
#   testbed_keyring SUITE             mmdebstrap's --keyring option where the host has no key (noble)
#   testbed_ca_files                  this machine's extra CA certificates (TLS interception, mirrors)
#
# and what building one shares (further down): testbed_cached / testbed_can_build (reuse or check),
# testbed_mmdebstrap + testbed_include, the *_hooks (hostname, a user with passwordless sudo, sshd,
# masked units) and testbed_install (into the cache, older builds evicted).

testbed_cache_dir() {
  local dir=${WAKEWORD_TESTBED_CACHE:-/var/cache/wakeword-testbed}
  mkdir -p "$dir" && echo "$dir"
}

testbed_key() {
  { while [ $# -gt 0 ] && [ "$1" != -- ]; do grep -v '^[[:space:]]*#' "$1"; shift; done
    [ $# -gt 0 ] && shift
    printf '%s\n' "$@"
    testbed_ca_files | xargs -r cat; } | sha256sum | cut -c1-12
}

testbed_mirror() {
  # The host's deb822 sources file, if it names Debian; mmdebstrap reads it as the mirror list.
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ] && grep -q 'debian' "$f"; then echo "$f"; else echo "http://deb.debian.org/debian"; fi
}

testbed_sources() {
  local suite=$1 dir=$2 mirror host_suite part
  case "$suite" in
    noble)
      for part in "" -updates -security; do
        echo "deb ${WAKEWORD_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu} $suite$part main restricted universe multiverse"
      done
      return 0 ;;
  esac
  mirror=$(testbed_mirror)
  host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [ -f "$mirror" ] && [ -n "$host_suite" ] && [ "$host_suite" != "$suite" ]; then
    # The host's sources name its own suite (bookworm, bookworm-updates, bookworm-security): the
    # same mirrors, another suite.
    sed "/^Suites:/s/\b$host_suite\b/$suite/g" "$mirror" > "$dir/sources"
    mirror=$dir/sources
  fi
  echo "$mirror"
}

# Ubuntu's archive key, for a Debian host that has none (Debian does not package it): the
# ubuntu-keyring package of noble, fetched once from the Ubuntu mirror and checked against the
# sha256 pinned here (the archive's signature cannot vouch for the key that checks it).
ubuntu_keyring_deb=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
ubuntu_keyring_sha256=36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8

testbed_keyring() {
  [ "$1" = noble ] || return 0
  local dir deb
  dir=$(testbed_cache_dir)/ubuntu-keyring-${ubuntu_keyring_sha256:0:12}
  if [ ! -d "$dir/etc/apt/trusted.gpg.d" ]; then
    deb=$(mktemp)
    curl -fsS --max-time 60 -o "$deb" "${WAKEWORD_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}/$ubuntu_keyring_deb" \
      || { rm -f "$deb"; echo "testbed: cannot fetch Ubuntu's keyring ($ubuntu_keyring_deb)" >&2; return 1; }
    echo "$ubuntu_keyring_sha256  $deb" | sha256sum -c --quiet \
      || { rm -f "$deb"; echo "testbed: Ubuntu's keyring package does not match its pinned sha256" >&2; return 1; }
    rm -rf "$dir.tmp" && dpkg-deb -x "$deb" "$dir.tmp" && mv "$dir.tmp" "$dir"
    rm -f "$deb"
  fi
  echo "--keyring=$dir/etc/apt/trusted.gpg.d"
}

testbed_ca_files() {
  ls /usr/local/share/ca-certificates/*.crt 2>/dev/null | sort || true
}

# mmdebstrap hook arguments that copy this machine's extra CA certificates into the root ($1 in
# the hook), so pip and apt inside reach the registries through the same TLS path as the host.
testbed_ca_hooks() {
  local files
  files=$(testbed_ca_files)
  [ -n "$files" ] || return 0
  echo "--customize-hook=mkdir -p \"\$1/usr/local/share/ca-certificates\""
  local f
  for f in $files; do
    echo "--customize-hook=cp $f \"\$1/usr/local/share/ca-certificates/\""
  done
  echo "--customize-hook=chroot \"\$1\" update-ca-certificates >/dev/null"
}

# -- building a root: what fresh-root.sh, nspawn-root.sh and pi-image.sh share -------------------
# The *_hooks functions print mmdebstrap options, one a line (read them with mapfile); mmdebstrap
# runs each hook with sh, the root as "$1".

# testbed_cached OUT: prints OUT, and succeeds, when a complete build is cached there.
testbed_cached() {
  [ -f "$1/.complete" ] && echo "$1"
}

# testbed_can_build TAG WHAT HINT TOOL...: fails with one line unless this runs as root and has
# every TOOL (HINT: how to get a missing one).
testbed_can_build() {
  local tag=$1 what=$2 hint=$3 tool
  shift 3
  [ "$(id -u)" = 0 ] || { echo "$tag: building $what needs root" >&2; return 1; }
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tag: $tool is missing ($hint)" >&2; return 1; }
  done
}

# testbed_mmdebstrap OPTION... SUITE ROOT MIRROR...
#   mmdebstrap as every testbed root is built: a directory, as root, quietly, without man pages,
#   docs and locales, this machine's CA certificates installed before the caller's customize hooks.
testbed_mmdebstrap() {
  local ca_hooks
  mapfile -t ca_hooks < <(testbed_ca_hooks)
  mmdebstrap --mode=root --format=directory --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "${ca_hooks[@]}" "$@"
}

# testbed_include PACKAGE...: mmdebstrap's --include option for the PACKAGEs.
testbed_include() {
  local IFS=,
  echo "--include=$*"
}

# testbed_hostname_hooks NAME: the machine is called NAME (/etc/hostname, /etc/hosts).
testbed_hostname_hooks() {
  printf '%s\n' \
    "--customize-hook=echo $1 > \"\$1/etc/hostname\"" \
    "--customize-hook=printf '127.0.0.1 localhost\n127.0.1.1 $1\n' > \"\$1/etc/hosts\""
}

# testbed_user_hooks USER GROUPS: USER (a home, bash) in GROUPS (comma-separated), with passwordless
# sudo like Raspberry Pi OS's first user.
testbed_user_hooks() {
  local user=$1 groups=$2
  printf '%s\n' \
    "--customize-hook=chroot \"\$1\" useradd -m -s /bin/bash -G $groups $user" \
    "--customize-hook=echo '$user ALL=(ALL) NOPASSWD: ALL' > \"\$1/etc/sudoers.d/010_$user-nopasswd\"" \
    "--customize-hook=chmod 0440 \"\$1/etc/sudoers.d/010_$user-nopasswd\""
}

# testbed_sshd_hooks all|loopback: sshd takes keys only, and no DNS lookups; it listens on every
# address, or on 127.0.0.1 alone (a container that shares the host's network).
testbed_sshd_hooks() {
  local lines=()
  case "$1" in
    all) ;;
    loopback) lines+=("ListenAddress 127.0.0.1") ;;
    *) echo "testbed_sshd_hooks: all or loopback, not '$1'" >&2; return 2 ;;
  esac
  lines+=("PasswordAuthentication no" "KbdInteractiveAuthentication no" "UseDNS no")
  printf '%s\n' "--customize-hook=printf '%s\n' $(printf '%q ' "${lines[@]}")> \"\$1/etc/ssh/sshd_config.d/10-testbed.conf\""
}

# testbed_mask_hooks UNIT...: the systemd UNITs masked (linked to /dev/null): no background apt run
# or login prompt competes with the tests.
testbed_mask_hooks() {
  printf '%s\n' "--customize-hook=for u in $*; do ln -sf /dev/null \"\$1/etc/systemd/system/\$u\"; done"
}

# testbed_install TAG T0 BUILT OUT: the finished build BUILT (a directory; begun at T0, date +%s)
# marked complete and moved to the cache entry OUT, after removing the earlier builds of its kind
# (OUT but for the key: from other versions of the script).
testbed_install() {
  local tag=$1 t0=$2 built=$3 out=$4 old
  touch "$built/.complete"
  echo "$tag: built in $(( $(date +%s) - t0 )) s" >&2
  for old in "${out%-*}"-*; do
    if [ -d "$old" ] && [ "$old" != "$out" ]; then rm -rf "$old"; fi
  done
  rm -rf "$out"
  mv "$built" "$out"
}
