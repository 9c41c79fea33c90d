#!/bin/sh
# Install the release this script belongs to, on the Pi, as root. `make deploy` uploads the
# release and runs this; it is safe to run again by hand.
#
#   sudo sh <release>/pi/install.sh [--service listen|wyoming|both]   install (or find nothing to do), start, report
#   sh <release>/pi/install.sh --plan         print the steps without doing anything (DRY_RUN=1)
#
# --service: which units run -- listen (default): wakeword.service, the daemon on the microphone;
# wyoming: wakeword-wyoming.service, the Wyoming service for Home Assistant (the microphone is left
# to wyoming-satellite); both. Both unit files are always installed; the others are disabled.
#
# Steps: check the Pi is supported (pi/platform.sh: 64-bit OS, Python 3.11+, and the release's
# lock has wheels for its Python and architecture); verify the upload; install missing Debian
# packages; create the service user and the gpio group; make (or reuse) the venv, pip-installing
# exactly the versions and wheels of the release's requirements.lock (pip --require-hashes); copy
# the release to /opt/wakeword/releases/<id>; install /etc/wakeword/config.toml only if absent;
# install the unit; point /opt/wakeword/current at the release; enable and restart
# wakeword.service and wait until it is active. If it does not come up, switch back to the previous
# release, restart that, say so.
#
# The last line is "RESULT <word> ..." (installed, unchanged, started, ROLLED BACK, FAILED) for the
# workstation's summary. Exit: 0 ok, 1 failed, 2 usage, 3 rolled back to the previous release.
set -eu

ROOT=/opt/wakeword
UNIT_DIR=/etc/systemd/system
UNITS="wakeword.service wakeword-wyoming.service"
CONF_DIR=/etc/wakeword
CONF=$CONF_DIR/config.toml
SERVICES=wakeword
SERVICE_USER=wakeword
STATE_DIR=/var/lib/wakeword
GPIO_RULE=/etc/udev/rules.d/60-wakeword-gpio.rules
SETTLE_S=${WAKEWORD_SETTLE_S:-3}   # seconds the service must stay active after READY
KEEP_RELEASES=3                    # current, previous and one more

src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/pi/platform.sh
. "$src/pi/platform.sh"
id=$(sha256sum < "$src/MANIFEST.sha256" | cut -c1-12)
changes=""

say() { echo "$*"; }
change() { changes="$changes${changes:+, }$1"; say "  $1"; }
die() { say "ERROR: $*"; result "FAILED: $*"; exit 1; }
result() { result_said=yes; say "RESULT $*"; }
result_said=no
# Whatever stops this script early still ends with a RESULT line for the workstation.
# shellcheck disable=SC2154  # rc is assigned inside the trap
trap 'rc=$?; if [ $rc != 0 ] && [ "$result_said" = no ]; then result "FAILED: install.sh stopped at an unexpected error (exit $rc; see above)"; fi' EXIT

debian_packages() {
  # What the daemon takes from Debian (the venv sees them): Python, systemd's journal binding,
  # PyAudio over PortAudio/ALSA; plus the board's RPi.GPIO provider (gpio_plan). numpy, onnxruntime
  # and the rest come from the lock, at the versions the workstation tested.
  echo "python3 python3-venv python3-systemd python3-pyaudio $gpio_apt"
}

gpio_plan() {
  # Sets gpio_apt (a Debian package) or gpio_lock (the release's lock of rpi-lgpio, pip-installed
  # into the venv) for this board; gpio_note says why neither, when the LED cannot be driven.
  gpio_apt="" gpio_lock="" gpio_note=""
  board=""
  if [ -r /proc/device-tree/model ]; then board=$(tr -d '\0' < /proc/device-tree/model); fi
  case "$board" in
    "Raspberry Pi 5"*|"Raspberry Pi Compute Module 5"*)
      # The Pi 5's GPIO is behind the RP1 chip: RPi.GPIO cannot drive it, rpi-lgpio can.
      if apt-cache show python3-rpi-lgpio >/dev/null 2>&1; then gpio_apt=python3-rpi-lgpio
      else gpio_from_lock || gpio_note="no python3-rpi-lgpio package, and $gpio_lock_why"; fi ;;
    "Raspberry Pi"*)
      if installed python3-rpi-lgpio; then gpio_apt=python3-rpi-lgpio; else gpio_apt=python3-rpi.gpio; fi ;;
    *)
      # Not a Pi. A board with a GPIO character device gets rpi-lgpio (the same API): pinned from
      # the lock where it has wheels for this Python (lgpio has none for 3.13), else Debian's.
      if ls /dev/gpiochip* >/dev/null 2>&1; then
        if ! gpio_from_lock; then
          if apt-cache show python3-rpi-lgpio >/dev/null 2>&1; then gpio_apt=python3-rpi-lgpio
          else gpio_note="no python3-rpi-lgpio package, and $gpio_lock_why"; fi
        fi
      fi ;;
  esac
}

lock_targets() { sed -n 's/^# targets: *//p' "$1" | head -n 1; }

gpio_from_lock() {  # use the release's rpi-lgpio lock if it has wheels for this Python and machine
  gpio_lock_why=$(ww_lock_problem "$(lock_targets "$src/requirements-gpio.lock")" "the lock of rpi-lgpio") \
    && gpio_lock=$src/requirements-gpio.lock
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

plan() {
  cat <<EOF
install.sh on the Pi, as root (release $id):
  0. check the Pi is supported: a 64-bit OS (onnxruntime has no 32-bit ARM wheel), Python 3.11 or newer,
     and requirements.lock has wheels for it ($(lock_targets "$src/requirements.lock"))
  1. verify the upload against MANIFEST.sha256
  2. apt-get install what is missing of: python3 python3-venv python3-systemd python3-pyaudio,
     and RPi.GPIO for the board (python3-rpi.gpio; rpi-lgpio on a Pi 5)
  3. create the system user $SERVICE_USER and the groups audio and gpio if missing
     (a new gpio group gets the udev rule $GPIO_RULE for /dev/gpiochip*)
  4. venv $ROOT/venvs/<hash of the lock> (--system-site-packages), unless it exists and runs what
     the lock pins: pip install --require-hashes --only-binary=:all: -r requirements.lock, i.e.
     $(lock_pins "$src/requirements.lock")
     (+ $(lock_pins "$src/requirements-gpio.lock") from requirements-gpio.lock where the board's GPIO comes from pip)
  5. copy the release to $ROOT/releases/$id; link /usr/local/bin/wakeword
  6. install $CONF from the release only if there is none (an edited config is never overwritten)
  7. install $UNIT_DIR/wakeword.service and $UNIT_DIR/wakeword-wyoming.service (daemon-reload if changed)
  8. if nothing changed and $SERVICES is active: stop here ("unchanged")
  9. point $ROOT/current at releases/$id, systemctl enable + restart $SERVICES (disable the other
     unit), wait until active (Type=notify: READY once audio flows) and still active ${SETTLE_S}s later
 10. if it did not come up: point $ROOT/current back at the previous release, restart it, exit 3
 11. keep the newest $KEEP_RELEASES releases, remove unused venvs; print systemctl status
EOF
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } \
    || die "apt-get install $* failed (is the Pi online? try: sudo apt-get update)"
}

ensure_packages() {
  gpio_plan
  missing=""
  for p in $(debian_packages); do installed "$p" || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    remove=""
    case "$missing" in *python3-rpi-lgpio*)
      # They conflict: on a Pi 5 rpi-lgpio takes RPi.GPIO's place ("pkg-" makes apt remove it).
      if installed python3-rpi.gpio; then remove="python3-rpi.gpio-"; fi ;;
    esac
    t0=$(date +%s)
    # shellcheck disable=SC2086  # a list of package names
    apt_install $missing $remove
    change "installed Debian packages:$missing ($(( $(date +%s) - t0 )) s)"
  fi
}

ensure_user() {
  for g in audio gpio; do
    if ! getent group "$g" >/dev/null; then
      groupadd --system "$g"
      change "created group $g"
      if [ "$g" = gpio ] && [ ! -e "$GPIO_RULE" ]; then
        # Raspberry Pi OS ships such a rule; plain Debian leaves /dev/gpiochip* root-only.
        mkdir -p "$(dirname "$GPIO_RULE")"
        echo 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' > "$GPIO_RULE"
        change "installed $GPIO_RULE"
      fi
    fi
  done
  if [ -e "$GPIO_RULE" ]; then
    # Apply the rule to the chips that exist now (udev applies it at the next boot or hotplug).
    for chip in /dev/gpiochip*; do
      if [ -e "$chip" ]; then chgrp gpio "$chip" && chmod 0660 "$chip"; fi
    done
  fi
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "wakeword daemon" "$SERVICE_USER"
    change "created user $SERVICE_USER"
  fi
}

lock_pins() { sed -n 's/^\([A-Za-z0-9._-]*==[^ ;]*\).*/\1/p' "$1" | tr '\n' ' ' | sed 's/ $//'; }

venv_runs_the_lock() {  # does the venv import exactly what the lock(s) pin? Prints the differences.
  # (-B: no __pycache__ in the upload, which belongs to the ssh user and is rsynced again)
  if [ -n "$gpio_lock" ]; then
    PYTHONPATH="$src/lib" "$venv/bin/python" -B -m device.lockfile "$src/requirements.lock" "$gpio_lock"
  else
    PYTHONPATH="$src/lib" "$venv/bin/python" -B -m device.lockfile "$src/requirements.lock"
  fi
}

ensure_venv() {
  # Asked again here: before ensure_packages there may have been no python3 to ask.
  if ! why=$(ww_lock_problem "$(lock_targets "$src/requirements.lock")"); then die "unsupported Pi: $why"; fi
  py_version=$(python3 -c 'import sys; print(sys.version)')
  # Keyed by the lock(s) and the Python: a new lock or a new Python is a new venv.
  venv_id=$( { cat "$src/requirements.lock"; [ -z "$gpio_lock" ] || cat "$gpio_lock"; echo "$py_version"; } \
    | sha256sum | cut -c1-12)
  venv=$ROOT/venvs/$venv_id
  if [ -f "$venv/.complete" ]; then
    if drift=$(venv_runs_the_lock 2>&1); then return 0; fi
    say "venv $venv_id no longer runs what the lock pins:"
    say "$drift"
    say "rebuilding it"
  fi
  set -- -r "$src/requirements.lock"
  [ -z "$gpio_lock" ] || set -- "$@" -r "$gpio_lock"
  say "creating $venv (pip install, pinned and hash-checked: $(lock_pins "$src/requirements.lock")${gpio_lock:+ $(lock_pins "$gpio_lock")}); this takes a while on a Pi"
  [ -z "$gpio_note" ] || say "  GPIO: $gpio_note: the LED cannot be driven (backend \"auto\" logs it instead)"
  t0=$(date +%s)
  rm -rf "$venv"
  mkdir -p "$ROOT/venvs"
  python3 -m venv --system-site-packages "$venv" || die "python3 -m venv failed"
  # Hash-checking mode: every package and dependency must be in the lock, at that version, as one of
  # those very wheels (never an sdist, never built on the Pi).
  if ! "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
      "$@" > "$venv.pip.log" 2>&1; then
    grep -v '^WARNING: Location' "$venv.pip.log" | tail -n 25
    rm -rf "$venv"
    die "pip install into $venv failed (see above; full output in $venv.pip.log)"
  fi
  if ! drift=$(venv_runs_the_lock 2>&1); then
    say "$drift"
    die "the new venv $venv_id does not run what the lock pins (see above)"
  fi
  rm -f "$venv.pip.log"
  touch "$venv/.complete"
  change "created venv $venv_id ($(( $(date +%s) - t0 )) s)"
}

ensure_release() {
  dst=$ROOT/releases/$id
  if [ ! -f "$dst/.complete" ]; then
    rm -rf "$dst" "$ROOT/releases/.incoming-$id"
    mkdir -p "$ROOT/releases"
    cp -R "$src" "$ROOT/releases/.incoming-$id"
    chown -R root:root "$ROOT/releases/.incoming-$id"
    chmod -R u=rwX,go=rX "$ROOT/releases/.incoming-$id"  # readable by the service user
    python3 -m compileall -q "$ROOT/releases/.incoming-$id/lib" >/dev/null  # the unit cannot write __pycache__
    touch "$ROOT/releases/.incoming-$id/.complete"
    mv "$ROOT/releases/.incoming-$id" "$dst"
    change "installed release $id"
  fi
  if [ "$(readlink "$dst/venv" || true)" != "../../venvs/$venv_id" ]; then
    ln -sfn "../../venvs/$venv_id" "$dst/venv"
  fi
  if [ "$(readlink /usr/local/bin/wakeword || true)" != "$ROOT/current/bin/wakeword" ]; then
    mkdir -p /usr/local/bin
    ln -sfn "$ROOT/current/bin/wakeword" /usr/local/bin/wakeword
    change "linked /usr/local/bin/wakeword"
  fi
}

ensure_config() {
  mkdir -p "$CONF_DIR"
  if [ ! -e "$CONF" ]; then
    install -m 0644 "$src/config.toml" "$CONF"
    change "installed $CONF"
  elif ! cmp -s "$src/config.toml" "$CONF"; then
    say "  kept $CONF (yours; never overwritten). This release's default config: $CONF.new"
    cmp -s "$src/config.toml" "$CONF.new" || install -m 0644 "$src/config.toml" "$CONF.new"
  fi
}

install_unit() {  # install_unit RELEASE_DIR: make the installed units that release's units
  changed=no
  for u in $UNITS; do
    [ -f "$1/$u" ] || continue  # an older release without the Wyoming unit
    if ! cmp -s "$1/$u" "$UNIT_DIR/$u"; then
      install -m 0644 "$1/$u" "$UNIT_DIR/$u"
      changed=yes
    fi
  done
  [ "$changed" = yes ] || return 1
  systemctl daemon-reload
}

others() {  # the units this deploy does not run
  for u in wakeword wakeword-wyoming; do
    case " $SERVICES " in *" $u "*) ;; *) echo "$u" ;; esac
  done
}

all_active() {
  for u in $SERVICES; do
    systemctl -q is-active "$u" && systemctl -q is-enabled "$u" || return 1
  done
  for u in $(others); do
    if systemctl -q is-enabled "$u" 2>/dev/null; then return 1; fi
  done
}

switch_to() {  # switch_to RELEASE_ID: atomically repoint current
  ln -sfn "releases/$1" "$ROOT/.current.tmp"
  mv -T "$ROOT/.current.tmp" "$ROOT/current"
}

current_id() { basename "$(readlink "$ROOT/current" 2>/dev/null || echo none)"; }

came_up() {  # restart and check the services stay active; prints why not
  start_ts=$(date +%s)
  for u in $SERVICES; do
    if ! systemctl restart "$u"; then
      say "$u did not start:"
      journalctl -u "$u" --since "@$start_ts" --no-pager -n 25 -o cat 2>/dev/null | sed 's/^/    /'
      return 1
    fi
  done
  restarts=""
  for u in $SERVICES; do restarts="$restarts $(systemctl show -p NRestarts --value "$u")"; done
  sleep "$SETTLE_S"
  now=""
  for u in $SERVICES; do now="$now $(systemctl show -p NRestarts --value "$u")"; done
  for u in $SERVICES; do
    if [ "$(systemctl is-active "$u")" != active ] || [ "$now" != "$restarts" ]; then
      say "$u came up but did not stay up:"
      journalctl -u "$u" --since "@$start_ts" --no-pager -n 25 -o cat 2>/dev/null | sed 's/^/    /'
      return 1
    fi
  done
}

prune() {
  keep="$(current_id) $(basename "$(readlink "$ROOT/previous" 2>/dev/null || echo none)")"
  # shellcheck disable=SC2012  # release ids are hex, ls -t is fine
  keep="$keep $(ls -t "$ROOT/releases" 2>/dev/null | head -n "$KEEP_RELEASES" | tr '\n' ' ')"
  for r in "$ROOT"/releases/*; do
    [ -d "$r" ] || continue
    case " $keep " in *" $(basename "$r") "*) ;; *) rm -rf "$r"; say "  removed old release $(basename "$r")" ;; esac
  done
  for v in "$ROOT"/venvs/*; do
    [ -d "$v" ] || continue
    used=no
    for r in "$ROOT"/releases/*; do
      if [ "$(readlink "$r/venv" 2>/dev/null)" = "../../venvs/$(basename "$v")" ]; then used=yes; fi
    done
    if [ "$used" = no ]; then rm -rf "$v"; say "  removed unused venv $(basename "$v")"; fi
  done
}

show_status() {
  echo
  # shellcheck disable=SC2086  # unit names
  SYSTEMD_COLORS=0 systemctl status $SERVICES --no-pager --lines=5 2>&1 || true
  echo
}

main() {
  # Before anything else: an unsupported Pi (32-bit OS, old Python) is one line, and nothing changes.
  if ! why=$(ww_platform_problem); then result "FAILED: $why"; exit 1; fi
  if ! why=$(ww_lock_problem "$(lock_targets "$src/requirements.lock")"); then result "FAILED: unsupported Pi: $why"; exit 1; fi
  [ "$(id -u)" = 0 ] || { echo "install.sh must run as root (make deploy runs it with sudo)" >&2; exit 2; }
  [ -d /run/systemd/system ] || die "this machine does not run systemd"
  exec 9>/run/lock/wakeword-deploy.lock
  flock -w 900 9 || die "another deploy is running on this machine"
  say "release $id on $(hostname)"
  (cd "$src" && sha256sum --quiet --strict -c MANIFEST.sha256) || die "upload is incomplete or corrupt (checksums differ); deploy again"
  ensure_packages
  ensure_user
  ensure_venv
  ensure_release
  ensure_config
  install_unit "$ROOT/releases/$id" && change "installed the units in $UNIT_DIR"
  before=$(current_id)
  if [ "$before" = "$id" ] && [ -z "$changes" ] && all_active; then
    say "nothing changed: release $id is current and $SERVICES active"
    show_status
    result "unchanged $id"
    exit 0
  fi
  if [ "$before" != "$id" ] && [ "$before" != none ]; then
    ln -sfn "releases/$before" "$ROOT/.previous.tmp" && mv -T "$ROOT/.previous.tmp" "$ROOT/previous"
  fi
  switch_to "$id"
  for u in $(others); do
    if systemctl -q is-enabled "$u" 2>/dev/null || systemctl -q is-active "$u"; then
      systemctl disable -q --now "$u" && say "  stopped and disabled $u (not asked for: --service)"
    fi
  done
  # shellcheck disable=SC2086  # unit names
  systemctl enable -q $SERVICES
  say "starting $SERVICES (release $id) and waiting until active"
  if came_up; then
    prune
    show_status
    if [ "$before" = "$id" ] && [ -z "$changes" ]; then result "started $id (nothing changed; it was not running)"
    elif [ "$before" = none ] || [ "$before" = "$id" ]; then result "installed $id"
    else result "installed $id (was $before)"; fi
    exit 0
  fi
  if [ "$before" = none ] || [ "$before" = "$id" ] || [ ! -d "$ROOT/releases/$before" ]; then
    show_status
    result "FAILED: release $id did not come up and there is no previous release to go back to"
    exit 1
  fi
  say "rolling back to the previous release $before"
  switch_to "$before"
  install_unit "$ROOT/releases/$before" || true
  if came_up; then
    show_status
    result "ROLLED BACK to $before: release $id did not come up (see above)"
    exit 3
  fi
  show_status
  result "FAILED: release $id did not come up, and neither did $before after rolling back"
  exit 1
}

usage() { echo "usage: $0 [--service listen|wyoming|both] [--plan]" >&2; exit 2; }
action=main
while [ $# -gt 0 ]; do
  case "$1" in
    --plan) action=plan ;;
    --service)
      [ $# -ge 2 ] || usage
      case "$2" in
        listen) SERVICES=wakeword ;;
        wyoming) SERVICES=wakeword-wyoming ;;
        both) SERVICES="wakeword wakeword-wyoming" ;;
        *) usage ;;
      esac
      shift ;;
    *) usage ;;
  esac
  shift
done
$action
