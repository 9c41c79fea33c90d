"""``wakeword record``: a guided session of the user's own takes of the keyword (``--kind
positive``) or of negative phrases (``--kind negative``), from any ALSA input, mic arrays
included, saved as trimmed 16 kHz mono WAVs with a JSON sidecar each (:mod:`device.takes` holds
the session, the file layout and the sidecar format).

This module is the glue: :class:`MicSource` turns :mod:`device.capture` (the only PyAudio
module, the daemon's own) and :mod:`device.downmix` into the session's audio source,
:class:`TerminalUI` shows prompts, a level meter and keep/redo questions, and :func:`main`
is the command line. ``--takes N --yes`` runs without questions (scripts and tests);
``--config /etc/wakeword/config.toml`` takes the device settings from the daemon's config.
Runs on the workstation or on a Pi: numpy, soxr and pyaudio only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.params import AudioParams
from device.takes import KINDS, Session, SessionConfig, Take

if TYPE_CHECKING:
    from device.capture import Capture
    from device.downmix import Downmixer
    from device.filesource import WavSource
    from device.ringqueue import DropOldestQueue

log = logging.getLogger(__name__)


# -- the live source ------------------------------------------------------------------------
@dataclass
class MicSource:
    """A :class:`device.capture.Capture` (or a :class:`device.filesource.WavSource`) reduced to
    mono at the model rate. Waits up to ``timeout_s`` for audio; a dead stream ends the input."""

    capture: Capture | WavSource
    rate: int
    use_channels: tuple[int, ...] = ()
    queue_s: float = 5.0
    timeout_s: float = 2.0
    gaps: int = 0
    _queue: DropOldestQueue | None = field(default=None, repr=False)
    _mix: Downmixer | None = field(default=None, repr=False)
    _next_frame: int | None = field(default=None, repr=False)

    def open(self) -> MicSource:
        from device.downmix import Downmixer

        self._queue = self.capture.open(self.queue_s)
        self._mix = Downmixer(self.capture.rate_hz, self.capture.channels, self.rate, self.use_channels)
        return self

    @property
    def queue(self) -> DropOldestQueue:
        assert self._queue is not None, "MicSource.open() first"
        return self._queue

    @property
    def mix(self) -> Downmixer:
        assert self._mix is not None, "MicSource.open() first"
        return self._mix

    def read(self) -> np.ndarray | None:
        while True:
            blocks = self.queue.take(max_frames=1)  # one capture block at a time
            if blocks:
                return self._convert(blocks)
            if not self.capture.alive:
                blocks = self.queue.take()
                return self._convert(blocks) if blocks else None
            self.queue.wait(1, self.timeout_s)

    def _convert(self, blocks: list) -> np.ndarray:
        out = []
        for b in blocks:
            if self._next_frame is not None and b.start_frame != self._next_frame:
                self.gaps += 1  # dropped audio: the resampler must not bridge the gap
                self.mix.reset()
            self._next_frame = b.end_frame
            out.append(self.mix.process(b.data))
        return np.concatenate(out).astype(np.float32)

    def flush(self) -> None:
        self.queue.take()
        self._next_frame = None
        self.mix.reset()

    def describe(self) -> dict:
        info = self.capture.info
        assert info is not None, "MicSource.open() first"
        return {
            "name": info.name,
            "channels": self.capture.channels,
            "rate_hz": self.capture.rate_hz,
            "use_channels": list(self.mix.use_channels),
        }

    def close(self) -> None:
        self.capture.close()


# -- the terminal ---------------------------------------------------------------------------
class TerminalUI:
    """Prompts on stdout, a level meter on stderr, keep/redo questions on stdin."""

    METER_DB = (-60.0, 0.0)
    METER_WIDTH = 30
    METER_EVERY_S = 0.05

    def __init__(self, ask: bool):
        self.ask = ask
        self.meter = ask and sys.stderr.isatty()
        self._last_meter = 0.0

    def prompt(self, index: int, total: int, text: str) -> bool:
        print(f"\ntake {index + 1}/{total}: {text}")
        if not self.ask:
            return True
        answer = input("  [Enter] start, q quit: ").strip().lower()
        return answer not in ("q", "quit")

    def level(self, dbfs: float, speaking: bool) -> None:
        now = time.monotonic()
        if not self.meter or now - self._last_meter < self.METER_EVERY_S:
            return
        self._last_meter = now
        lo, hi = self.METER_DB
        filled = round(self.METER_WIDTH * min(1.0, max(0.0, (dbfs - lo) / (hi - lo))))
        bar = "#" * filled + "-" * (self.METER_WIDTH - filled)
        state = "recording" if speaking else "listening"
        sys.stderr.write(f"\r  [{bar}] {dbfs:6.1f} dBFS  {state}   ")
        sys.stderr.flush()

    def review(self, take: Take) -> str:
        if self.meter:
            sys.stderr.write("\r" + " " * (self.METER_WIDTH + 40) + "\r")
        if not take.usable or take.speech_span_s is None:
            print(f"  no speech heard ({take.ended_by.replace('_', ' ')}); again")
            return "redo"
        start, end = take.speech_span_s
        print(
            f"  heard {end - start:.2f} s of speech at {take.speech_dbfs:.0f} dBFS, {take.snr_db:.0f} dB above the room"
        )
        for warning in take.warnings:
            print(f"  warning: {warning}")
        if not self.ask:
            return "keep"
        answer = input("  [Enter] keep, r redo, q quit: ").strip().lower()
        return {"r": "redo", "redo": "redo", "q": "quit", "quit": "quit"}.get(answer, "keep")

    def message(self, text: str) -> None:
        print(f"record: {text}", file=sys.stderr)

    def kept(self, path: Path) -> None:
        print(f"  saved {path}")


# -- command line ---------------------------------------------------------------------------
def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--keyword", required=True, help="the keyword, as you say it")
    ap.add_argument("--out", type=Path, help="recordings folder (default recordings/<keyword>)")
    ap.add_argument(
        "--kind",
        choices=KINDS,
        default="positive",
        help="positive: takes of the keyword; negative: other phrases; check: takes of the keyword "
        "kept out of training, that `make export` chooses the model's heads on (default positive)",
    )
    ap.add_argument("--takes", type=int, default=10, help="takes to keep (default 10)")
    ap.add_argument(
        "--config",
        type=Path,
        help="take the device settings from the daemon's config [capture] (e.g. /etc/wakeword/config.toml)",
    )
    ap.add_argument("--device", help="input device name or part of it (`wakeword devices`; default: ALSA default)")
    ap.add_argument("--input", type=Path, help="read a WAV file instead of a device (for trying things out)")
    ap.add_argument("--channels", type=int, help="channels to open (default: all the device has)")
    ap.add_argument("--rate", type=int, help="device rate in Hz (default: the device's own)")
    ap.add_argument("--use-channels", help="0-based channels to mix, e.g. 0 or 0,2 (default: all)")
    ap.add_argument("--speaker", default="", help="who is speaking (saved with each take)")
    ap.add_argument("--phrases", type=Path, help="text file of prompts for --kind negative, one per line")
    ap.add_argument("--max-take-s", type=float, default=SessionConfig.max_take_s, help="longest take (s)")
    ap.add_argument("--yes", action="store_true", help="no questions: keep every take with speech in it")
    ap.add_argument(
        "--max-audio-s",
        type=float,
        metavar="S",
        help="stop after S seconds of input audio (counted in frames; for file-backed test devices)",
    )


def session_config(args: argparse.Namespace) -> SessionConfig:
    phrases: tuple[str, ...] = ()
    if args.phrases:
        try:
            phrases = tuple(line.strip() for line in args.phrases.read_text().splitlines() if line.strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --phrases {args.phrases}: {exc}") from None
        if not phrases:
            raise ValueError(f"--phrases {args.phrases} has no lines")
    return SessionConfig(
        keyword=args.keyword,
        kind=args.kind,
        takes=args.takes,
        speaker=args.speaker,
        phrases=phrases,
        max_take_s=args.max_take_s,
    )


@dataclass(frozen=True)
class InputSettings:
    device: str = "default"
    """(Part of) the capture device's name."""
    channels: int = 0
    """Channels to open; 0 = all the device has."""
    rate_hz: int = 0
    """Rate to open the device at; 0 = its default."""
    use_channels: tuple[int, ...] = ()
    """0-based channels to average; empty = all."""


def input_settings(args: argparse.Namespace) -> InputSettings:
    """Device settings: the daemon config's ``[capture]`` (``--config``), then the command line."""
    base = InputSettings()
    if args.config:
        from device import config  # raises ConfigError (a ValueError) with one line

        cap = config.load(args.config).capture
        base = InputSettings(cap.device, cap.channels, cap.rate_hz, tuple(cap.use_channels))
    use = base.use_channels
    if args.use_channels is not None:
        try:
            use = tuple(int(c) for c in args.use_channels.split(",") if c.strip())
        except ValueError:
            raise ValueError(f"--use-channels {args.use_channels!r} must be channel numbers like 0 or 0,2") from None

    def pick(given, default):
        return default if given is None else given

    return InputSettings(
        pick(args.device, base.device), pick(args.channels, base.channels), pick(args.rate, base.rate_hz), use
    )


def open_source(args: argparse.Namespace, settings: InputSettings, params: AudioParams) -> MicSource:
    """The capture the daemon uses (:mod:`device.capture`), or a WAV file with ``--input``."""
    if args.input:
        from device.filesource import WavSource

        capture: Capture | WavSource = WavSource(str(args.input))
        rate_hz = capture.rate_hz
    else:
        from device.capture import Capture, describe_devices, find_input_device

        rate_hz = settings.rate_hz
        if args.max_audio_s and not rate_hz:  # frames need the rate, which open() would find too late
            rate_hz = find_input_device([d for d, _ in describe_devices()], settings.device).default_rate_hz
        capture = Capture(settings.device, channels=settings.channels, rate_hz=rate_hz)
    if args.max_audio_s:
        capture.max_frames = round(args.max_audio_s * rate_hz)  # before open: the stream starts at once
    # An unpaced test device delivers everything at once: queue it all rather than drop it.
    queue_s = max(5.0, (args.max_audio_s or 0) + 1.0)
    return MicSource(capture, params.sample_rate, settings.use_channels, queue_s=queue_s).open()


def run(args: argparse.Namespace) -> int:
    """The ``record`` subcommand; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="record: %(message)s")
    params = AudioParams()
    try:
        cfg = session_config(args)
        settings = input_settings(args)
    except ValueError as exc:  # also device.config.ConfigError
        print(f"record: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("recordings") / args.keyword
    try:
        source = open_source(args, settings, params)
    except (LookupError, RuntimeError, ValueError, OSError) as exc:  # DeviceNotFound, CaptureError, WavError
        hint = (
            "; if wakeword.service holds the microphone, stop it first: sudo systemctl stop wakeword"
            if type(exc).__name__ == "CaptureError"
            else ""
        )
        print(f"record: {exc}{hint}", file=sys.stderr)
        return 1
    ui = TerminalUI(ask=not args.yes)
    # A live microphone keeps talking while the user decides: drop that audio before the next
    # take. A file does not (and without questions nobody pauses).
    session = Session(source, ui, cfg, out, params, flush_between_takes=not args.yes and not args.input)
    print(
        f"record: {cfg.takes} {cfg.kind} take(s) of '{cfg.keyword}' from {source.describe()['name']} "
        f"into {session.out_dir}; measuring the room for {cfg.calibrate_s:g} s, stay quiet"
    )
    interrupted = False
    try:
        kept = session.run()
    except (KeyboardInterrupt, EOFError):  # Ctrl-C, or stdin closed while asking
        kept, interrupted = len(session.saved), True
        print("\nrecord: interrupted; the takes saved so far are complete", file=sys.stderr)
    finally:
        source.close()
    if source.gaps:
        print(f"record: {source.gaps} gap(s) in the input (audio dropped); check the saved takes", file=sys.stderr)
    print(f"record: kept {kept} take(s) in {session.out_dir}")
    if interrupted:
        return 130
    if kept < cfg.takes and session.input_ended:
        print(f"record: the input ended after {kept} of {cfg.takes} takes", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="wakeword record",
        description="Record your own takes of the keyword (or, with --kind negative, of other phrases): "
        "a prompt and a level meter per take, keep or redo; each take is trimmed to the spoken "
        "part and saved as a 16 kHz mono WAV with a .json sidecar under <out>/<kind>/.",
    )
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
