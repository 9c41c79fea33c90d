"""The ``[mqtt]`` output against a real Mosquitto broker on loopback, watched by a real paho
subscriber: Home Assistant discovery, availability, detections from the real daemon and the
in-process listener, a broker that restarts under it, one that is not there, a password, and
one clear line for every bad setting."""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from bench.tonemodel import tone_clip
from device import config, package_version
from device.config import ConfigError
from device.decision import Decider, DecisionConfig
from device.engine import Engine
from device.filesource import WavSource
from device.listener import CaptureConfig, Listener
from device.mqtt import MqttConfig, MqttOutput, discovery_config, slug
from device.outputs import Outputs
from device.stopflag import StopFlag
from device.wavio import write_wav
from tests.device.daemon_helpers import PARAMS, popen_wakeword, run_wakeword, write_config

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
WAIT_S = 30.0
"""Every wait here is for an event; this only bounds a test that would otherwise hang."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto on 127.0.0.1:``port`` with its own config and persistence (kept across a restart)."""

    def __init__(self, d: Path, extra: str = ""):
        self.dir, self.port = d, free_port()
        self.conf = d / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\npersistence true\npersistence_location {d}/\n"
            f"user {getpass.getuser()}\n" + (extra or "allow_anonymous true\n")
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.dir / "mosquitto.log", "ab") as logf:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf)
        deadline = time.monotonic() + WAIT_S
        while True:
            assert self.proc.poll() is None, (self.dir / "mosquitto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start listening"
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=WAIT_S)


def need_mosquitto() -> None:
    """Root has what `make setup-test` installs (missing is a setup bug); another user is told the line."""
    if MOSQUITTO is None:
        if os.geteuid() == 0:
            pytest.fail("mosquitto is not installed: run `make setup-test` (scripts/apt-extra.txt)")
        pytest.skip("mosquitto is not installed (sudo apt-get install mosquitto)")


@pytest.fixture
def broker(tmp_path):
    need_mosquitto()
    b = Broker(tmp_path)
    b.start()
    yield b
    if b.proc.poll() is None:
        b.stop()


@dataclass
class Msg:
    topic: str
    text: str
    retain: bool

    def json(self) -> dict:
        return json.loads(self.text)


class Subscriber:
    """A paho client recording every message on ``#``. ``persistent``: a session the broker
    keeps across a disconnect or restart (QoS 1), so nothing sent meanwhile is missed and
    nothing retained is replayed."""

    def __init__(self, port: int, persistent: bool = False):
        self.msgs: list[Msg] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="test-sub" if persistent else "", clean_session=not persistent
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(WAIT_S)

    def _on_connect(self, client, userdata, flags, reason, properties):
        if not flags.session_present:
            client.subscribe("#", qos=1)

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.msgs.append(Msg(m.topic, m.payload.decode(), bool(m.retain)))
            self.cond.notify_all()

    def wait(self, pred, what: str) -> list[Msg]:
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.msgs), WAIT_S), f"never saw {what}: {self.msgs}"
            return list(self.msgs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def on(topic: str, text: str | None = None):
    return lambda m: m.topic == topic and (text is None or m.text == text)


def count(pred, n: int = 1, start: int = 0):
    return lambda msgs: sum(map(pred, msgs[start:])) >= n


def mqtt_cfg(broker: Broker, **kw) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=broker.port, node_name="Test Pi", retry_max_s=1.0, **kw)


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- the real daemon -------------------------------------------------------------------------
def test_daemon_announces_publishes_a_detection_and_goes_offline_on_sigterm(broker, tone_model, clips, tmp_path):
    m = mqtt_cfg(broker)
    sub = Subscriber(broker.port)
    cfg = write_config(
        tmp_path / "c.toml",
        f'[gpio]\nbackend = "log"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nnode_name = "Test Pi"\n',
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(WAIT_S)
    proc = popen_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(clips["pos"]), "--realtime"],
        env={"NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    try:
        msgs = sub.wait(count(on(m.detection_topic("tone"))), "a detection")
        status = ""
        while "; MQTT up" not in status:  # systemctl status shows it
            status = notify.recv(4096).decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    msgs = sub.wait(count(on(m.availability_topic, "offline")), "offline")
    sub.close()
    topics = [x.topic for x in msgs]
    # discovery, then online, then the detection, then offline on SIGTERM
    assert (
        topics.index(m.discovery_topic("tone"))
        < topics.index(m.availability_topic)
        < topics.index(m.detection_topic("tone"))
    )
    assert [x.text for x in msgs if x.topic == m.availability_topic] == ["online", "offline"]
    det = next(x for x in msgs if x.topic == m.detection_topic("tone")).json()
    assert set(det) == {"event_type", "keyword", "score", "time", "host"}
    assert det["event_type"] == "detected" and det["keyword"] == "tone" and det["score"] >= 0.5
    assert det["host"] == socket.gethostname()
    when = datetime.fromisoformat(det["time"])
    assert when.utcoffset().total_seconds() == 0 and abs((datetime.now(UTC) - when).total_seconds()) < 600
    assert "MQTT: connected to 127.0.0.1" in err and "Traceback" not in err
    # what Home Assistant finds when it subscribes later: the entity (retained) and "offline"
    late = Subscriber(broker.port)
    msgs = late.wait(count(on(m.availability_topic)), "the retained availability")
    late.close()
    retained = {x.topic: x for x in msgs if x.retain}
    assert retained[m.availability_topic].text == "offline"
    disc = retained[m.discovery_topic("tone")].json()
    assert disc["event_types"] == ["detected"] and disc["state_topic"] == m.detection_topic("tone")
    assert disc["availability_topic"] == m.availability_topic and disc["unique_id"] == "wakeword_test_pi_tone"
    assert disc["device"]["name"] == "Test Pi" and disc["device"]["sw_version"] == package_version()
    assert disc["device"]["model"] == "wakeword"


def test_unreachable_broker_never_stops_detection_and_is_one_line(tone_model, tmp_path):
    clip = tmp_path / "short.wav"
    write_wav(clip, tone_clip(2.5, [0.5], seed=21), PARAMS.sample_rate)
    cfg = write_config(
        tmp_path / "c.toml",
        f'[gpio]\nbackend = "log"\n[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\nretry_max_s = 1\n',
    )
    r = run_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(clip), "--realtime", "--json"]
    )
    assert r.returncode == 0, r.stderr
    assert [d["keyword"] for d in map(json.loads, r.stdout.splitlines())] == ["tone"]
    # 2.5 s of retries every second: one line when it went down, one for what was never sent
    down = [line for line in r.stderr.splitlines() if "cannot reach broker" in line]
    assert len(down) == 1 and "retrying in the background" in down[0], r.stderr
    assert "1 detection(s) never reached the broker" in r.stderr and "Traceback" not in r.stderr


# -- in process: a broker restart under a running listener ----------------------------------
def _listen_to(engine: Engine, wav: Path, outputs: Outputs) -> list:
    """Run the real listener over ``wav`` (as fast as it goes) -> its detections."""
    dets: list = []
    lst = Listener(
        engine,
        Decider(DecisionConfig(0.5, refractory_s=1.0), PARAMS.output_hop_s),
        outputs,
        lambda session: WavSource(str(wav), 32.0, False, session),
        CaptureConfig(),
        live=False,
        on_detection=dets.append,
    )
    lst.run(StopFlag())
    assert outputs.status() in lst.status_text()
    return dets


def test_broker_restart_detections_while_down_arrive_and_discovery_comes_again(broker, tone_model, clips):
    m = mqtt_cfg(broker)
    sub = Subscriber(broker.port, persistent=True)
    out = MqttOutput(m, ["tone"])
    outputs = Outputs("tone", mqtt=out)
    engine = Engine.load(tone_model)
    try:
        sub.wait(count(on(m.availability_topic, "online")), "online")
        wait_until(lambda: out.status() == "MQTT up", "MQTT up")
        # Home Assistant restarting says "online" on its status topic: the entities come again
        n = len(sub.wait(count(on(m.discovery_topic("tone"))), "discovery"))
        sub.client.publish(m.ha_status_topic, "online")
        sub.wait(count(on(m.discovery_topic("tone")), 1, n), "discovery after Home Assistant's birth")

        broker.stop()
        wait_until(lambda: out.state == "down", "the client to notice the broker is gone")
        mark = len(sub.msgs)
        assert len(_listen_to(engine, clips["pos"], outputs)) == 2  # not blocked by the dead broker
        assert out.status() == "MQTT down, 2 queued"
        broker.start()
        msgs = sub.wait(count(on(m.detection_topic("tone")), 2, mark), "the two detections held while down")
        after = msgs[mark:]
        assert any(x.topic == m.discovery_topic("tone") and not x.retain for x in after)  # sent again, live
        assert any(x.topic == m.availability_topic and x.text == "online" for x in after)
        dets = [x.json() for x in after if x.topic == m.detection_topic("tone")]
        assert [d["keyword"] for d in dets] == ["tone", "tone"] and all(d["score"] >= 0.5 for d in dets)
        wait_until(lambda: out.status() == "MQTT up", "MQTT up again")
    finally:
        outputs.close()
    sub.wait(count(on(m.availability_topic, "offline")), "offline after close")
    sub.close()
    assert out.sent == 2 and out.dropped == 0


def test_a_long_outage_keeps_the_last_detections_with_one_log_line(broker, caplog):
    from device.decision import Detection

    m = mqtt_cfg(broker, keep_last=3)
    sub = Subscriber(broker.port, persistent=True)
    out = MqttOutput(m, ["tone"])
    wait_until(lambda: out.state == "up", "MQTT up")
    broker.stop()
    wait_until(lambda: out.state == "down", "MQTT down")
    with caplog.at_level(logging.WARNING, logger="device.mqtt"):
        for k in range(10):
            out.detection("tone", Detection(time_s=float(k), score=0.5 + k / 100))
    assert out.status() == "MQTT down, 3 queued" and out.dropped == 7
    assert sum("dropping older ones" in r.getMessage() for r in caplog.records) == 1
    broker.start()
    msgs = sub.wait(count(on(m.detection_topic("tone")), 3), "the three kept detections")
    assert [x.json()["score"] for x in msgs if x.topic == m.detection_topic("tone")] == [0.57, 0.58, 0.59]
    out.close()
    sub.close()


def test_username_and_password_file(tmp_path, caplog):
    need_mosquitto()
    users = tmp_path / "users"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(users), "ww", "s3cret"], check=True, capture_output=True)
    os.chmod(users, 0o600)
    b = Broker(tmp_path, f"allow_anonymous false\npassword_file {users}\n")
    b.start()
    try:
        good, bad = tmp_path / "pw", tmp_path / "wrong"
        good.write_text("s3cret\n")
        bad.write_text("nope\n")
        out = MqttOutput(mqtt_cfg(b, username="ww", password_file=str(good)), ["tone"])
        wait_until(lambda: out.state == "up", "the right password to be let in")
        out.close()
        with caplog.at_level(logging.WARNING, logger="device.mqtt"):
            out = MqttOutput(mqtt_cfg(b, username="ww", password_file=str(bad)), ["tone"])
            # it keeps trying (every second here) and says so once
            log = b.dir / "mosquitto.log"
            wait_until(lambda: log.read_text().count("not authorised") >= 3, "three refused attempts")
            out.close()
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "refused the connection: Not authorized" in said[0], said
    finally:
        b.stop()


def test_doctor_says_whether_the_broker_can_be_reached(broker, tone_model, tmp_path):
    text = f'model = "{tone_model}"\n[gpio]\nbackend = "log"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    cfg = write_config(tmp_path / "c.toml", text)
    r = run_wakeword(["doctor", "--config", str(cfg)])
    assert f"ok    MQTT broker 127.0.0.1:{broker.port} accepts 'wakeword-" in r.stdout, r.stdout + r.stderr
    broker.stop()
    r = run_wakeword(["doctor", "--config", str(cfg)])
    line = next(x for x in r.stdout.splitlines() if "MQTT" in x)
    assert line.startswith(f"  FAIL  MQTT broker 127.0.0.1:{broker.port} cannot be reached: Connection refused")
    assert r.returncode == 1 and "Traceback" not in r.stderr


# -- pure parts: ids, payloads, settings --------------------------------------------------------
def test_ids_topics_and_the_discovery_entity():
    assert slug("Hey Jarvis!") == "hey_jarvis" and slug("computer") == "computer"
    assert slug("コンピュータ").startswith("id_") and slug("コンピュータ") != slug("ジャービス")
    m = MqttConfig(host="broker.lan", node_name="Kitchen Pi", topic_prefix="home/voice")
    assert m.detection_topic("Hey Jarvis") == "home/voice/kitchen_pi/hey_jarvis/detection"
    assert m.discovery_topic("Hey Jarvis") == "homeassistant/event/kitchen_pi/hey_jarvis/config"
    assert m.availability_topic == "home/voice/kitchen_pi/status" and m.client_name == "wakeword-kitchen_pi"
    d = discovery_config(m, "Hey Jarvis")
    assert d["name"] == "Hey Jarvis" and d["event_types"] == ["detected"] and d["qos"] == 1
    assert MqttConfig(host="x").node == socket.gethostname() and not MqttConfig().enabled


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('host = "mqtt://broker:1883"', "[mqtt]: host must be a host name or address (no scheme, no port)"),
        ("port = 70000", "[mqtt]: port must be 1..65535, got 70000"),
        ("port = nan", "[mqtt] port must be a whole number, got nan"),
        ("retry_max_s = nan", "[mqtt] retry_max_s must be a finite number, got nan"),
        ("retry_max_s = inf", "[mqtt] retry_max_s must be a finite number, got inf"),
        ("qos = 3", "[mqtt]: qos must be 0, 1 or 2, got 3"),
        ("keep_last = 0", "[mqtt]: keep_last must be 1..10000"),
        ('topic_prefix = "home/+/ww"', "[mqtt]: topic_prefix must not contain the MQTT wildcards + or #"),
        ('discovery_prefix = "homeassistant/#"', "[mqtt]: discovery_prefix must not contain the MQTT wildcards"),
        ('topic_prefix = "home//ww"', "[mqtt]: topic_prefix must be topic levels joined by '/' (no empty level)"),
        ('topic_prefix = "$SYS"', "[mqtt]: topic_prefix must not start with '$'"),
        ('password = "s3cret"', "[mqtt]: unknown key 'password' (did you mean 'password_file'?)"),
        ('username = "ww"\npassword_file = "/nonexistent/pw"', "[mqtt]: password_file /nonexistent/pw does not exist"),
        ('password_file = "/etc/hostname"', "[mqtt]: password_file is set but username is not"),
        ('ca_file = "/etc/hostname"', "[mqtt]: ca_file is set but tls = false"),
        ('tls = true\nca_file = "/nonexistent/ca.pem"', "[mqtt]: ca_file /nonexistent/ca.pem does not exist"),
    ],
)
def test_bad_mqtt_settings_are_one_clear_line(text, fragment):
    with pytest.raises(ConfigError) as exc:
        host = "" if text.startswith("host") else 'host = "broker"\n'
        config.from_dict(tomllib.loads(f"[mqtt]\n{host}{text}\n"), "c.toml")
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg, msg


def test_a_bad_mqtt_setting_stops_the_daemon_with_one_line(tone_model, tmp_path):
    empty, ca = tmp_path / "pw", tmp_path / "ca.pem"
    empty.write_text("\n")
    ca.write_text("not a certificate\n")
    for text, said in [
        (f'username = "ww"\npassword_file = "{empty}"', f"password_file {empty} is empty"),
        (f'tls = true\nca_file = "{ca}"', f"ca_file {ca} is not a PEM CA certificate"),
    ]:
        cfg = write_config(tmp_path / "c.toml", f'[mqtt]\nhost = "127.0.0.1"\n{text}\n')
        r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--input", "x.wav"])
        assert r.returncode == 2 and r.stderr.startswith(f"wakeword: error: {cfg} [mqtt]: {said}"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
