# shellcheck shell=bash
# Shared by the test-machine builders (sourced, not run). Test machinery only: nothing here is
# installed on a real Pi.
#
#   testbed_cache_dir                 where built roots/images are kept between runs
#   testbed_key FILE... -- WORD...    short hash of files (comment lines left out, so editing
#                                     the docs does not cost a rebuild) and words: a build's cache key
#   testbed_mirror                    the apt sources to build from (this machine's, when it has some)
#   testbed_ca_files                  this machine's extra CA certificates (TLS interception, mirrors)

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
