#!/usr/bin/env bash
# `make collect HOST="pi1 pi2"`: fetch the audio the daemon saved around its detections (WAV + JSON
# sidecar, [save] in the Pi's config) into recordings/<keyword>/field/<host>/ for review with
# `make label`. Only adds files: nothing local is deleted or overwritten (labels least of all),
# and nothing is removed from the Pi (its own disk cap, [save] max_mb, keeps it in bounds).
#
# Environment (the Makefile passes these through):
#   KEYWORD=computer   which keyword's clips to fetch (the daemon names them <stamp>_<keyword>.wav)
#   REMOTE_DIR=dir     where the clips are on the Pi (default: [save] dir of /etc/wakeword/config.toml,
#                      else /var/lib/wakeword/detections)
#   OUT=dir            local root (default: recordings/<keyword>/field)
#   DRY_RUN=1          say what would be fetched, copy nothing     SSH_CONFIG=file, SSH_OPTS="..." (lib.sh)
# Several hosts run in parallel with one result line each. Exit status: 0 when every host worked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

DEFAULT_REMOTE_DIR=/var/lib/wakeword/detections
keyword=${KEYWORD:-computer}
# The daemon's file-name form of the keyword (device/clipsaver.py): anything but [A-Za-z0-9_-] -> _
safe_kw=$(printf '%s' "$keyword" | tr -c 'A-Za-z0-9_-' '_')
out_root=${OUT:-$repo/recordings/$keyword/field}

host_dir() {  # pi@kitchen.local -> kitchen.local: the folder is named for the machine, not the login
  ww_log_name "${1#*@}"
}

# One ssh round trip: the remote dir (config, else default), whether it is readable without sudo,
# and how many clips it holds for this keyword and for any keyword.
probe() {
  ww_ssh "$1" "$WW_REMOTE_ROOT
    dir='${REMOTE_DIR:-}'
    if [ -z \"\$dir\" ] && [ -r /etc/wakeword/config.toml ] && command -v python3 >/dev/null; then
      dir=\$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], \"rb\")).get(\"save\", {}).get(\"dir\", \"\"))' \
             /etc/wakeword/config.toml 2>/dev/null || true)
    fi
    [ -n \"\$dir\" ] || dir=$DEFAULT_REMOTE_DIR
    sudo=''
    if [ \"\$(id -u)\" != 0 ] && ! ls \"\$dir\" >/dev/null 2>&1; then sudo='sudo -n'; fi
    mine=\$(\$sudo find \"\$dir\" -maxdepth 1 -name '*_${safe_kw}.wav' 2>/dev/null | wc -l)
    all=\$(\$sudo find \"\$dir\" -maxdepth 1 -name '*.wav' 2>/dev/null | wc -l)
    exists=no; \$sudo test -d \"\$dir\" && exists=yes
    echo \"PROBE \$exists \${sudo:-none} \$mine \$all \$dir\""
}

collect_one() {
  local host=$1 line dir exists sudo mine all dest before after
  line=$(probe "$host" | grep '^PROBE ' | tail -n 1) || true
  [ -n "$line" ] || { echo "RESULT FAILED: cannot ssh to $host"; return 1; }
  read -r _ exists sudo mine all dir <<<"$line"
  if [ "$exists" != yes ]; then
    echo "RESULT nothing to fetch: $dir does not exist on $host (is [save] enabled = true in its config?)"
    return 0
  fi
  dest=$out_root/$(host_dir "$host")
  if [ "$mine" = 0 ]; then
    echo "RESULT nothing to fetch: no '$keyword' clips in $host:$dir ($all clip(s) of other keywords; KEYWORD=...?)"
    return 0
  fi
  if [ -n "${DRY_RUN:-}" ]; then
    echo "RESULT DRY_RUN: would fetch up to $mine '$keyword' clip(s) from $host:$dir into $dest"
    return 0
  fi
  mkdir -p "$dest"
  before=$(find "$dest" -maxdepth 1 -name '*.wav' | wc -l)
  local rsync_path=()
  [ "$sudo" = none ] || rsync_path=(--rsync-path="sudo -n rsync")
  # -rt: files and times, no owners or modes (they are the service user's on the Pi).
  # --ignore-existing: a clip never changes once saved, and a local copy is never overwritten.
  # Only this keyword's WAV + JSON pairs; never a label file or a half-written temp file.
  ww_rsync -rt --ignore-existing "${rsync_path[@]}" \
    --exclude '.*' --exclude '*.label.json*' \
    --include "*_${safe_kw}.wav" --include "*_${safe_kw}.json" --exclude '*' \
    "$host:$dir/" "$dest/" || { echo "RESULT FAILED: rsync from $host:$dir failed"; return 1; }
  after=$(find "$dest" -maxdepth 1 -name '*.wav' | wc -l)
  echo "RESULT fetched $((after - before)) new clip(s) into $dest ($after in all; label them with: make label)"
}

ww_hosts "$@"  # arguments, else $HOST from the environment (never the recipe line)
case "${REMOTE_DIR:-}" in *"'"*) echo "REMOTE_DIR must not contain a single quote" >&2; exit 2 ;; esac
ww_init
ww_each_host collect_one "${WW_HOSTS[@]}"
