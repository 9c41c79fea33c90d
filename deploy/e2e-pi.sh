#!/usr/bin/env bash
# `make e2e-pi`: deploy onto an emulated arm64 Pi (qemu) and check that the LED lights on the
# keyword and the service survives kill -9. See deploy/testbed/e2e_pi.py for the steps.
# Needs root, the test profile's Debian packages (make setup-test) and .venv (torch, for the
# tiny test model). 12-25 minutes from a cold cache (the image build is most of it), 5-10 warm.
# SUITE=bookworm (default; Debian 12, Python 3.11) or SUITE=trixie (Debian 13, Python 3.13, today's
# Raspberry Pi OS base; its own cached image). On trixie the LED is checked in the journal, not on
# the GPIO line: no rpi-lgpio exists for Python 3.13 there (e2e_pi.py says why).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "e2e-pi: needs root (image build, binfmt); run it as root" >&2; exit 2; }
for tool in qemu-system-aarch64 qemu-img qemu-aarch64-static mmdebstrap ssh rsync; do
  command -v "$tool" >/dev/null || { echo "e2e-pi: $tool is missing; run make setup-test" >&2; exit 1; }
done
exec nice -n 5 "$repo/.venv/bin/python" -m deploy.testbed.e2e_pi "$@"
