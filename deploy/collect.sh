#!/usr/bin/env bash
# `make collect HOST="pi1 pi2"`: fetch the audio the daemon saved around its detections (WAV + JSON
# sidecar, [save] in the Pi's config) into recordings/<keyword>/field/<host>/ for review with
# `make label`, and the room snippets it kept ([snippets], off by default) into
# recordings/<keyword>/snippets/<host>/, which `make finetune` learns as not the keyword. Only adds
# files: nothing local is deleted or overwritten (labels least of all), and nothing is removed from
# the Pi (its own disk caps, [save] / [snippets] max_mb, keep it in bounds).
#
# Environment (the Makefile passes these through):
#   KEYWORD=computer   which keyword's clips to fetch (the daemon names them <stamp>_<keyword>.wav)
#   REMOTE_DIR=dir     where the clips are on the Pi (default: [save] dir of /etc/wakeword/config.toml,
#                      else /var/lib/wakeword/detections)
#   OUT=dir            local root (default: recordings/<keyword>/field)
#   REMOTE_SNIPPETS_DIR=dir, SNIPPETS_OUT=dir   the same for room snippets (default: [snippets] dir,
#                      else /var/lib/wakeword/snippets; recordings/<keyword>/snippets)
#   DRY_RUN=1          say what would be fetched, copy nothing     SSH_CONFIG=file, SSH_OPTS="..." (lib.sh)
# Several hosts run in parallel with one result line each. Exit status: 0 when every host worked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

DEFAULT_REMOTE_DIR=/var/lib/wakeword/detections
DEFAULT_SNIPPETS_DIR=/var/lib/wakeword/snippets
keyword=${KEYWORD:-computer}
# The daemon's file-name form of the keyword (device/clipsaver.py): anything but [A-Za-z0-9_-] -> _
safe_kw=$(printf '%s' "$keyword" | tr -c 'A-Za-z0-9_-' '_')
out_root=${OUT:-$repo/recordings/$keyword/field}
snippets_root=${SNIPPETS_OUT:-$repo/recordings/$keyword/snippets}

host_dir() {  # pi@kitchen.local -> kitchen.local: the folder is named for the machine, not the login
  ww_log_name "${1#*@}"
}

# One ssh round trip: the remote dir (override, else the config's [section] dir, else the default),
# whether it is readable without sudo, and how many clips it holds matching `mine` and in all.
# Arguments are ours (section, default dir, file pattern), never a user's value.
probe() {
  local host=$1 override=$2 section=$3 default=$4 pattern=$5
  ww_ssh "$host" "$WW_REMOTE_ROOT
    dir='$override'
    if [ -z \"\$dir\" ] && [ -r /etc/wakeword/config.toml ] && command -v python3 >/dev/null; then
      dir=\$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], \"rb\")).get(\"$section\", {}).get(\"dir\", \"\"))' \
             /etc/wakeword/config.toml 2>/dev/null || true)
    fi
    [ -n \"\$dir\" ] || dir=$default
    sudo=''
    if [ \"\$(id -u)\" != 0 ] && ! ls \"\$dir\" >/dev/null 2>&1; then sudo='sudo -n'; fi
    mine=\$(\$sudo find \"\$dir\" -maxdepth 1 -name '$pattern.wav' 2>/dev/null | wc -l)
    all=\$(\$sudo find \"\$dir\" -maxdepth 1 -name '*.wav' 2>/dev/null | wc -l)
    exists=no; \$sudo test -d \"\$dir\" && exists=yes
    via=none; [ -z \"\$sudo\" ] || via=sudo  # one word: the fields below are split on spaces
    echo \"PROBE \$exists \$via \$mine \$all \$dir\""
}

# Copy the WAV + JSON pairs matching $pattern from host:dir into dest; prints how many were new.
fetch() {
  local host=$1 sudo=$2 dir=$3 dest=$4 pattern=$5 before after
  mkdir -p "$dest"
  before=$(find "$dest" -maxdepth 1 -name '*.wav' | wc -l)
  local rsync_path=()
  [ "$sudo" = none ] || rsync_path=(--rsync-path="sudo -n rsync")
  # -rt: files and times, no owners or modes (they are the service user's on the Pi).
  # --ignore-existing: a clip never changes once saved, and a local copy is never overwritten.
  # Only matching WAV + JSON pairs; never a label file or a half-written temp file.
  ww_rsync -rt --ignore-existing "${rsync_path[@]}" \
    --exclude '.*' --exclude '*.label.json*' \
    --include "$pattern.wav" --include "$pattern.json" --exclude '*' \
    "$host:$dir/" "$dest/" >&2 || return 1
  after=$(find "$dest" -maxdepth 1 -name '*.wav' | wc -l)
  echo "$((after - before)) $after"
}

# The room snippets ([snippets] in the Pi's config; off by default): one phrase for the result line.
snippets_part() {
  local host=$1 line exists sudo mine all dir dest counts
  line=$(probe "$host" "${REMOTE_SNIPPETS_DIR:-}" snippets "$DEFAULT_SNIPPETS_DIR" '*_snippet' \
         | grep '^PROBE ' | tail -n 1) || true
  read -r _ exists sudo mine all dir <<<"$line"
  if [ "${exists:-no}" != yes ] || [ "$mine" = 0 ]; then
    return 0
  fi
  dest=$snippets_root/$(host_dir "$host")
  if [ -n "${DRY_RUN:-}" ]; then
    echo "; would fetch up to $mine room snippet(s) into $dest"
    return 0
  fi
  counts=$(fetch "$host" "$sudo" "$dir" "$dest" '*_snippet') || { echo "; FAILED to fetch room snippets"; return 1; }
  read -r new total <<<"$counts"
  echo "; $new new room snippet(s) into $dest ($total in all; make finetune learns them as not the keyword)"
}

collect_one() {
  local host=$1 line dir exists sudo mine all dest counts snips rc=0
  line=$(probe "$host" "${REMOTE_DIR:-}" save "$DEFAULT_REMOTE_DIR" "*_${safe_kw}" | grep '^PROBE ' | tail -n 1) || true
  [ -n "$line" ] || { echo "RESULT FAILED: cannot ssh to $host"; return 1; }
  read -r _ exists sudo mine all dir <<<"$line"
  snips=$(snippets_part "$host") || rc=1
  if [ "$exists" != yes ]; then
    echo "RESULT nothing to fetch: $dir does not exist on $host (is [save] enabled = true in its config?)$snips"
    return $rc
  fi
  dest=$out_root/$(host_dir "$host")
  if [ "$mine" = 0 ]; then
    echo "RESULT nothing to fetch: no '$keyword' clips in $host:$dir ($all clip(s) of other keywords; KEYWORD=...?)$snips"
    return $rc
  fi
  if [ -n "${DRY_RUN:-}" ]; then
    echo "RESULT DRY_RUN: would fetch up to $mine '$keyword' clip(s) from $host:$dir into $dest$snips"
    return 0
  fi
  counts=$(fetch "$host" "$sudo" "$dir" "$dest" "*_${safe_kw}") \
    || { echo "RESULT FAILED: rsync from $host:$dir failed$snips"; return 1; }
  read -r new total <<<"$counts"
  echo "RESULT fetched $new new clip(s) into $dest ($total in all; label them with: make label)$snips"
  return $rc
}

ww_hosts "$@"  # arguments, else $HOST from the environment (never the recipe line)
case "${REMOTE_DIR:-}${REMOTE_SNIPPETS_DIR:-}" in
  *"'"*) echo "REMOTE_DIR and REMOTE_SNIPPETS_DIR must not contain a single quote" >&2; exit 2 ;;
esac
ww_init
ww_each_host collect_one "${WW_HOSTS[@]}"
