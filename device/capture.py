"""Audio capture through PyAudio (PortAudio over ALSA): the only module that touches PyAudio.

A :class:`Capture` opens an input device chosen by (part of) its name in callback mode,
paInt16, with the device's own channel count and rate; the callback does nothing but push
the raw bytes as a :class:`~device.ringqueue.Block` into a
:class:`~device.ringqueue.DropOldestQueue`. Reducing to the model's mono rate happens in
the consumer (:mod:`device.downmix`).

PortAudio scans devices once, when it is initialised, so every :meth:`Capture.open` starts
a fresh PyAudio instance: a microphone that was unplugged and plugged back in is found
again. alsa-lib and JACK print pages of harmless probing noise on stderr during that scan;
it is silenced (fd 2 is pointed at /dev/null for the duration), unless ``quiet=False``.

Each PortAudio initialisation keeps ~13 KiB for good (Debian's libportaudio2 19.6 over alsa-lib,
measured in docs/soak.md), and a daemon retrying a lost microphone used to make one at every
attempt. While the device is away, a :class:`Rescan` shared by the reconnection attempts asks
alsa-lib first (its own open and close keeps nothing) and pays for a scan only when the device
may be back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from device.ringqueue import Block, DropOldestQueue

log = logging.getLogger(__name__)

RESCAN_EVERY_S = 120.0
"""While the device is away, a PortAudio scan at least this often even when ALSA sees nothing new
(a device neither probe below can see is found within this time)."""

STANDARD_RATES_HZ = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000)
"""Rates probed by :func:`supported_rates` (what USB microphones and codecs commonly offer)."""


class DeviceNotFound(LookupError):
    """No input device matches the requested name (one-line message listing what exists)."""


class CaptureError(RuntimeError):
    """The device exists but could not be opened with the requested format (one line)."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    """PortAudio device index (valid only for the PyAudio instance that listed it)."""
    name: str
    """Device name as PortAudio reports it, e.g. ``"USB PnP Sound Device: Audio (hw:1,0)"``."""
    max_input_channels: int
    """Most input channels the device offers."""
    default_rate_hz: int
    """The device's default sample rate (Hz)."""


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """Point fd 2 at /dev/null while PortAudio probes ALSA/JACK (they write there directly)."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _pyaudio(quiet: bool = True):
    import pyaudio

    with _quiet_stderr(quiet):
        return pyaudio.PyAudio()


def list_input_devices(pa) -> list[DeviceInfo]:
    """Input-capable devices of an open ``pyaudio.PyAudio`` instance."""
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        if int(d.get("maxInputChannels", 0)) > 0:
            out.append(
                DeviceInfo(i, str(d["name"]), int(d["maxInputChannels"]), int(round(float(d["defaultSampleRate"]))))
            )
    return out


def find_input_device(devices: list[DeviceInfo], name: str) -> DeviceInfo:
    """The device called ``name``; else the first whose name contains it (case-insensitive).

    An empty name or ``"default"`` picks a device named ``default`` if there is one, else
    the first input device.
    """
    if not devices:
        raise DeviceNotFound(
            "no audio input devices found (is the microphone plugged in? `arecord -l` lists ALSA capture cards)"
        )
    wanted = name.strip()
    if wanted in ("", "default"):
        return next((d for d in devices if d.name == "default"), devices[0])
    for d in devices:
        if d.name == wanted:
            return d
    for d in devices:
        if wanted.lower() in d.name.lower():
            return d
    names = ", ".join(repr(d.name) for d in devices)
    raise DeviceNotFound(f"no audio input device matches {wanted!r}; present: {names}")


def supported_rates(pa, dev: DeviceInfo, channels: int) -> list[int]:
    """Which of :data:`STANDARD_RATES_HZ` the device accepts with ``channels`` int16 channels."""
    import pyaudio

    ok = []
    for rate in STANDARD_RATES_HZ:
        try:
            if pa.is_format_supported(
                rate, input_device=dev.index, input_channels=channels, input_format=pyaudio.paInt16
            ):
                ok.append(rate)
        except ValueError:
            pass
    return ok


def describe_devices(quiet: bool = True) -> list[tuple[DeviceInfo, list[int]]]:
    """Every input device with the rates it supports at its full channel count."""
    pa = _pyaudio(quiet)
    try:
        with _quiet_stderr(quiet):
            return [(d, supported_rates(pa, d, d.max_input_channels)) for d in list_input_devices(pa)]
    finally:
        pa.terminate()


_HW_NAME = re.compile(r"\((hw:\d+,\d+)\)$")


def alsa_pcm_name(portaudio_name: str) -> str:
    """The ALSA PCM behind a PortAudio device name: ``"USB PnP Sound Device: Audio (hw:1,0)"`` ->
    ``"hw:1,0"``; a PCM of the ALSA configuration is listed by its own name (``default``, ``pulse``)."""
    m = _HW_NAME.search(portaudio_name)
    return m.group(1) if m else portaudio_name.strip() or "default"


class AlsaProbe:
    """Can ALSA open a capture PCM right now? alsa-lib's ``snd_pcm_open`` + ``snd_pcm_close``,
    non-blocking, nothing read (60 of them kept no memory, where one PortAudio scan keeps ~13 KiB)."""

    SND_PCM_STREAM_CAPTURE = 1
    SND_PCM_NONBLOCK = 1

    def __init__(self, quiet: bool = True):
        self.quiet = quiet
        try:
            lib = ctypes.CDLL("libasound.so.2")
        except OSError:
            lib = None
        self._lib = lib
        if lib is not None:
            lib.snd_pcm_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
            lib.snd_pcm_open.restype = ctypes.c_int
            lib.snd_pcm_close.argtypes = [ctypes.c_void_p]
            lib.snd_pcm_close.restype = ctypes.c_int

    @property
    def available(self) -> bool:
        return self._lib is not None

    def opens(self, pcm: str) -> tuple[bool, str]:
        """``(True, "")`` if the PCM opens (or exists but is busy), else ``(False, why)``."""
        if self._lib is None:
            return True, ""
        handle = ctypes.c_void_p()
        with _quiet_stderr(self.quiet):
            rc = self._lib.snd_pcm_open(
                ctypes.byref(handle), pcm.encode(), self.SND_PCM_STREAM_CAPTURE, self.SND_PCM_NONBLOCK
            )
            if rc == 0:
                self._lib.snd_pcm_close(handle)
        if rc == 0 or -rc in (errno.EBUSY, errno.EAGAIN):
            return True, ""
        return False, os.strerror(-rc) if rc < 0 else f"error {rc}"


def _sound_cards() -> bytes:
    """The kernel's list of sound cards (changes when a USB microphone comes or goes)."""
    try:
        with open("/proc/asound/cards", "rb") as f:
            return f.read()
    except OSError:
        return b""


class Rescan:
    """Whether a reconnection attempt should pay for a fresh PortAudio (a device scan).

    The first attempt always scans. After that, while the device is away, an attempt scans only if
    the ALSA PCM the device was last opened as (or the configured name, read as a PCM name) opens,
    if the kernel's list of sound cards changed since the last scan (a USB microphone plugged in,
    perhaps under another card number), or if ``every_s`` passed since the last scan. Otherwise
    :meth:`due` is False and :attr:`why` says what ALSA answered. One instance serves all the
    :class:`Capture` objects of one device, one at a time (the reconnection loop)."""

    def __init__(
        self,
        every_s: float = RESCAN_EVERY_S,
        *,
        probe: AlsaProbe | None = None,
        cards: Callable[[], bytes] = _sound_cards,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.every_s = every_s
        self.probe = probe if probe is not None else AlsaProbe()
        self.cards = cards
        self.clock = clock
        self.known = ""
        """The ALSA PCM of the device last found by a scan."""
        self.skipped = 0
        self.why = ""
        self._last: float | None = None
        self._cards_then = b""

    def due(self, device: str) -> bool:
        now = self.clock()
        cards = self.cards()
        if (
            self._last is None
            or not self.probe.available
            or now - self._last >= self.every_s
            or cards != self._cards_then
        ):
            return self._scanning(now, cards)
        names = list(dict.fromkeys(n for n in (self.known, alsa_pcm_name(device)) if n))
        answers = []
        for name in names:
            ok, err = self.probe.opens(name)
            if ok:
                return self._scanning(now, cards)
            answers.append(f"{name!r}: {err}")
        self.skipped += 1
        self.why = f"audio device {device!r} is not there (ALSA cannot open {', '.join(answers)})"
        return False

    def _scanning(self, now: float, cards: bytes) -> bool:
        self._last, self._cards_then = now, cards
        return True

    def found(self, portaudio_name: str) -> None:
        self.known = alsa_pcm_name(portaudio_name)


class Capture:
    """One open input stream; blocks go to ``queue``. Not reusable: open a new one to reconnect."""

    def __init__(
        self,
        device: str,
        channels: int = 0,
        rate_hz: int = 0,
        block_ms: float = 32.0,
        session: int = 0,
        max_s: float | None = None,
        quiet: bool = True,
        rescan: Rescan | None = None,
    ):
        """``channels``/``rate_hz`` 0 mean the device's maximum channels / default rate;
        ``max_s`` ends the stream (:attr:`finished`) after that much audio (counted in frames);
        ``rescan``: shared by the reconnection attempts, skips scans while the device is away."""
        self.device = device
        self._want_channels = channels
        self._want_rate_hz = rate_hz
        self._block_ms = block_ms
        self.session = session
        self._max_s = max_s
        self.max_frames: int | None = None
        self.quiet = quiet
        self.rescan = rescan
        self.info: DeviceInfo | None = None
        self.channels = 0
        self.rate_hz = 0
        self.queue: DropOldestQueue | None = None
        self._pa = None
        self._stream = None
        self._frames = 0
        self._overflows = 0
        self._done = threading.Event()

    def open(self, queue_s: float) -> DropOldestQueue:
        """Find the device, open and start the stream; returns the queue it fills.

        Raises :class:`DeviceNotFound` or :class:`CaptureError` (one line each).
        """
        import pyaudio

        if self.rescan is not None and not self.rescan.due(self.device):
            raise DeviceNotFound(self.rescan.why)
        self._pa = pa = _pyaudio(self.quiet)
        try:
            self.info = info = find_input_device(list_input_devices(pa), self.device)
            if self.rescan is not None:
                self.rescan.found(info.name)
            self.channels = self._want_channels or info.max_input_channels
            self.rate_hz = self._want_rate_hz or info.default_rate_hz
            if self.channels > info.max_input_channels:
                raise CaptureError(
                    f"{info.name!r} has {info.max_input_channels} input channel(s), {self.channels} were asked for"
                )
            if self._max_s is not None:
                self.max_frames = round(self._max_s * self.rate_hz)
            self.queue = DropOldestQueue(max(1, round(queue_s * self.rate_hz)))
            block_frames = max(1, round(self._block_ms / 1000 * self.rate_hz))
            with _quiet_stderr(self.quiet):
                self._stream = pa.open(
                    format=pyaudio.paInt16,
                    channels=self.channels,
                    rate=self.rate_hz,
                    input=True,
                    input_device_index=info.index,
                    frames_per_buffer=block_frames,
                    stream_callback=self._callback,
                )
        except (OSError, ValueError) as exc:
            self.close()
            raise CaptureError(
                f"cannot open {self.device!r} ({self.channels} ch, {self.rate_hz} Hz, int16): {exc}"
            ) from None
        except BaseException:
            self.close()
            raise
        return self.queue

    def _callback(self, in_data, frame_count, time_info, status):
        # Runs on PortAudio's thread: enqueue and return, nothing else (no logging, no numpy).
        import pyaudio

        if status & pyaudio.paInputOverflow:
            self._overflows += 1
        frames = frame_count
        if self.max_frames is not None:
            frames = min(frame_count, self.max_frames - self._frames)
        if frames > 0:
            data = in_data if frames == frame_count else in_data[: frames * self.channels * 2]
            self.queue.push(Block(self.session, self._frames, frames, data))
            self._frames += frames
        if self.max_frames is not None and self._frames >= self.max_frames:
            self._done.set()
            return None, pyaudio.paComplete
        return None, pyaudio.paContinue

    @property
    def finished(self) -> bool:
        """True once ``max_frames`` were delivered (the intended end of the stream)."""
        return self._done.is_set()

    @property
    def alive(self) -> bool:
        """True while the stream runs; False after an intended end or when it died."""
        return self._stream is not None and self._stream.is_active()

    @property
    def frames_captured(self) -> int:
        return self._frames

    @property
    def overflows(self) -> int:
        """Callbacks in which PortAudio reported an input overflow (audio lost before us)."""
        return self._overflows

    def close(self) -> None:
        """Stop and release everything; safe to call more than once."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            with contextlib.suppress(OSError):
                stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()
        if self.queue is not None:
            self.queue.close()
