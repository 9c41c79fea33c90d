"""`make deploy` into a real target: a booted Debian container (systemd-nspawn: systemd as PID 1,
journald, sshd on loopback), reached over real ssh and rsync with a throwaway key, as user `pi`
with passwordless sudo like a Raspberry Pi.

The daemon is the real `wakeword listen` with the real tone model; its microphone is ALSA's
file plugin replaying a raw file (unpaced: it spins a core, so every test stops the unit when
done), its LED the fake GPIO backend. The tests share one container and run in file order.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.tonemodel import tone_clip
from tests.deploy.deploy_helpers import make, result_lines

pytestmark = pytest.mark.needs_root("boots a systemd-nspawn container (make test as root runs this tier)")

ALSA_CONF = """# The microphone of the test machine: a raw 16 kHz mono file replayed by ALSA's file plugin.
pcm.wwfile {
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "/srv/wakeword-test/mic.raw"
  format "raw"
}
pcm.wwmic {
  type plug
  slave { pcm "wwfile"; format S16_LE; rate 16000; channels 1 }
}
"""

PI_CONFIG = """# wakeword on the nspawn test machine
model = "/opt/wakeword/current/model.onnx"
[capture]
device = "wwmic"
channels = 1
rate_hz = 16000
[gpio]
backend = "fake"
pin = 17
fake_edge_log = "/run/wakeword/led.log"
"""


class Machine:
    """The container plus the `make` calls the tests repeat."""

    def __init__(self, container, tone_model: Path, workdir: Path):
        self.container = container
        self.ssh = container.ssh
        self.model = tone_model
        from deploy.testbed.ssh import free_port

        self.config = workdir / "pi-config.toml"
        self.wyoming_port = free_port()  # the container shares this machine's network
        self.config.write_text(PI_CONFIG + f'[wyoming]\nuri = "tcp://127.0.0.1:{self.wyoming_port}"\n')
        self.logs = workdir / "logs"

    def make(self, target: str, *assignments: str, host: str | None = None):
        return make(
            target,
            f"HOST={host or self.ssh.alias}",
            f"SSH_CONFIG={self.ssh.config}",
            f"MODEL={self.model}",
            f"PI_CONFIG={self.config}",
            *assignments,
            env={"WW_LOG_DIR": str(self.logs)},
        )

    def sh(self, command: str, check: bool = True) -> str:
        return self.ssh.run(command, check=check).stdout

    def root(self, command: str, check: bool = True) -> str:
        return self.sh(f"sudo -n sh -c '{command}'", check=check)

    def prop(self, name: str) -> str:
        return self.sh(f"systemctl show -p {name} --value wakeword").strip()

    def active(self) -> bool:
        return self.sh("systemctl is-active wakeword", check=False).strip() == "active"

    def current(self) -> str:
        return Path(self.sh("readlink /opt/wakeword/current").strip()).name


@pytest.fixture(scope="module")
def machine(nspawn_root, tone_model, tmp_path_factory):
    from deploy.testbed.nspawn import Container

    work = tmp_path_factory.mktemp("nspawn")
    mic = (tone_clip(20.0, [2.0, 8.0, 14.0], seed=7) * 32767).astype("<i2").tobytes()
    container = Container(
        nspawn_root, work / "machine", files={"/etc/asound.conf": ALSA_CONF.encode(), "/srv/wakeword-test/mic.raw": mic}
    )
    with container:
        yield Machine(container, tone_model, work)


@pytest.fixture(scope="module")
def first_deploy(machine):
    return machine.make("deploy")


@pytest.fixture
def running(machine, first_deploy):
    """The good release deployed and the unit active; stopped again after the test."""
    assert first_deploy.returncode == 0, first_deploy.output
    if not machine.active():
        machine.root("systemctl start wakeword")
    yield machine
    machine.root("systemctl stop wakeword", check=False)


def test_deploy_brings_the_service_up(first_deploy, running):
    m = running
    out = first_deploy.output
    assert result_lines(out)["pibox"].startswith("installed "), out
    # A fresh machine: deploy installed what was missing and made the user and the gpio group.
    assert "installed Debian packages: python3-systemd (" in out
    assert "created group gpio" in out and "created user wakeword" in out
    assert "Active: active (running)" in out  # it printed systemctl status
    assert m.active()
    status = m.sh("SYSTEMD_COLORS=0 systemctl status wakeword --no-pager")
    assert "Status: \"listening for 'tone' on 'wwmic'" in status
    journal = m.root("journalctl -u wakeword -o cat --no-pager")
    assert "listening on 'wwmic' (1 ch, 16000 Hz" in journal and "keyword 'tone'" in journal
    # Unprivileged, with the groups for the microphone and the LED.
    pid = m.prop("MainPID")
    assert m.sh(f"ps -o user= -p {pid}").strip() == "wakeword"
    gids = set(m.root(f"grep ^Groups: /proc/{pid}/status").split()[1:])
    assert {m.sh("getent group audio").split(":")[2], m.sh("getent group gpio").split(":")[2]} <= gids
    assert m.root("cat /etc/wakeword/config.toml") == m.config.read_text()
    assert m.root("cat /run/wakeword/led.log").split()[1:3] == ["17", "0"]  # the fake LED, off
    assert m.sh("readlink /usr/local/bin/wakeword").strip() == "/opt/wakeword/current/bin/wakeword"


def test_second_deploy_changes_nothing(running):
    m = running
    before = (m.prop("InvocationID"), m.current(), m.root("ls -lR --time-style=full-iso /opt/wakeword /etc/wakeword"))
    proc = m.make("deploy")
    assert proc.returncode == 0, proc.output
    assert result_lines(proc.output)["pibox"] == f"unchanged {before[1]}"
    assert "nothing changed" in proc.stdout
    assert (
        m.prop("InvocationID"),
        m.current(),
        m.root("ls -lR --time-style=full-iso /opt/wakeword /etc/wakeword"),
    ) == before


def test_deploy_starts_a_stopped_service(machine, first_deploy):
    m = machine
    assert not m.active()  # the previous test's fixture stopped it
    proc = m.make("deploy")
    try:
        assert proc.returncode == 0, proc.output
        assert result_lines(proc.output)["pibox"] == f"started {m.current()} (nothing changed; it was not running)"
        assert m.active()
    finally:
        m.root("systemctl stop wakeword", check=False)


def test_an_edited_config_is_never_overwritten(running):
    m = running
    m.root('echo "# my own edit" >> /etc/wakeword/config.toml')
    invocation = m.prop("InvocationID")
    proc = m.make("deploy")
    assert proc.returncode == 0, proc.output
    assert "kept /etc/wakeword/config.toml" in proc.stdout
    assert m.root("tail -n 1 /etc/wakeword/config.toml").strip() == "# my own edit"
    assert m.root("cat /etc/wakeword/config.toml.new") == m.config.read_text()
    assert m.prop("InvocationID") == invocation  # not restarted for it


def test_broken_release_rolls_back(running, tmp_path):
    m = running
    good, invocation = m.current(), m.prop("InvocationID")
    broken = tmp_path / "model.onnx"
    broken.write_bytes(np.random.default_rng(0).bytes(4096))  # not an ONNX model
    proc = m.make("deploy", f"MODEL={broken}")
    assert proc.returncode != 0, proc.output
    assert result_lines(proc.output)["pibox"].startswith(f"ROLLED BACK to {good}"), proc.output
    assert "did not start" in proc.stdout and "wakeword: error: model" in proc.stdout
    assert m.current() == good
    assert m.active() and m.prop("InvocationID") != invocation  # the good one, restarted


def test_killed_daemon_is_restarted(running):
    from deploy.testbed.nspawn import wait_until

    m = running
    pid, restarts = m.prop("MainPID"), int(m.prop("NRestarts"))
    m.root(f"kill -9 {pid}")
    assert wait_until(lambda: m.active() and m.prop("MainPID") not in ("0", pid), timeout_s=60)
    assert int(m.prop("NRestarts")) == restarts + 1


def test_a_frozen_daemon_is_restarted_by_systemds_watchdog(running):
    """systemd's own watchdog, not a stand-in (issue 18): a daemon that stops pinging (frozen whole
    with SIGSTOP: its loop, and so its WATCHDOG=1, stop) is aborted and restarted by systemd. The
    unit's WatchdogSec (30 s) is shortened by a drop-in so the test does not wait half a minute;
    that the pings come from the inference loop itself is the soak's and the device tests' part."""
    from deploy.testbed.nspawn import wait_until

    m = running
    dropin = "/etc/systemd/system/wakeword.service.d/test-watchdog.conf"
    m.root(
        "mkdir -p /etc/systemd/system/wakeword.service.d && "
        f"for line in [Service] WatchdogSec=4 TimeoutAbortSec=5; do echo $line; done > {dropin} && "
        "systemctl daemon-reload && systemctl restart wakeword"
    )
    try:
        assert m.prop("WatchdogUSec") == "4s", m.root(f"cat {dropin}")
        assert wait_until(lambda: "listening" in m.prop("StatusText"), timeout_s=60)
        pid, restarts = m.prop("MainPID"), int(m.prop("NRestarts"))
        m.root(f"kill -STOP {pid}")
        assert wait_until(
            lambda: m.prop("MainPID") not in ("0", pid) and "listening" in m.prop("StatusText"), timeout_s=90
        )
        assert int(m.prop("NRestarts")) == restarts + 1
        journal = m.root("journalctl -u wakeword -o cat --no-pager")
        assert "Watchdog timeout" in journal, journal[-2000:]
    finally:
        m.root(f"rm -f {dropin} && systemctl daemon-reload", check=False)


def test_status_logs_and_a_fleet_with_an_unreachable_host(running):
    m = running
    status = m.make("status")
    assert status.returncode == 0, status.output
    assert "Active: active (running)" in status.stdout and f"release: {m.current()}" in status.stdout
    logs = m.make("logs", "LOG_LINES=500")
    assert logs.returncode == 0 and "listening on 'wwmic'" in logs.stdout
    # Several hosts: in parallel, one result line each, non-zero exit if any failed.
    from deploy.testbed.ssh import free_port

    m.ssh.add_alias("nohost", free_port())  # nothing listens there
    proc = m.make("deploy", host="pibox nohost")
    assert proc.returncode != 0
    lines = result_lines(proc.stdout)
    assert lines["pibox"] == f"unchanged {m.current()}"
    assert lines["nohost"].startswith("FAILED: cannot ssh to nohost")


def announced_ports(timeout_s: float) -> dict[int, str]:
    """``{port: name}`` of the ``_wyoming._tcp`` services an mDNS browser on loopback finds."""
    from zeroconf import IPVersion, ServiceBrowser, Zeroconf

    from device.announce import SERVICE_TYPE

    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    names: set[str] = set()
    try:
        ServiceBrowser(zc, SERVICE_TYPE, handlers=[lambda zeroconf, service_type, name, state_change: names.add(name)])
        time.sleep(timeout_s)
        found = {}
        for name in names:
            info = zc.get_service_info(SERVICE_TYPE, name, timeout=2000)
            if info is not None and info.port:
                found[info.port] = name.removesuffix(f".{SERVICE_TYPE}")
        return found
    finally:
        zc.close()


def test_wyoming_service_answers_home_assistant_and_listen_comes_back(machine, first_deploy):
    """`make deploy SERVICE=wyoming`: wakeword-wyoming runs (wakeword is disabled, the microphone is
    the satellite's), and the `wyoming` library's client gets the model and a detection over TCP."""
    import asyncio

    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncClient
    from wyoming.info import Describe, Info

    m = machine
    proc = m.make("deploy", "SERVICE=wyoming")
    try:
        assert proc.returncode == 0, proc.output
        assert "stopped and disabled wakeword" in proc.stdout or not m.active()
        assert m.sh("systemctl is-active wakeword-wyoming", check=False).strip() == "active"
        assert m.sh("systemctl is-enabled wakeword", check=False).strip() != "enabled"
        status = m.sh("SYSTEMD_COLORS=0 systemctl status wakeword-wyoming --no-pager")
        assert f"serving tone on tcp://127.0.0.1:{m.wyoming_port}" in status

        async def talk():
            client = AsyncClient.from_uri(f"tcp://127.0.0.1:{m.wyoming_port}")
            await client.connect()
            await client.write_event(Describe().event())
            info = Info.from_event(await asyncio.wait_for(client.read_event(), timeout=60))
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            pcm = (tone_clip(4.0, [1.0], seed=9) * 32767).astype("<i2")
            for start in range(0, len(pcm), 1600):
                await client.write_event(
                    AudioChunk(rate=16000, width=2, channels=1, audio=pcm[start : start + 1600].tobytes()).event()
                )
            await client.write_event(AudioStop().event())
            answer = await asyncio.wait_for(client.read_event(), timeout=60)
            await client.disconnect()
            return info, answer

        info, answer = asyncio.run(talk())
        assert [w.name for w in info.wake[0].models] == ["tone"]
        assert answer.type == "detection" and answer.data["name"] == "tone"
        # announced over mDNS (what Home Assistant lists under Discovered), from inside the unit's sandbox
        assert announced_ports(timeout_s=5.0).get(m.wyoming_port, "").startswith("wakeword-")
        assert "(announced as 'wakeword-" in m.sh("SYSTEMD_COLORS=0 systemctl status wakeword-wyoming --no-pager")
        assert m.make("status").returncode == 0
    finally:
        back = m.make("deploy")  # SERVICE=listen: the daemon again, the Wyoming unit disabled
    assert back.returncode == 0, back.output
    assert "stopped and disabled wakeword-wyoming" in back.stdout
    m.root("systemctl stop wakeword", check=False)


def test_undeploy_keeps_config_and_detections(machine):
    m = machine
    proc = m.make("undeploy")
    assert proc.returncode == 0, proc.output
    assert "undeployed (kept /etc/wakeword /var/lib/wakeword" in proc.stdout
    assert not m.active()
    assert m.sh("ls /etc/systemd/system/wakeword.service /opt/wakeword 2>&1", check=False).count("No such file") == 2
    assert m.root("test -f /etc/wakeword/config.toml && echo kept").strip() == "kept"
    assert m.make("status").returncode != 0
