# shellcheck shell=bash
# ssh helpers for the workstation side of deploy/ (sourced by bash scripts, not run).
#
# Hosts are what ssh accepts: an alias from ~/.ssh/config, host, or user@host. Environment:
#   SSH_CONFIG=file   use this ssh_config instead of ~/.ssh/config (tests: a throwaway key and alias)
#   SSH_OPTS="..."    extra ssh options, e.g. "-p 2222 -i ~/.ssh/pi_key"; they win over ours
#
#   ww_init                          call once: sets up connection sharing and the cleanup trap
#   ww_hosts ARG...                  sets WW_HOSTS: the arguments, or else the words of $HOST
#                                    (a Makefile should pass HOST through the environment: on
#                                    a recipe line a shell would run HOST="pi;reboot"), checked
#   ww_check_hosts HOST...           one clear line and exit 2 for an empty or malformed host
#   ww_ssh HOST COMMAND              run COMMAND (one string, remote sh syntax) on HOST
#   ww_root HOST COMMAND             the same as root: sudo -n unless the ssh user is root
#   ww_rsync SRC HOST:DEST [ARGS]    rsync over the same ssh connection
#   ww_each_host FUNC HOST...        FUNC HOST for every host; several run in parallel, each
#                                    with its own log, then one result line per host (see there)
#   ww_log_name HOST                 file-name-safe form of HOST
#
# One connection per host is opened (ControlMaster) and shared by every ssh/rsync call, so a
# deploy costs one ssh handshake per host; ww_init's trap closes them when the script exits.

WW_REMOTE_ROOT='ww_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }'

ww_init() {
  WW_CTL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ww-ssh.XXXXXX")
  WW_SSH=(ssh)
  # shellcheck disable=SC2206  # SSH_OPTS is a list of words on purpose
  [ -n "${SSH_OPTS:-}" ] && WW_SSH+=(${SSH_OPTS})
  [ -n "${SSH_CONFIG:-}" ] && WW_SSH+=(-F "$SSH_CONFIG")
  WW_SSH+=(-o BatchMode=yes -o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=4
           -o ControlMaster=auto -o "ControlPath=$WW_CTL_DIR/%C" -o ControlPersist=120)
  trap ww_cleanup EXIT
}

ww_cleanup() {
  local sock
  for sock in "$WW_CTL_DIR"/*; do
    [ -S "$sock" ] && ssh -o "ControlPath=$sock" -O exit dummy >/dev/null 2>&1
  done
  rm -rf "$WW_CTL_DIR"
}

ww_hosts() {
  if [ $# -gt 0 ]; then WW_HOSTS=("$@")
  else
    # every word of every line (read -a alone keeps only the first line: HOST=$'pi1\npi2' lost pi2)
    read -r -d '' -a WW_HOSTS <<< "${HOST:-}" || true
  fi
  ww_check_hosts "${WW_HOSTS[@]}"
}

ww_check_hosts() {
  local h
  [ $# -gt 0 ] || { echo "no HOST given: make <target> HOST=pi (an ssh alias, user@host, or \"pi1 pi2\")" >&2; exit 2; }
  for h in "$@"; do
    if [[ ! "$h" =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9._:%-]+$ || "$h" == -* ]]; then
      echo "bad HOST '$h': expected an ssh alias, host or user@host" >&2
      exit 2
    fi
  done
}

ww_ssh() {
  local host=$1; shift
  "${WW_SSH[@]}" "$host" "$@"
}

ww_root() {
  local host=$1; shift
  "${WW_SSH[@]}" "$host" "$WW_REMOTE_ROOT; ww_root $*"
}

ww_rsync() {
  # rsync splits -e on spaces and honours quotes: quote every word of the ssh command.
  local rsh="" w
  for w in "${WW_SSH[@]}"; do rsh+="'$w' "; done
  rsync -e "$rsh" "$@"
}

ww_log_name() {
  printf '%s' "$1" | tr -c 'A-Za-z0-9@._-' '_'
}

# ww_each_host FUNC HOST...
# FUNC HOST does the work and prints what it does; its last line starting with "RESULT " is the
# host's result ("RESULT <word> <details>"); its exit status says ok (0) or not. One host: the
# output streams to the terminal. Several: they run in parallel, each into
# $WW_LOG_DIR/<host>.log, and then every host gets one line "<host>: <result>". Set
# WW_SHOW_LOGS=1 to print each log under a header instead (status, logs). Returns 1 if any
# host failed.
ww_each_host() {
  local func=$1; shift
  local logdir=${WW_LOG_DIR:-build/deploy/logs}
  mkdir -p "$logdir"
  if [ $# -eq 1 ]; then
    local log rc
    log=$logdir/$(ww_log_name "$1").log
    set +e
    "$func" "$1" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    [ -n "${WW_SHOW_LOGS:-}" ] || ww_result_line "$1" "$log" "$rc"
    return $(( rc != 0 ))
  fi
  local host pids=() failed=0 i=0 rc
  for host in "$@"; do
    ( "$func" "$host" ) >"$logdir/$(ww_log_name "$host").log" 2>&1 &
    pids+=($!)
  done
  for host in "$@"; do
    set +e; wait "${pids[$i]}"; rc=$?; set -e
    i=$((i + 1))
    local log
    log=$logdir/$(ww_log_name "$host").log
    if [ -n "${WW_SHOW_LOGS:-}" ]; then
      echo "=== $host ==="
      cat "$log"
    else
      ww_result_line "$host" "$log" "$rc"
    fi
    [ "$rc" = 0 ] || failed=1
  done
  return $failed
}

ww_result_line() {
  local host=$1 log=$2 rc=$3 result
  result=$(grep -a '^RESULT ' "$log" | tail -n 1 | cut -d' ' -f2- || true)
  if [ -z "$result" ]; then
    result="FAILED: $(grep -av '^\s*$' "$log" | tail -n 1 || true)"
  fi
  [ "$rc" = 0 ] || [[ "$result" == FAILED* || "$result" == ROLLED* ]] || result="FAILED ($result)"
  echo "$host: $result  [log: ${log#"$PWD"/}]"
}
