"""``wakeword wyoming``: wake-word detection as a Wyoming service, for Home Assistant.

Speaks the Wyoming protocol (the ``wyoming`` package) as wyoming-openwakeword does, so Home
Assistant's Wyoming integration and ``wyoming-satellite --wake-uri`` can use our models:

- ``describe`` -> ``info`` with one wake program whose models are the loaded keywords;
- ``detect`` (optional) names the keywords this client wants (default: all); an unknown
  name gets an ``error`` event naming the ones there are;
- ``audio-start`` / ``audio-chunk`` / ``audio-stop``: audio of any rate, sample width (8, 16,
  32 bit) and channel count, converted as the daemon's capture converts (channels averaged,
  soxr resampling); each ``detection`` carries the keyword and the stream time of the
  detection in milliseconds since ``audio-start``; ``not-detected`` after ``audio-stop``
  when nothing was heard.

Every client has its own model state (:meth:`device.api.Detector.fork`: one onnxruntime
session per model, shared). A client sending something that is not Wyoming (a line that is
not JSON, a header over 64 KiB, a payload over :data:`MAX_PAYLOAD_BYTES`) gets an ``error``
event and is disconnected, with one log line; the others carry on. Under systemd the
service reports READY, pings the watchdog and keeps a status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.wake import Detect, Detection, NotDetected

from device import package_version
from device.api import Detector
from device.config import WyomingConfig
from device.heap import HeapTrim

log = logging.getLogger("wakeword.wyoming")

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Largest audio chunk accepted (bytes): 10 s of 48 kHz stereo 32-bit audio is 3.7 MiB."""
WIDTHS = {1: "u1", 2: "<i2", 4: "<i4"}
ATTRIBUTION = Attribution(name="wakeword", url="https://github.com/wakeword/wakeword")


class ProtocolError(ValueError):
    """Bytes from a client that are not a Wyoming event we can take; one plain line."""


@dataclass
class Service:
    """What every connection shares: one :class:`Detector` per keyword (forked per client)."""

    detectors: dict[str, Detector]
    clients: int = 0
    detections: int = 0

    def info(self) -> Info:
        models = [
            WakeModel(
                name=name,
                attribution=ATTRIBUTION,
                installed=True,
                description=f"wakeword model for {d.keyword!r} ({d.engine.meta.model_version})",
                version=d.engine.meta.model_version,
                languages=["en"],
                phrase=d.keyword,
            )
            for name, d in self.detectors.items()
        ]
        program = WakeProgram(
            name="wakeword",
            attribution=ATTRIBUTION,
            installed=True,
            description="custom wake words trained from synthetic voices",
            version=package_version(),
            models=models,
        )
        return Info(wake=[program])


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, None at the end of the connection; :class:`ProtocolError` for garbage."""
    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):
        raise ProtocolError(f"event header longer than {MAX_HEADER_BYTES} bytes") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("event header has no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("event data is not an object")
    data_len, payload_len = header.get("data_length") or 0, header.get("payload_length") or 0
    for name, n, cap in (("data", data_len, MAX_DATA_BYTES), ("payload", payload_len, MAX_PAYLOAD_BYTES)):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= cap:
            raise ProtocolError(f"{name}_length must be a whole number of bytes up to {cap}, got {n!r}")
    try:
        if data_len:
            extra = json.loads(await reader.readexactly(data_len))
            if not isinstance(extra, dict):
                raise ProtocolError("event data is not an object")
            data.update(extra)
        payload = await reader.readexactly(payload_len) if payload_len else None
    except asyncio.IncompleteReadError:
        return None  # the client went away mid-event
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"event data is not JSON ({exc.__class__.__name__})") from None
    return Event(type=header["type"], data=data, payload=payload)


def chunk_audio(chunk: AudioChunk) -> np.ndarray:
    """A chunk's PCM -> float32 mono at its own rate (channels averaged)."""
    rate, width, channels = chunk.rate, chunk.width, chunk.channels
    if not isinstance(rate, int) or not 1000 <= rate <= 384000:
        raise ProtocolError(f"audio rate must be 1000..384000 Hz, got {rate!r}")
    if width not in WIDTHS:
        raise ProtocolError(f"audio width must be 1, 2 or 4 bytes, got {width!r}")
    if not isinstance(channels, int) or not 1 <= channels <= 64:
        raise ProtocolError(f"audio channels must be 1..64, got {channels!r}")
    audio = chunk.audio or b""
    if len(audio) % (width * channels):
        raise ProtocolError(f"audio of {len(audio)} bytes is not whole {channels}-channel {8 * width}-bit frames")
    x = np.frombuffer(audio, WIDTHS[width]).reshape(-1, channels).astype(np.float32)
    if width == 1:
        x = (x - 128.0) / 128.0
    else:
        x /= float(2 ** (8 * width - 1))
    return x.mean(axis=1) if channels > 1 else x[:, 0]


class WakeHandler(AsyncEventHandler):
    """One client connection: its own detector state, the keywords it asked for."""

    def __init__(self, reader, writer, service: Service):
        super().__init__(reader, writer)
        self.service = service
        self.detectors = {name: d.fork() for name, d in service.detectors.items()}
        self.wanted = list(self.detectors)
        self.heard = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "client")

    async def run(self) -> None:
        self._is_running = True
        self.service.clients += 1
        try:
            while self._is_running:
                try:
                    event = await read_event(self.reader)
                except ProtocolError as exc:
                    log.warning("wyoming client %s: %s; disconnecting it", self.peer, exc)
                    with contextlib.suppress(Exception):
                        await self.write_event(Error(text=str(exc), code="bad-event").event())
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.service.clients -= 1
            with contextlib.suppress(Exception):
                self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._handle(event)
        except ProtocolError as exc:
            log.warning("wyoming client %s: %s", self.peer, exc)
            await self.write_event(Error(text=str(exc), code="bad-audio").event())
            return True
        except (KeyError, TypeError) as exc:  # an event missing its fields
            log.warning("wyoming client %s: malformed %s event (%s)", self.peer, event.type, exc)
            await self.write_event(Error(text=f"malformed {event.type} event", code="bad-event").event())
            return True

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Detect.is_type(event.type):
            await self._detect(Detect.from_event(event).names)
        elif AudioStart.is_type(event.type):
            self._start()
        elif AudioChunk.is_type(event.type):
            await self._audio(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if not self.heard:
                await self.write_event(NotDetected().event())
            self._start()
        return True

    async def _detect(self, names) -> None:
        if not names:
            self.wanted = list(self.detectors)
            return
        names = [str(n) for n in names]
        unknown = [n for n in names if n not in self.detectors]
        self.wanted = [n for n in names if n in self.detectors]
        if unknown:
            text = (
                f"no wake word named {', '.join(map(repr, unknown))} here; "
                f"this service has {', '.join(map(repr, self.detectors))}"
            )
            log.warning("wyoming client %s: %s", self.peer, text)
            await self.write_event(Error(text=text, code="unknown-wake-word").event())

    def _start(self) -> None:
        for d in self.detectors.values():
            d.reset()
        self.heard = False

    async def _audio(self, chunk: AudioChunk) -> None:
        audio = chunk_audio(chunk)
        for name in self.wanted:
            try:
                hits = self.detectors[name].feed(audio, chunk.rate)
            except ValueError as exc:  # a rate change mid-stream
                raise ProtocolError(str(exc)) from None
            for hit in hits:
                self.heard = True
                self.service.detections += 1
                log.info("detected %r for %s at %.2f s (score %.3f)", name, self.peer, hit.time_s, hit.score)
                await self.write_event(Detection(name=name, timestamp=int(round(hit.time_s * 1000))).event())


def load_service(models: list[str]) -> Service:
    """One detector per model file, named by its keyword (refuses two models of one keyword)."""
    detectors: dict[str, Detector] = {}
    for path in models:
        det = Detector(path)
        name = det.keyword.replace(" ", "_")
        if name in detectors:
            raise ValueError(f"two models for the keyword {det.keyword!r} ({detectors[name].engine.path}, {path})")
        detectors[name] = det
    return Service(detectors)


async def serve(cfg: WyomingConfig, service: Service, notifier=None) -> None:
    """Serve on ``cfg.uri`` until SIGTERM / SIGINT / cancellation, announced on the network unless
    ``cfg.zeroconf`` is off (:mod:`device.announce`)."""
    from device.announce import Announcer, default_name

    uri = cfg.uri
    server = AsyncServer.from_uri(uri)
    await server.start(lambda r, w: WakeHandler(r, w, service))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    names = ", ".join(service.detectors)
    log.info("wyoming wake-word service on %s: %s", uri, names)
    if notifier is not None:
        notifier.ready()
    announcer = None  # announced by the loop's first pass (device.announce)
    if cfg.zeroconf:  # (a unix socket: nothing to announce, Announcer.refresh does nothing)
        keywords = [d.keyword for d in service.detectors.values()]
        announcer = Announcer(uri, cfg.zeroconf_name or default_name(), keywords, package_version())
    heap = HeapTrim()  # freed memory back to the system, as the listen loop does (device/heap.py)
    try:
        while not stop.is_set():
            now = time.monotonic()
            heap.tick(now)
            if announcer is not None and now >= announcer.next_refresh:
                await announcer.refresh(now)
            if notifier is not None:
                notifier.watchdog()
                shown = f"{uri} (announced as {announcer.name!r})" if announcer and announcer.name else uri
                notifier.status(
                    f"serving {names} on {shown}: {service.clients} client(s), {service.detections} detection(s)"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)
    finally:
        if announcer is not None:
            await announcer.stop()
        await server.stop()
        log.info("wyoming service stopped: %d detection(s)", service.detections)
