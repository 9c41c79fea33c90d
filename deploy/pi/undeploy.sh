#!/bin/sh
# Remove wakeword from the Pi, as root (`make undeploy HOST=pi` runs it with sudo).
#
#   sudo sh undeploy.sh            stop and disable the services, remove the units, /opt/wakeword
#                                  and /usr/local/bin/wakeword; KEEP /etc/wakeword (your config),
#                                  /var/lib/wakeword (saved detections) and the wakeword user
#   sudo sh undeploy.sh --purge    also remove those three (and the udev rule deploy added)
#
# Debian packages and the gpio/audio groups stay: other software may use them.
# Last line: "RESULT undeployed ..." or "RESULT FAILED: ...".
set -eu
ROOT=/opt/wakeword
purge=no
case "${1:-}" in
  --purge) purge=yes ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "undeploy.sh must run as root" >&2; exit 2; }

for unit in wakeword.service wakeword-wyoming.service; do
  if [ -e "/etc/systemd/system/$unit" ]; then
    systemctl disable --now -q "$unit" 2>/dev/null || systemctl stop "$unit" || true
    rm -f "/etc/systemd/system/$unit"
    systemctl daemon-reload
    systemctl reset-failed "$unit" 2>/dev/null || true
    echo "  stopped and removed $unit"
  fi
done
if [ "$(readlink /usr/local/bin/wakeword 2>/dev/null || true)" = "$ROOT/current/bin/wakeword" ]; then
  rm -f /usr/local/bin/wakeword
fi
if [ -d "$ROOT" ]; then rm -rf "$ROOT"; echo "  removed $ROOT"; fi
if [ "$purge" = yes ]; then
  rm -rf /etc/wakeword /var/lib/wakeword /etc/udev/rules.d/60-wakeword-gpio.rules
  if getent passwd wakeword >/dev/null; then userdel wakeword; fi
  echo "  removed /etc/wakeword, /var/lib/wakeword and the wakeword user"
  echo "RESULT undeployed (purged)"
else
  kept=""
  for p in /etc/wakeword /var/lib/wakeword; do
    if [ -e "$p" ]; then kept="$kept $p"; fi
  done
  echo "RESULT undeployed${kept:+ (kept$kept; PURGE=1 removes them)}"
fi
