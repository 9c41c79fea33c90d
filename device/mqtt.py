"""MQTT output: each detection published to a broker, with Home Assistant's MQTT discovery.

Off unless ``[mqtt] host`` is set. On every (re)connection, and whenever Home Assistant
announces itself (``online`` on ``<discovery_prefix>/status``), the client publishes, retained:

- ``<discovery_prefix>/event/<node>/<keyword>/config``: an MQTT ``event`` entity per keyword
  (``event_types: ["detected"]``), grouped under one device named after this machine;
- ``<topic_prefix>/<node>/status``: ``online``. The broker's last will sets ``offline`` when the
  connection dies; a clean stop publishes ``offline`` itself.

Each detection is one JSON message (not retained: an event, not a state) on
``<topic_prefix>/<node>/<keyword>/detection``:
``{"event_type": "detected", "keyword", "score", "time" (ISO 8601 UTC), "host"}``.

The audio path never waits for the network: :meth:`MqttOutput.detection` only appends to a
bounded deque. paho-mqtt's thread does the network and reconnects with backoff; a sender
thread publishes what is queued while connected. While the broker is unreachable the last
``keep_last`` detections are kept (older ones dropped, one log line per outage) and sent
when it is back. Every state change (connected, lost, refused) is logged once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from device import package_version
from device.decision import Detection

log = logging.getLogger(__name__)

EVENT_TYPE = "detected"
ONLINE, OFFLINE = "online", "offline"
KEEPALIVE_S = 60
"""MQTT keep-alive: the broker declares us gone (and sends the will) after 1.5x this silence."""
RETRY_MIN_S = 1.0
"""First wait before reconnecting (s); paho doubles it up to ``retry_max_s``."""
CONNECT_TIMEOUT_S = 3.0
"""One connection attempt (TCP, TLS, CONNACK) gives up after this long (s)."""
CLOSE_FLUSH_S = 3.0
"""On stop, how long queued detections may wait for a broker that is connecting or up (s)."""

_HOST = re.compile(r"[A-Za-z0-9._:-]+|\[[0-9A-Fa-f:.]+\]")
_NOT_ID = re.compile(r"[^a-z0-9_-]+")


class MqttError(ValueError):
    """A broker setting or file that cannot work; one line."""


def slug(text: str) -> str:
    """An id for topics and Home Assistant (``a-z``, ``0-9``, ``_``, ``-``): ``"Hey Jarvis"`` ->
    ``"hey_jarvis"``; text with none of those characters gets a short hash instead."""
    s = _NOT_ID.sub("_", text.lower()).strip("_")
    return s or "id_" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def check_topic(name: str, value: str) -> None:
    """A topic prefix we may publish under: not empty, no wildcards, no empty levels."""
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise MqttError(f"{name} must be topic levels joined by '/' (no empty level), got {value!r}")
    if any(c in value for c in "+#\0"):
        raise MqttError(f"{name} must not contain the MQTT wildcards + or #, got {value!r}")
    if value.startswith("$"):
        raise MqttError(f"{name} must not start with '$' (reserved for the broker), got {value!r}")


def read_password(path: str) -> str:
    """The first line of ``path`` (the password file); :class:`MqttError` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MqttError(f"password_file {path} does not exist") from None
    except UnicodeDecodeError:
        raise MqttError(f"password_file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise MqttError(f"password_file {path} cannot be read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise MqttError(f"password_file {path!r} is not a file name") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise MqttError(f"password_file {path} is empty (its first line is the password)")
    return password


def check_ca_file(path: str) -> None:
    """``path`` holds at least one PEM certificate; :class:`MqttError` naming the file."""
    if not Path(path).is_file():
        raise MqttError(f"ca_file {path} {'is not a file' if Path(path).exists() else 'does not exist'}")
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise MqttError(f"ca_file {path} is not a PEM CA certificate: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""
    """Broker host name or address; empty = no MQTT (the default)."""
    port: int = 1883
    """Broker port (1883; usually 8883 with TLS)."""
    username: str = ""
    """User name at the broker; empty = anonymous."""
    password_file: str = ""
    """File whose first line is the password (e.g. ``/etc/wakeword/mqtt-password``, owner
    root:wakeword, mode 0640); the config itself never holds a password."""
    client_id: str = ""
    """MQTT client id, unique on the broker; empty = ``wakeword-<node>``."""
    topic_prefix: str = "wakeword"
    """Detections go to ``<topic_prefix>/<node>/<keyword>/detection``, availability to
    ``<topic_prefix>/<node>/status``."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's MQTT discovery prefix (its MQTT integration's setting)."""
    node_name: str = ""
    """This daemon's device name in Home Assistant (and, as an id, in topics); empty = the host name."""
    qos: int = 1
    """MQTT quality of service of everything published: 0 (at most once), 1 (at least once), 2."""
    tls: bool = False
    """Connect with TLS (the broker's certificate is verified)."""
    ca_file: str = ""
    """With ``tls``: the CA certificate (PEM) that signed the broker's; empty = the system's CAs."""
    keep_last: int = 20
    """Detections kept while the broker is unreachable (older ones are dropped), sent when it is back."""
    retry_max_s: float = 60.0
    """Longest wait between reconnection attempts (s); the first is 1 s, doubling."""

    def __post_init__(self) -> None:
        if self.host and not _HOST.fullmatch(self.host):
            raise MqttError(f"host must be a host name or address (no scheme, no port), got {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise MqttError(f"port must be 1..65535, got {self.port}")
        if self.qos not in (0, 1, 2):
            raise MqttError(f"qos must be 0, 1 or 2, got {self.qos}")
        if not 1 <= self.keep_last <= 10000:
            raise MqttError(f"keep_last must be 1..10000, got {self.keep_last}")
        if not 1.0 <= self.retry_max_s <= 3600.0:
            raise MqttError(f"retry_max_s must be 1..3600 s, got {self.retry_max_s}")
        check_topic("topic_prefix", self.topic_prefix)
        check_topic("discovery_prefix", self.discovery_prefix)
        if self.client_id and (len(self.client_id.encode("utf-8")) > 65535 or "\0" in self.client_id):
            raise MqttError("client_id must be at most 65535 bytes, without NUL")
        if self.password_file and not self.username:
            raise MqttError("password_file is set but username is not")
        if self.password_file:
            read_password(self.password_file)  # checked now; read again (never kept) when connecting
        if self.ca_file and not self.tls:
            raise MqttError("ca_file is set but tls = false")
        if self.ca_file:
            check_ca_file(self.ca_file)

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def node(self) -> str:
        return self.node_name or socket.gethostname()

    @property
    def client_name(self) -> str:
        return self.client_id or f"wakeword-{slug(self.node)}"

    @property
    def availability_topic(self) -> str:
        return f"{self.topic_prefix}/{slug(self.node)}/status"

    @property
    def ha_status_topic(self) -> str:
        return f"{self.discovery_prefix}/status"

    def detection_topic(self, keyword: str) -> str:
        return f"{self.topic_prefix}/{slug(self.node)}/{slug(keyword)}/detection"

    def discovery_topic(self, keyword: str) -> str:
        return f"{self.discovery_prefix}/event/{slug(self.node)}/{slug(keyword)}/config"


def discovery_config(cfg: MqttConfig, keyword: str) -> dict:
    """Home Assistant's MQTT discovery payload of the ``event`` entity for ``keyword``."""
    node_id = slug(cfg.node)
    return {
        "name": keyword,
        "unique_id": f"wakeword_{node_id}_{slug(keyword)}",
        "state_topic": cfg.detection_topic(keyword),
        "event_types": [EVENT_TYPE],
        "availability_topic": cfg.availability_topic,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": cfg.qos,
        "icon": "mdi:account-voice",
        "device": {
            "identifiers": [f"wakeword_{node_id}"],
            "name": cfg.node,
            "manufacturer": "wakeword",
            "model": "wakeword",
            "sw_version": package_version(),
        },
        "origin": {"name": "wakeword", "sw_version": package_version()},
    }


def detection_message(keyword: str, score: float, wall_s: float, host: str) -> dict:
    """The JSON published per detection (``event_type`` is what Home Assistant's event entity reads)."""
    when = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return {"event_type": EVENT_TYPE, "keyword": keyword, "score": round(float(score), 4), "time": when, "host": host}


def _paho():
    """paho-mqtt, imported when MQTT is used (a daemon without ``[mqtt]`` never loads it)."""
    import paho.mqtt.client as paho

    return paho


def make_client(cfg: MqttConfig, client_id: str):
    """A paho-mqtt client with credentials, TLS, the last will and the reconnect backoff set;
    :class:`MqttError` for a CA file that is not a certificate."""
    paho = _paho()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    client.connect_timeout = CONNECT_TIMEOUT_S
    if cfg.username:
        client.username_pw_set(cfg.username, read_password(cfg.password_file) if cfg.password_file else None)
    if cfg.tls:
        try:
            client.tls_set(ca_certs=cfg.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise MqttError(f"ca_file {cfg.ca_file or '(system CAs)'} cannot be used: {exc}") from None
    client.will_set(cfg.availability_topic, OFFLINE, qos=cfg.qos, retain=True)
    client.reconnect_delay_set(RETRY_MIN_S, cfg.retry_max_s)
    return client


def check_connection(cfg: MqttConfig, timeout_s: float = 10.0) -> None:
    """Connect once (as ``<client id>-doctor``, so a running daemon is not kicked off) and
    disconnect; :class:`MqttError` with the reason when the broker cannot be reached or refuses."""
    client = make_client(cfg, f"{cfg.client_name}-doctor")
    client.will_clear()  # a probe that dies must not mark the running daemon offline
    answered, result = threading.Event(), []

    def on_connect(c, u, flags, reason, props) -> None:
        result.append(reason)
        answered.set()

    client.on_connect = on_connect
    where = f"MQTT broker {cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, KEEPALIVE_S)
    except (OSError, ValueError) as exc:
        raise MqttError(f"{where} cannot be reached: {getattr(exc, 'strerror', None) or exc}") from None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise MqttError(f"{where} accepted the connection but did not answer in {timeout_s:g} s")
        if result[0].is_failure:
            raise MqttError(f"{where} refused the connection: {result[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


class MqttOutput:
    """Publishes detections of ``keywords`` to the broker of ``cfg`` (connects in the background)."""

    def __init__(self, cfg: MqttConfig, keywords: list[str]):
        self.cfg = cfg
        self.keywords = list(keywords)
        self.host = socket.gethostname()
        self.where = f"{cfg.host}:{cfg.port}"
        self.state = "connecting"
        """``connecting`` (never connected yet), ``up`` or ``down``."""
        self.sent = 0
        self.dropped = 0
        self._queue: deque[tuple[str, float, float]] = deque(maxlen=cfg.keep_last)
        self._cond = threading.Condition()
        self._announce = False
        self._busy = False
        self._stopping = False
        self._drop_logged = False
        self._client = make_client(cfg, cfg.client_name)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._sender.start()
        log.info(
            "MQTT: connecting to %s as %r (detections on %s)",
            self.where,
            cfg.client_name,
            cfg.detection_topic(self.keywords[0]) if len(self.keywords) == 1 else f"{cfg.topic_prefix}/...",
        )
        self._client.connect_async(cfg.host, cfg.port, KEEPALIVE_S)
        self._client.loop_start()

    # -- the audio side: never waits ---------------------------------------------------
    def detection(self, keyword: str, det: Detection) -> None:
        """Queue ``det`` for publishing (a lock held for an append, never the network)."""
        with self._cond:
            full = len(self._queue) == self._queue.maxlen
            self._queue.append((keyword, det.score, time.time()))
            self.dropped += int(full)
            first_drop = full and not self._drop_logged
            self._drop_logged |= full
            self._cond.notify_all()
        if first_drop:
            log.warning(
                "MQTT: broker %s unreachable; keeping the last %d detection(s), dropping older ones",
                self.where,
                self.cfg.keep_last,
            )

    def status(self) -> str:
        """A few words for the STATUS line: ``MQTT up`` / ``MQTT down, 3 queued``."""
        queued = len(self._queue)
        return f"MQTT {self.state}" + (f", {queued} queued" if queued else "")

    # -- paho's network thread ---------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._went_down(f"broker {self.where} refused the connection: {reason}")
            return
        client.subscribe(self.cfg.ha_status_topic, qos=min(self.cfg.qos, 1))
        with self._cond:
            self.state, self._announce, self._drop_logged = "up", True, False
            held, dropped = len(self._queue), self.dropped
            self._cond.notify_all()
        extra = f"; sending {held} detection(s) held while it was away" if held else ""
        extra += f" ({dropped} older dropped so far)" if held and dropped else ""
        log.info("MQTT: connected to %s%s", self.where, extra)

    def _on_connect_fail(self, client, userdata) -> None:
        self._went_down(f"cannot reach broker {self.where} (`wakeword doctor` says why)")

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self._went_down(f"lost the connection to {self.where} ({reason})")

    def _went_down(self, why: str) -> None:
        with self._cond:
            was, self.state = self.state, "down"
            stopping = self._stopping
        if was != "down" and not stopping:
            log.warning(
                "MQTT: %s; detecting goes on, retrying in the background (up to every %g s)", why, self.cfg.retry_max_s
            )

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.cfg.ha_status_topic and msg.payload == ONLINE.encode():
            with self._cond:  # Home Assistant (re)started: it needs the discovery configs again
                self._announce = True
                self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------
    def _take(self) -> tuple[bool, list] | None:
        """Wait for work while connected -> (announce?, queued detections); None when stopping."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._stopping or (self.state == "up" and (self._announce or self._queue)))
            if self._stopping:
                return None
            announce, batch = self._announce, list(self._queue)
            self._announce, self._busy = False, True
            self._queue.clear()
            return announce, batch

    def _run(self) -> None:
        while (work := self._take()) is not None:
            announce, batch = work
            if announce:
                for keyword in self.keywords:
                    self._publish(self.cfg.discovery_topic(keyword), discovery_config(self.cfg, keyword), True)
                self._publish(self.cfg.availability_topic, ONLINE, True)
            unsent = [
                d
                for d in batch
                if not self._publish(
                    self.cfg.detection_topic(d[0]), detection_message(d[0], d[1], d[2], self.host), False
                )
            ]
            self.sent += len(batch) - len(unsent)
            if unsent:
                self._requeue(unsent)

    def _publish(self, topic: str, payload, retain: bool) -> bool:
        """Hand one message to paho; False when it was lost (QoS 0 while disconnected). QoS 1
        and 2 messages that meet a broken connection stay with paho, which resends them."""
        paho = _paho()
        data = payload if isinstance(payload, str) else json.dumps(payload)
        info = self._client.publish(topic, data, qos=self.cfg.qos, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS or (info.rc == paho.MQTT_ERR_NO_CONN and self.cfg.qos > 0)

    def _requeue(self, unsent: list) -> None:
        with self._cond:
            both = unsent + list(self._queue)
            self._queue.clear()
            self._queue.extend(both)  # a deque with maxlen keeps the newest
            self.dropped += len(both) - len(self._queue)

    # -- stopping ----------------------------------------------------------------------
    def close(self) -> None:
        """Send what is queued (waiting up to :data:`CLOSE_FLUSH_S` for a broker that is up or
        connecting), publish ``offline`` and disconnect. Closing twice is harmless (one publisher
        serves every keyword)."""
        with self._cond:
            if self._stopping:
                return
            if self.state != "down":
                self._cond.wait_for(lambda: not self._queue and not self._busy, CLOSE_FLUSH_S)
            self._stopping = True
            left, up = len(self._queue), self.state == "up"
            self._cond.notify_all()
        self._sender.join(timeout=5)
        if left:
            log.warning("MQTT: %d detection(s) never reached the broker %s", left, self.where)
        if up:
            info = self._client.publish(self.cfg.availability_topic, OFFLINE, qos=self.cfg.qos, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass  # the connection went away meanwhile: the broker sends the will instead
        self._client.disconnect()
        self._client.loop_stop()
        log.info("MQTT: disconnected (%d detection(s) published)", self.sent)
