#!/usr/bin/env bash
# More TTS voices for the dataset stage, from Debian's contrib and non-free components (run as root;
# `sudo make voices`). They are opt-in engines: add them to `[data] engines` to use them.
# - rhvoice: RHVoice English (alan, bdl, clb, slt; LGPL-2.1+), package rhvoice-english, non-free.
# - pico: SVOX Pico en-US and en-GB (Apache-2.0), package libttspico-utils, non-free.
# - MBROLA=1 adds mbrola: the MBROLA diphone voices espeak-ng speaks English with (us1-3, en1, and 16
#   accented ones), component contrib. Their licence forbids selling them or a product built on them
#   without the owner's permission; leave them out of a model you sell.
# On Debian the components are added in /etc/apt/sources.list.d/wakeword-extra-voices.sources (and
# removed again if the install fails); elsewhere the packages are installed from what apt already has.
set -euo pipefail
say() { echo "voices: $*"; }
die() { echo "voices: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sudo make voices): it installs Debian packages"
command -v apt-get >/dev/null || die "no apt-get here: install RHVoice, SVOX Pico (and MBROLA) by your system's means"

packages=(rhvoice rhvoice-english libttspico-utils)
if [ "${MBROLA:-}" = 1 ]; then
  packages+=(espeak-ng mbrola)
  for v in us1 us2 us3 en1 af1 de1 de2 de3 de4 de5 de6 fr1 fr4 gr2 hu1 nl2 pl1 ro1 sw1 sw2; do
    packages+=("mbrola-$v")
  done
fi

list=/etc/apt/sources.list.d/wakeword-extra-voices.sources
added=
# shellcheck disable=SC1091
. /etc/os-release
candidate=$(apt-cache policy libttspico-utils 2>/dev/null || true)
if [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ] && [[ $candidate != *"Candidate: "[0-9]* ]]; then
  say "adding the contrib and non-free components of $VERSION_CODENAME ($list)"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$VERSION_CODENAME" > "$list"
  added=1
fi
undo() { if [ -n "$added" ]; then rm -f "$list"; apt-get update -q >/dev/null 2>&1 || true; fi; }
if [ -n "$added" ]; then
  apt-get update -q >/dev/null || { undo; die "apt-get update failed with the contrib and non-free components; removed them again"; }
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null \
  || { undo; die "apt-get install ${packages[*]} failed"; }
say "installed ${packages[*]}"
say "use them with: SET='data.engines=[\"espeak\",\"flite\",\"festival\",\"piper\",\"rhvoice\",\"pico\"] data.engine_weights=[0.45,0.2,0.15,0.2,0.1,0.05]'"
