#!/usr/bin/env bash
# The workstation side of `make deploy|status|logs|undeploy HOST="pi1 pi2"`. Needs ssh and rsync
# here; on the Pi, a 64-bit Raspberry Pi OS / Debian (Python 3.11+) with systemd and passwordless
# sudo (the default for Raspberry Pi OS's first user) or root. Any other Pi gets one line naming
# what is missing (deploy/pi/platform.sh) before anything is installed.
#
# HOST...: ssh aliases, hosts or user@host; without arguments, the words of $HOST (the Makefile).
#   deploy/deploy.sh deploy HOST...     build the release, upload it, run its pi/install.sh
#   deploy/deploy.sh status HOST...     systemctl status wakeword + the current release
#   deploy/deploy.sh logs HOST...       the journal of wakeword (LOG_LINES=100, FOLLOW=1 for -f)
#   deploy/deploy.sh undeploy HOST...   remove it (PURGE=1 also removes config, detections, user)
#
# Environment (the Makefile passes these through):
#   MODEL=build/<keyword>/model.onnx  the model to ship      KEYWORD=computer  (recorded in RELEASE)
#   MODELS="build/jarvis/model.onnx ..."  more keywords' models, run beside it ([[keywords]] in the config)
#   SERVICE=listen|wyoming|both  which units run: the daemon on the microphone (listen, the default),
#                    the Wyoming service for Home Assistant, or both
#   PI_CONFIG=file   config.toml to install where the Pi has none (default: the commented example)
#   DRY_RUN=1        print the steps, contact nobody           SSH_CONFIG=file, SSH_OPTS="..."  (lib.sh)
# Several hosts run in parallel, each logging to build/deploy/logs/<host>.log, and end with one
# result line each. Exit status: 0 when every host succeeded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

UPLOAD=.cache/wakeword-deploy/release   # on the Pi, relative to the ssh user's home
export WW_LOG_DIR=${WW_LOG_DIR:-$repo/build/deploy/logs}
action=${1:-}
shift || true

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

python() {
  if [ -x "$repo/.venv/bin/python" ]; then "$repo/.venv/bin/python" "$@"; else python3 "$@"; fi
}

build_release() {
  local keyword=${KEYWORD:-computer}
  local model=${MODEL:-$repo/build/$keyword/model.onnx}
  local args=(--model "$model" --keyword "$keyword" --out "$repo/build/release") m
  [ -n "${PI_CONFIG:-}" ] && args+=(--config "$PI_CONFIG")
  set -f  # MODELS is a whitespace-separated list of paths: split, never globbed
  for m in ${MODELS:-}; do args+=(--extra-model "$m"); done
  set +f
  RELEASE_DIR=$(cd "$repo" && python -m deploy.release "${args[@]}") || exit 1
  RELEASE_ID=$(basename "$RELEASE_DIR")
}

preflight() {  # one ssh round trip: the checks that give a clear line instead of a later mess
  # First, before anything is installed: an unsupported Pi (32-bit OS, old Python, a Python or
  # architecture the release's lock has no wheels for; pi/platform.sh).
  local targets
  targets=$(sed -n 's/^# targets: *//p' "$RELEASE_DIR/requirements.lock" | head -n 1)
  [[ $targets =~ ^[a-z0-9_\ -]*$ ]] || { echo "RESULT FAILED: $RELEASE_DIR/requirements.lock: bad targets line"; return 1; }
  ww_ssh "$1" "$WW_REMOTE_ROOT
    $(cat "$here/pi/platform.sh")
    if ! why=\$(ww_platform_problem); then echo \"RESULT FAILED: \$why\"; exit 1; fi
    if ! why=\$(ww_lock_problem '$targets'); then echo \"RESULT FAILED: unsupported Pi: \$why\"; exit 1; fi
    if [ \"\$(id -u)\" != 0 ] && ! sudo -n true 2>/dev/null; then
      echo \"RESULT FAILED: \$(id -un)@\$(hostname) needs passwordless sudo (or deploy as root@...)\"; exit 1; fi
    [ -d /run/systemd/system ] || { echo 'RESULT FAILED: the host does not run systemd'; exit 1; }
    if ! command -v rsync >/dev/null; then
      echo 'installing rsync on the Pi'
      ww_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null 2>&1 \
        || { ww_root apt-get update -q >/dev/null && ww_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null; } \
        || { echo 'RESULT FAILED: rsync is missing on the Pi and apt-get could not install it'; exit 1; }
    fi
    mkdir -p $UPLOAD"
}

deploy_one() {
  local host=$1 rc=0
  echo "$host: checking ssh, sudo, systemd"
  preflight "$host" || { rc=$?; [ $rc = 255 ] && echo "RESULT FAILED: cannot ssh to $host"; return 1; }
  echo "$host: uploading release $RELEASE_ID"
  ww_rsync -rlp --checksum --delete "$RELEASE_DIR/" "$host:$UPLOAD/" \
    || { echo "RESULT FAILED: rsync to $host failed"; return 1; }
  ww_root "$host" "sh $UPLOAD/pi/install.sh --service $SERVICE" || rc=$?
  return $rc
}

status_one() {  # the enabled units (wakeword, wakeword-wyoming), or wakeword when neither is
  ww_ssh "$1" "units=''
    for u in wakeword wakeword-wyoming; do systemctl -q is-enabled \$u 2>/dev/null && units=\"\$units \$u\"; done
    [ -n \"\$units\" ] || units=wakeword
    SYSTEMD_COLORS=0 systemctl status \$units --no-pager --lines=0 2>&1;
    echo \"release: \$(basename \"\$(readlink /opt/wakeword/current 2>/dev/null || echo none)\")\"
    for u in \$units; do systemctl -q is-active \$u || exit 1; done" && echo "RESULT active" && return 0
  echo "RESULT FAILED: wakeword is not active"
  return 1
}

logs_one() {
  local follow="" lines=${LOG_LINES:-100}
  case "$lines" in  # it becomes a word of the remote command line
    ''|*[!0-9]*) echo "RESULT FAILED: LOG_LINES must be a whole number (got '$lines')"; return 2 ;;
  esac
  [ -n "${FOLLOW:-}" ] && follow=-f
  # A system service's journal needs root (or the adm group, whose members sudo need not).
  ww_ssh "$1" "if [ \"\$(id -u)\" != 0 ] && sudo -n true 2>/dev/null; then sudo=sudo; else sudo=; fi
    \$sudo journalctl -u wakeword -u wakeword-wyoming -n $lines --no-pager $follow -q"
}

undeploy_one() {
  local host=$1 flag=""
  [ -n "${PURGE:-}" ] && flag=--purge
  # The undeploy script travels with every release; a host without one has nothing installed.
  # It removes /opt/wakeword, its own directory: run a copy.
  ww_ssh "$host" "$WW_REMOTE_ROOT
    if [ ! -f /opt/wakeword/current/pi/undeploy.sh ]; then
      echo 'RESULT not installed (no /opt/wakeword/current)'; exit 0; fi
    copy=\$(mktemp) && cp /opt/wakeword/current/pi/undeploy.sh \$copy || exit 1
    ww_root sh \$copy $flag; rc=\$?; rm -f \$copy; exit \$rc"
}

dry_run() {
  echo "DRY_RUN: nothing is contacted or changed. Release $RELEASE_ID ($RELEASE_DIR)."
  local host
  for host in "$@"; do
    echo "== $host"
    echo "ssh $host: check a supported Pi (64-bit OS, Python 3.11+) that the lock has wheels for" \
      "($(sed -n 's/^# targets: *//p' "$RELEASE_DIR/requirements.lock")), passwordless sudo, systemd, rsync" \
      "(install rsync if missing)"
    echo "rsync $RELEASE_DIR/ -> $host:~/$UPLOAD/"
    echo "ssh $host: sudo sh ~/$UPLOAD/pi/install.sh, which does:"
    sh "$RELEASE_DIR/pi/install.sh" --service "$SERVICE" --plan | sed 's/^/  /'
  done
}

case "$action" in
  deploy|status|logs|undeploy) ww_hosts "$@" ;;
  *) usage ;;
esac
SERVICE=${SERVICE:-listen}
case "$SERVICE" in  # checked here: it becomes a word of the command run on the Pi
  listen|wyoming|both) ;;
  *) echo "SERVICE must be listen, wyoming or both (got '$SERVICE')" >&2; exit 2 ;;
esac
case "$action" in
  deploy)
    build_release
    if [ -n "${DRY_RUN:-}" ]; then dry_run "${WW_HOSTS[@]}"; exit 0; fi
    ww_init
    ww_each_host deploy_one "${WW_HOSTS[@]}" ;;
  status|logs)
    if [ "$action" = logs ] && [ -n "${FOLLOW:-}" ] && [ ${#WW_HOSTS[@]} -gt 1 ]; then
      echo "FOLLOW=1 takes one host" >&2; exit 2
    fi
    ww_init
    WW_SHOW_LOGS=1 ww_each_host "${action}_one" "${WW_HOSTS[@]}" ;;
  undeploy)
    if [ -n "${DRY_RUN:-}" ]; then
      for h in "${WW_HOSTS[@]}"; do echo "ssh $h: sudo sh /opt/wakeword/current/pi/undeploy.sh ${PURGE:+--purge}"; done
      exit 0
    fi
    ww_init
    ww_each_host undeploy_one "${WW_HOSTS[@]}" ;;
esac
