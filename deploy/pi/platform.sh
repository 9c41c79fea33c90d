# shellcheck shell=sh
# Is this machine one the daemon can run on? Sourced (POSIX sh) by install.sh on the Pi, and sent
# ahead by deploy.sh's first ssh call, so an unsupported Pi says so before anything is installed.
#
#   ww_platform_problem    prints nothing and returns 0 on a supported machine; otherwise prints one
#                          line naming what is missing, and returns 1
#   ww_lock_problem TARGETS [WHAT]
#                          the same for a lock file (deploy/requirements.lock, `make lock`) whose
#                          "# targets:" line is TARGETS ("cp311-aarch64 cp313-aarch64 ..."): is this
#                          machine's Python and architecture among them? WHAT names the lock in
#                          the line that says why not
#
# Supported: a 64-bit userland (arm64 or amd64) with Python 3.11 or newer. onnxruntime publishes
# wheels for aarch64 and x86_64 Linux only, so a 32-bit Raspberry Pi OS fails deep in pip without
# this check. The userland is what counts: a 32-bit Raspberry Pi OS on a Pi 4 or 5 runs a 64-bit
# kernel (uname -m says aarch64) under armhf packages (dpkg says armhf). Without dpkg, uname -m.

ww_platform_problem() {
  ww_arch=""
  if command -v dpkg >/dev/null 2>&1; then ww_arch=$(dpkg --print-architecture 2>/dev/null || true); fi
  [ -n "$ww_arch" ] || ww_arch=$(uname -m 2>/dev/null || true)
  case "$ww_arch" in
    arm64|aarch64|amd64|x86_64) ;;
    armhf|armel|armv6l|armv7l|armv8l|arm)
      echo "unsupported Pi: a 32-bit OS ($ww_arch); onnxruntime publishes no 32-bit ARM wheel:" \
        "install the 64-bit Raspberry Pi OS (arm64)"
      return 1 ;;
    *)
      echo "unsupported machine: ${ww_arch:-unknown architecture}; onnxruntime publishes wheels for" \
        "64-bit ARM and x86 only: install the 64-bit Raspberry Pi OS (arm64)"
      return 1 ;;
  esac
  # No python3 yet: install.sh installs Debian's, which is 3.11 or newer on Raspberry Pi OS Bookworm and later.
  command -v python3 >/dev/null 2>&1 || return 0
  ww_py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
  case "$ww_py" in
    2.*|3.[0-9]|3.10)
      echo "unsupported Pi: Python $ww_py; wakeword needs Python 3.11 or newer:" \
        "install the 64-bit Raspberry Pi OS Bookworm or later"
      return 1 ;;
  esac
  return 0
}

ww_lock_problem() {
  # No python3 yet: install.sh installs Debian's and asks again before it makes the venv.
  command -v python3 >/dev/null 2>&1 || return 0
  ww_py_tag=$(python3 -c 'import platform, sys; v = sys.version_info; print("%d.%d cp%d%d-%s" % (v[0], v[1], v[0], v[1], platform.machine()))' 2>/dev/null || true)
  ww_tag=${ww_py_tag#* }
  case " $1 " in *" $ww_tag "*) [ -n "$ww_tag" ] && return 0 ;; esac
  echo "${2:-the lock of the Python packages} has no wheels for Python ${ww_py_tag%% *} on $(uname -m)" \
    "(${ww_tag:-unknown}; it has ${1:-none}): add it to TARGETS in deploy/lock.py and run make lock"
  return 1
}
