"""`make e2e-pi`: deploy onto an emulated Pi and prove the LED lights on the keyword.

Steps (each timed; the summary prints at the end):

1. build or reuse the arm64 image of the suite (``pi-image.sh``) and train the tiny tone model;
2. boot the VM (qemu-system-aarch64, cortex-a72; ssh on 127.0.0.1 only) and ask its Python
   which GPIO provider ``install.sh`` will find (see "Suites" below);
3. ``make deploy HOST=pibox`` into it, exactly as a user would (SSH_CONFIG names the VM); the
   venv it made must run exactly the versions of the lock files (deploy/requirements*.lock), and
   hold nothing else;
4. a negative recording played into snd-aloop must leave the LED line off;
5. the household mode (``[snippets]``, on in this test's config and kept often): 40 s of room noise
   played in must leave room snippets on the Pi, while nothing is dropped;
6. a positive recording must switch the LED on -- read back from the kernel's GPIO state (debugfs)
   of the PL061 chip the daemon drives through rpi-lgpio (where the suite has no rpi-lgpio: from
   the journal, see below) -- while the snippets are being kept;
7. ``make collect HOST=pibox`` must fetch the snippets (WAV + JSON pairs, none of them silence or
   the keyword), and the dataset stage's plan (``train.sources.plan_recordings``) must take every
   one of them as a negative, as ``make finetune`` would;
8. ``kill -9`` of the daemon must be followed by a restart (Restart=on-failure), which still
   lights the LED on the next positive;
9. power off.

The "keyword" is a 1 kHz tone burst (:mod:`bench.tonemodel`): a real ONNX model with a known
right answer that trains in seconds. Assertions are on LED transitions and journal lines,
never on timing: inference under emulation is 90-400x slower than on the host.

Suites (SUITE=bookworm, the default, or SUITE=trixie; each has its own cached image):

- bookworm: Debian 12, Python 3.11, the base of Raspberry Pi OS Bookworm. rpi-lgpio and lgpio come
  from requirements-gpio.lock (cp311 wheels) and drive the PL061 line.
- trixie: Debian 13, Python 3.13, the base of today's Raspberry Pi OS. lgpio publishes no cp313
  wheel (requirements-gpio.lock has none), and Debian 13 has no python3-rpi-lgpio (Raspberry Pi
  OS has it in its own archive, which this test cannot reach), so install.sh installs no GPIO
  provider and says the LED cannot be driven. The daemon then runs with backend "auto", which
  logs the LED instead of driving it: the test checks that install.sh said so, that nothing
  drives the GPIO line, and reads the LED's on/off from the journal ("LED (GPIO n, log backend)
  on") instead of debugfs. The venv must equal requirements.lock alone. All else is the same.

Which of the two applies is decided from the booted Pi's Python and the GPIO lock's targets, not
from the suite's name: a GPIO lock with cp313 wheels makes trixie drive the line too.
Environment: SUITE (bookworm or trixie), LED_PIN (BCM number on the PL061, 0-7 except 3;
default 6), KEEP_VM=1 (leave the VM running at the end for a look: its ssh config is printed).
Exit 0 PASS, 1 FAIL, 2 usage.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.testbed.qemu import SUITES

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger("e2e-pi")

LOCK = REPO / "deploy" / "requirements.lock"
GPIO_LOCK = REPO / "deploy" / "requirements-gpio.lock"
"""What the Pi's venv must run: the emulated board is no Pi, so rpi-lgpio comes from its lock too,
where that lock has wheels for the Pi's Python (install.sh decides the same way)."""

PI_TAG = (
    "import platform, sys; print('cp%d%d-%s' % (*sys.version_info[:2], platform.machine()), sys.version.split()[0])"
)
"""Run by the Pi's python3: its wheel tag (cp313-aarch64) and version."""

LOGGED_LED = re.compile(r"^\[\s*([0-9.]+)\].*LED \(GPIO (\d+), log backend\) (on|off)\s*$")
"""A journal line (-o short-monotonic) of the daemon's log backend:
``[  812.5] pibox wakeword[..]: ... LED (GPIO 6, log backend) on``."""

# Run by the venv's python on the Pi: what it imports for each name, and what the venv itself holds.
VENV_REPORT = r"""
import importlib.metadata as m, json, sys, sysconfig
names = json.loads(sys.argv[1])
def imported(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
local = {d.metadata["Name"]: d.version for d in m.distributions(path=[sysconfig.get_paths()["purelib"]])}
print(json.dumps({"imported": {n: imported(n) for n in names}, "local": local}))
"""

PLAYBACK = "hw:Loopback,0,0"
"""Where the test plays its recordings; the daemon captures the other end, hw:0,1."""

# Logs every change of one PL061 line as "<uptime_s> hi|lo|-" ("-": not requested by anyone).
LED_WATCH = r"""#!/bin/sh
pin=$1 out=$2 last=x
dbg=/sys/kernel/debug/gpio
base=$(sed -n 's/^gpiochip[0-9]*: GPIOs \([0-9]*\)-.*pl061.*/\1/p' $dbg | head -n 1)
while :; do
  state=$(sed -n "s/^ *gpio-$((base + pin)) (.*) *\(in\|out\) *\(hi\|lo\).*/\2/p" $dbg)
  [ -n "$state" ] || state=-
  if [ "$state" != "$last" ]; then echo "$(cut -d' ' -f1 /proc/uptime) $state" >> "$out"; last=$state; fi
  sleep 0.05
done
"""


def pi_config(led_pin: int, backend: str = "rpi") -> str:
    return f"""# wakeword on the emulated Pi (written by deploy/testbed/e2e_pi.py)
model = "/opt/wakeword/current/model.onnx"
[capture]
# snd-aloop: whatever is played into hw:Loopback,0,0 comes out here
device = "hw:0,1"
channels = 1
rate_hz = 16000
# qemu runs arm64 code 90-400x slower than a Pi: the model's front end (~1 % of a Pi 4 core)
# takes most of an emulated core, more when the host is busy. Longer steps and a longer
# backlog let the daemon work through the recordings late rather than drop them as stale, and
# the energy gate skips the loopback's silence between recordings so it catches up there (a
# real Pi keeps up without either); the LED is still checked on the keyword.
infer_every_s = 0.96
queue_s = 60.0
stale_after_s = 30.0
no_audio_s = 10.0
[gate]
enabled = true
[gpio]
backend = "{backend}"
pin = {led_pin}
active_high = true
mode = "pulse"
# long enough for a watcher polling debugfs under emulation to see it
on_s = 3.0
[snippets]
# the household mode (off by default; 6 snippets of 5 s an hour): kept often here, so that the
# test's 40 s of room noise leaves some
enabled = true
per_hour = 720
length_s = 2.0
guard_s = 2.0
"""


SNIPPETS_DIR = "/var/lib/wakeword/snippets"
"""[snippets] dir's default, where the daemon keeps them and `make collect` finds them."""


class Failed(Exception):
    """The end-to-end check failed (one line: what was expected, what happened)."""


@dataclass
class Timer:
    steps: list[tuple[str, float]] = field(default_factory=list)

    def run(self, name: str, fn, *args, **kw):
        log.info("== %s", name)
        t0 = time.monotonic()
        try:
            return fn(*args, **kw)
        finally:
            self.steps.append((name, time.monotonic() - t0))
            log.info("   %s: %.1f s", name, self.steps[-1][1])

    def summary(self) -> str:
        lines = [f"  {name:<44} {s:7.1f} s" for name, s in self.steps]
        lines.append(f"  {'total':<44} {sum(s for _, s in self.steps):7.1f} s")
        return "\n".join(lines)


def make_recordings(work: Path) -> dict[str, Path]:
    from bench.tonemodel import tone_clip
    from device.params import AudioParams
    from device.wavio import write_wav

    rate = AudioParams().sample_rate
    out = {"negative": work / "negative.wav", "positive": work / "positive.wav", "room": work / "room.wav"}
    write_wav(out["negative"], tone_clip(8.0, [], seed=11), rate)
    write_wav(out["positive"], tone_clip(8.0, [3.0], seed=12), rate)
    # 40 s of room noise: at 720 snippets an hour (one per 5 s) no snippet in it is a chance of e^-7
    write_wav(out["room"], tone_clip(40.0, [], seed=13), rate)
    return out


def build_model(work: Path) -> Path:
    import torch

    from bench.tonemodel import build_tone_model

    torch.set_num_threads(1)
    return build_tone_model(work / "tone.onnx")


class Scenario:
    def __init__(self, vm, model: Path, recordings: dict[str, Path], work: Path, led_pin: int):
        self.vm, self.ssh = vm, vm.ssh
        self.model, self.recordings, self.work, self.led_pin = model, recordings, work, led_pin
        self.led_driven = True
        """rpi-lgpio from the GPIO lock drives the PL061 line; False: no provider, the LED is only logged."""
        self.locks: tuple[Path, ...] = (LOCK, GPIO_LOCK)
        self.difference = ""
        """How this suite's run differs from the reference (bookworm) one; "" if it does not."""
        self.household_since = 0.0
        """Wall-clock time (the Pi's) the room noise started."""

    def pi_platform(self) -> None:
        """Which GPIO provider install.sh will find: the GPIO lock's, if it has wheels for the Pi's Python."""
        from device.lockfile import targets

        tag, version = self.sh(f"python3 -c {shlex.quote(PI_TAG)}").split()
        gpio_targets = targets(GPIO_LOCK.read_text())
        self.led_driven = tag in gpio_targets
        log.info("   the Pi runs Python %s (%s)", version, tag)
        if self.led_driven:
            return
        self.locks = (LOCK,)
        self.difference = (
            f"Python {version}: requirements-gpio.lock has no {tag} wheels (lgpio publishes none; it has "
            f"{' '.join(gpio_targets)}) and this Debian has no python3-rpi-lgpio, so nothing can drive the "
            'GPIO line: the daemon runs with backend "auto", the LED is checked in the journal '
            "(its log backend), not in debugfs, and the venv must equal requirements.lock alone"
        )
        log.warning("   differs from bookworm: %s", self.difference)

    def sh(self, command: str, check: bool = True, timeout_s: float = 600, input_bytes: bytes | None = None) -> str:
        return self.ssh.run(command, check=check, timeout_s=timeout_s, input_bytes=input_bytes).stdout

    def make(self, target: str, *variables: str) -> subprocess.CompletedProcess:
        """``make <target> SSH_CONFIG=<the VM's> <variables>`` as a user types it; prints its output."""
        proc = subprocess.run(
            ["make", "--no-print-directory", "-C", str(REPO), target, f"SSH_CONFIG={self.ssh.config}", *variables],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, WW_LOG_DIR=str(self.work / "logs")),
        )
        print(proc.stdout, flush=True)
        return proc

    def deploy(self) -> None:
        config = self.work / "pi-config.toml"
        config.write_text(pi_config(self.led_pin, "rpi" if self.led_driven else "auto"))
        proc = self.make("deploy", "HOST=pibox", f"MODEL={self.model}", f"PI_CONFIG={config}")
        if proc.returncode != 0:
            raise Failed(f"make deploy failed (exit {proc.returncode})")
        if self.sh("systemctl is-active wakeword", check=False).strip() != "active":
            raise Failed("make deploy succeeded but wakeword.service is not active")
        if not self.led_driven and "the LED cannot be driven" not in proc.stdout:
            raise Failed("install.sh found no GPIO provider for this Python but did not say the LED cannot be driven")

    def venv_runs_the_lock(self) -> None:
        """The Pi's installed versions equal the lock files: what it imports, and what its venv holds."""
        from device.lockfile import canonical, parse

        pins = {p.name: p.version for path in self.locks for p in parse(path.read_text())}
        out = self.sh(
            f"/opt/wakeword/current/venv/bin/python - {shlex.quote(json.dumps(sorted(pins)))}",
            input_bytes=VENV_REPORT.encode(),
        )
        report = json.loads(out.strip().splitlines()[-1])
        wrong = [
            f"{n} {report['imported'][n] or 'missing'} (lock: {v})"
            for n, v in sorted(pins.items())
            if report["imported"][n] != v
        ]
        local = {canonical(n): v for n, v in report["local"].items()}
        extra = sorted(f"{n}=={v}" for n, v in local.items() if n not in pins and n not in ("pip", "setuptools"))
        if wrong or extra:
            raise Failed(
                f"the Pi's venv is not the lock: {'; '.join(wrong) or 'versions ok'}; "
                f"not in the lock: {', '.join(extra) or 'nothing'}"
            )
        log.info(
            "   the Pi's venv runs the lock (%s): %s",
            " + ".join(p.name for p in self.locks),
            " ".join(f"{n}=={v}" for n, v in sorted(pins.items())),
        )

    def start_led_watch(self) -> None:
        self.ssh.run("cat > /tmp/led-watch.sh", input_bytes=LED_WATCH.encode())
        self.sh(
            f"sudo -n rm -f /run/led-watch.log; sudo -n nohup sh /tmp/led-watch.sh {self.led_pin} "
            "/run/led-watch.log >/dev/null 2>&1 &"
        )
        if not self.wait(lambda: self.gpio_line_states(), 60):
            raise Failed("the LED watcher did not start")
        if not self.led_driven:
            if self.gpio_line_states()[-1][1] != "-":
                raise Failed(f"GPIO {self.led_pin} should be driven by nobody, debugfs says {self.gpio_line_states()}")
            if "the LED is only logged" not in self.journal(0):
                raise Failed("the daemon did not warn that the LED is only logged")
            log.info("   GPIO %d is driven by nobody; the daemon logs the LED (as install.sh said)", self.led_pin)
            return
        if self.gpio_line_states()[-1][1] != "lo":
            raise Failed(
                f"GPIO {self.led_pin} should be an output driven low by the daemon, debugfs says {self.led_states()}"
            )

    def gpio_line_states(self) -> list[tuple[float, str]]:
        """The LED line's changes in debugfs: (uptime s, "hi"|"lo"|"-")."""
        text = self.sh("cat /run/led-watch.log 2>/dev/null", check=False)
        return [(float(t), s) for t, s in (line.split() for line in text.splitlines() if line.strip())]

    def led_states(self) -> list[tuple[float, str]]:
        """The LED's changes, (uptime s, "hi"|"lo"): the GPIO line, or the log backend's journal lines."""
        if self.led_driven:
            return self.gpio_line_states()
        text = self.sh(
            "sudo -n journalctl -u wakeword -o short-monotonic --no-pager | grep -F 'log backend)' || true",
            check=False,
        )
        return [
            (float(m[1]), "hi" if m[3] == "on" else "lo")
            for m in map(LOGGED_LED.match, text.splitlines())
            if m and int(m[2]) == self.led_pin
        ]

    def journal(self, since_s: float) -> str:
        return self.sh(f"sudo -n journalctl -u wakeword -o cat --no-pager --since=@{since_s:.0f}")

    def play(self, name: str) -> tuple[float, float]:
        """Play a recording into the loopback; returns (uptime before, wall clock before)."""
        self.ssh.run(f"cat > /tmp/{name}.wav", input_bytes=self.recordings[name].read_bytes())
        for _attempt in range(3):
            t_up = float(self.sh("cut -d' ' -f1 /proc/uptime"))
            t_wall = float(self.sh("date +%s"))
            # snd-aloop answers a write with EIO when the capture side is reopened under it
            # (seen once under emulation): the daemon may reopen a device, so play again.
            played = self.ssh.run(f"aplay -q -D {PLAYBACK} /tmp/{name}.wav", check=False, timeout_s=600)
            if played.returncode == 0:
                return t_up, t_wall
            log.warning(
                "   aplay failed (%s); daemon journal: %s",
                played.stderr.strip(),
                self.journal(t_wall - 1)[-600:].replace("\n", " | "),
            )
            time.sleep(2)
        raise Failed(
            f"could not play {name}.wav into the loopback 3 times: {played.stderr.strip()}; "
            f"journal: {self.journal(t_wall - 60)[-1500:]}"
        )

    @staticmethod
    def wait(predicate, timeout_s: float, interval_s: float = 1.0):
        t0 = time.monotonic()
        while True:
            value = predicate()
            if value or time.monotonic() - t0 > timeout_s:
                return value
            time.sleep(interval_s)

    def negative_keeps_led_off(self) -> None:
        t_up, t_wall = self.play("negative")
        # Give the emulated daemon time to work through what it heard, then look.
        time.sleep(10)
        lit = [s for s in self.led_states() if s[0] >= t_up and s[1] == "hi"]
        if lit:
            raise Failed(f"the LED lit on the negative recording: {lit}")
        if "detected" in self.journal(t_wall - 1):
            raise Failed("the journal reports a detection on the negative recording")

    def positive_lights_led(self) -> None:
        t_up, t_wall = self.play("positive")
        lit = self.wait(lambda: [s for s in self.led_states() if s[0] >= t_up and s[1] == "hi"], 120)
        if not lit:
            raise Failed(
                f"the LED did not light on the positive recording (debugfs: {self.led_states()[-5:]}; "
                f"journal: {self.journal(t_wall - 1)[-1500:]})"
            )
        if not self.wait(lambda: "detected 'tone'" in self.journal(t_wall - 1), 60):
            raise Failed("the LED lit but the journal has no detection line")
        off = self.wait(lambda: [s for s in self.led_states() if s[0] > lit[0][0] and s[1] == "lo"], 60)
        if not off:
            raise Failed("the LED did not go off again after the pulse")
        log.info(
            "   LED on %.1f s after playback started, off again %.1f s later", lit[0][0] - t_up, off[0][0] - lit[0][0]
        )

    def snippets_on_pi(self) -> list[str]:
        out = self.sh(f"sudo -n find {SNIPPETS_DIR} -maxdepth 1 -name '*_snippet.wav'", check=False)
        return sorted(line for line in out.split() if line)

    def household_snippets_kept(self) -> None:
        """Room noise played in: the daemon keeps snippets of it, and drops no audio meanwhile."""
        before = self.snippets_on_pi()
        _t_up, t_wall = self.play("room")
        self.household_since = t_wall - 1
        kept = self.wait(lambda: [p for p in self.snippets_on_pi() if p not in before], 240, interval_s=3)
        if not kept:
            raise Failed(
                f"no room snippet kept in {SNIPPETS_DIR} after 40 s of room noise: "
                f"{self.sh('systemctl show -p StatusText wakeword', check=False).strip()}; "
                f"journal: {self.journal(t_wall - 1)[-1500:]}"
            )
        status = self.sh("systemctl show -p StatusText --value wakeword").strip()
        if "room snippet(s) kept" not in status:
            raise Failed(f"snippets are kept but the status line does not say so: {status!r}")
        log.info("   %d room snippet(s) kept on the Pi; status: %s", len(kept), status)

    def nothing_dropped(self) -> None:
        """While the snippets were being kept, the daemon dropped no audio and reset nothing."""
        journal = self.journal(self.household_since)
        lost = [line for line in journal.splitlines() if "dropped" in line or "lost (" in line]
        if lost:
            raise Failed(f"audio was lost while snippets were kept: {lost[:3]}")

    def collected_and_used(self) -> None:
        """`make collect` fetches the snippets; the dataset stage takes each one as a negative."""
        import soundfile as sf

        from device.params import AudioParams
        from train.dataconfig import DataConfig
        from train.sources import plan_recordings

        recordings = self.work / "recordings"
        on_pi = {Path(p).name for p in self.snippets_on_pi()}  # (the daemon may keep more meanwhile)
        proc = self.make(
            "collect",
            "HOST=pibox",
            "KEYWORD=tone",
            f"OUT={recordings / 'tone' / 'field'}",
            f"SNIPPETS_OUT={recordings / 'tone' / 'snippets'}",
        )
        if proc.returncode != 0 or "new room snippet(s)" not in proc.stdout:
            raise Failed(f"make collect did not fetch the room snippets (exit {proc.returncode})")
        got = sorted((recordings / "tone" / "snippets" / "pibox").glob("*_snippet.wav"))
        if not on_pi or not on_pi <= {p.name for p in got}:
            raise Failed(f"make collect fetched {len(got)} snippet(s) of the {len(on_pi)} the Pi held")
        for wav in got:
            meta = json.loads(wav.with_suffix(".json").read_text())
            audio, rate = sf.read(wav, dtype="float32")
            if meta.get("kind") != "snippet" or rate != AudioParams().sample_rate:
                raise Failed(f"{wav.name}: not a snippet pair of the model's rate ({meta}, {rate} Hz)")
            if abs(len(audio) / rate - 2.0) > 0.01 or float(abs(audio).max()) < 1e-3:
                raise Failed(f"{wav.name}: {len(audio) / rate:.2f} s, peak {abs(audio).max():.4f}: not 2 s of room")
        plan = plan_recordings(DataConfig(recordings_dir=str(recordings)), "tone", AudioParams())
        used = plan.origins.get("recordings/snippets", 0)
        if used != len(got) or plan.unreadable:
            raise Failed(
                f"the dataset stage takes {used} of the {len(got)} snippets as negatives "
                f"(origins {plan.origins}; unreadable {plan.unreadable})"
            )
        log.info("   make collect fetched %d snippet(s); the dataset stage takes all as negatives", len(got))

    def kill_is_restarted(self) -> None:
        pid = self.sh("systemctl show -p MainPID --value wakeword").strip()
        if not pid.isdigit() or pid == "0":  # `kill -9 0` would kill this ssh session instead
            status = self.sh("systemctl status --no-pager wakeword", check=False)
            raise Failed(
                f"wakeword has no main process to kill (MainPID={pid!r}): {status[-800:]} "
                f"journal: {self.journal(0)[-2500:]}"
            )
        self.sh(f"sudo -n kill -9 {pid}")

        def restarted():
            props = self.sh("systemctl show -p MainPID -p NRestarts -p ActiveState -p StatusText wakeword")
            d = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
            return (
                d.get("ActiveState") == "active"
                and d.get("MainPID") not in ("0", pid)
                and d.get("NRestarts") == "1"
                and d.get("StatusText", "").startswith("listening")
            )

        if not self.wait(restarted, 300, interval_s=2):
            props = self.sh("systemctl show -p NRestarts -p MainPID wakeword", check=False).split()
            raise Failed(
                f"wakeword was not restarted after kill -9 of {pid} ({' '.join(props)}): "
                f"{self.sh('SYSTEMD_COLORS=0 systemctl status wakeword --no-pager', check=False)} "
                f"journal: {self.journal(0)[-2500:]}"
            )


def run(work: Path, led_pin: int, keep_vm: bool, suite: str = "bookworm") -> int:
    from deploy.testbed.qemu import EmulatedPi, build_image

    timer = Timer()
    log.info("emulated Pi: Debian %s", suite)
    image = timer.run(f"image {suite} (cached after the first run)", build_image, suite)
    model = timer.run("tone model", build_model, work)
    recordings = make_recordings(work)
    vm = EmulatedPi(image, work / "vm")
    ok = False
    s = None
    try:
        timer.run("boot to ssh", vm.start)
        s = Scenario(vm, model, recordings, work, led_pin)
        timer.run("the Pi's Python and GPIO provider", s.pi_platform)
        timer.run("make deploy (fresh Pi: venv + pip install)", s.deploy)
        timer.run("the venv's versions equal the lock files", s.venv_runs_the_lock)
        timer.run("LED watcher", s.start_led_watch)
        timer.run("negative recording -> LED stays off", s.negative_keeps_led_off)
        timer.run("room noise -> household snippets kept", s.household_snippets_kept)
        timer.run("positive recording -> LED on", s.positive_lights_led)
        timer.run("nothing dropped while snippets were kept", s.nothing_dropped)
        timer.run("make collect -> snippets used as negatives", s.collected_and_used)
        timer.run("kill -9 -> restarted", s.kill_is_restarted)
        timer.run("positive again after the restart", s.positive_lights_led)
        ok = True
    except Failed as exc:
        log.error("FAIL: %s", exc)
    except Exception as exc:  # the harness itself broke: say where, keep the console for a look
        log.exception("FAIL (harness): %s", exc)
    finally:
        if not ok:
            log.error("VM console (last lines):\n%s", vm.console_tail())
        if keep_vm and vm.proc is not None:
            log.info("VM left running: ssh -F %s pibox   (stop: kill %d)", vm.ssh.config, vm.proc.pid)
        else:
            timer.run("power off", vm.stop)
    differs = f"\n  differs from bookworm: {s.difference}" if s is not None and s.difference else ""
    print(f"\ne2e-pi {'PASS' if ok else 'FAIL'} ({suite}){differs}\n{timer.summary()}", flush=True)
    return 0 if ok else 1


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.geteuid() != 0:
        print("e2e-pi: needs root (image build, binfmt); run it as root", file=sys.stderr)
        return 2
    led_pin = int(os.environ.get("LED_PIN", "6"))
    if not 0 <= led_pin <= 7 or led_pin == 3:
        print("e2e-pi: LED_PIN must be a PL061 line 0-7 other than 3 (the power button)", file=sys.stderr)
        return 2
    suite = os.environ.get("SUITE") or "bookworm"
    if suite not in SUITES:
        print(f"e2e-pi: SUITE must be one of {', '.join(SUITES)}", file=sys.stderr)
        return 2
    keep = bool(os.environ.get("KEEP_VM"))
    base = REPO / "build" / "e2e-pi"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    status = run(work, led_pin, keep, suite)
    if status == 0 and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work} (deploy logs, VM console, model, recordings)")
    return status


if __name__ == "__main__":
    sys.exit(main())
