"""A recording session of the user's own takes, apart from any device or terminal.

:class:`Session` measures the room, then take after take waits for speech
(:class:`device.speech.Endpointer`), stops after the trailing silence, trims to the spoken part
with padding (:func:`device.speech.find_speech`), assesses it (:func:`assess`: length, level,
signal-to-noise, clipping), asks the :class:`UI` to keep or redo it, and saves kept takes
(docs/TEAM.md, "Folder conventions")::

    <out>/positive/<keyword>-<session>-<NN>.wav  + .json   (kind "positive")
    <out>/negative/<keyword>-<session>-<NN>.wav  + .json   (kind "negative")
    <out>/check/<keyword>-<session>-<NN>.wav     + .json   (kind "check": takes of the keyword kept
                                                            out of training, to check the model on)

WAVs are 16-bit mono at the model rate, written atomically, the sidecar after the WAV:
``{"version": 1, "keyword", "kind", "prompt", "take", "session", "recorded" (ISO 8601),
"sample_rate", "duration_s", "speech_span_s" ([start, end] of the speech in the saved file, s),
"speech_dbfs", "peak_dbfs", "noise_dbfs" (in the speech band), "snr_db", "clipped_fraction", "ended_by", "warnings",
"device": {...what the source says about itself}, "speaker"}``.

Audio arrives through an :class:`AudioSource` (mono float32 at the model rate), so the session
runs the same on a live microphone (device/record.py) and on arrays in tests.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from device.fsutil import atomic_write_text
from device.params import AudioParams
from device.speech import Endpointer, SpeechConfig, find_speech, frame_db, level_dbfs, noise_floor_db, trim
from device.wavio import write_wav

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1
KINDS = ("positive", "negative", "check")
READ_FRAMES = 3
"""The session looks at the audio in pieces of this many speech frames (30 ms)."""
CLIP_LEVEL = 0.99
"""Samples at or above this magnitude count as clipped."""
POSITIVE_HINTS = (
    "",
    "a little faster",
    "a little slower",
    "louder",
    "softer",
    "from further away",
    "as if calling across the room",
    "as a question",
    "tired",
    "cheerfully",
)
"""Varied delivery makes the takes worth more than ten identical ones."""
NEGATIVE_PHRASES = (
    "Say something that sounds like '{keyword}' but is not it",
    "Say a word that starts like '{keyword}'",
    "What time is it?",
    "Turn the lights off in the kitchen, please.",
    "I'll be there in a minute.",
    "Could you pass me the salt?",
    "The weather looks nice today.",
    "Where did I put my keys?",
    "Let's watch a movie tonight.",
    "Can you hear me now?",
    "That's a good idea.",
    "Read me the news.",
    "Hang on, I'm on the phone.",
    "Seven, eight, nine, ten.",
)


@dataclass(frozen=True)
class SessionConfig:
    keyword: str
    """The keyword, as the user says it."""
    kind: str = "positive"
    """``positive`` (takes of the keyword), ``negative`` (other phrases) or ``check`` (takes of the
    keyword that never train: ``make export`` chooses the model's heads on them)."""
    takes: int = 10
    """Takes to keep."""
    calibrate_s: float = 1.0
    """Room noise measured before the first take (s); keep quiet meanwhile."""
    pre_roll_s: float = 0.5
    """Audio kept from before the detected start of speech (s)."""
    max_take_s: float = 8.0
    """A take still speaking after this long is cut here (s)."""
    max_wait_s: float = 10.0
    """No speech within this long: the take is counted as silent (s)."""
    max_failed_in_a_row: int = 3
    """Give up after this many takes in a row without speech (a dead or muted input)."""
    quiet_dbfs: float = -45.0
    """Speech quieter than this gets a warning (dBFS)."""
    min_snr_db: float = 15.0
    """Speech less than this far above the noise gets a warning (dB)."""
    max_clipped_fraction: float = 0.001
    """More clipped samples than this fraction gets a warning."""
    speaker: str = ""
    """Who is speaking (free text, saved in the sidecar)."""
    phrases: tuple[str, ...] = ()
    """Prompts for negative takes, ``{keyword}`` replaced (default :data:`NEGATIVE_PHRASES`)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.keyword.strip():
            raise ValueError("the keyword is empty")
        if self.takes < 1:
            raise ValueError(f"takes must be at least 1, got {self.takes}")
        for name in ("calibrate_s", "pre_roll_s", "max_take_s", "max_wait_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def prompt(self, index: int) -> str:
        if self.kind in ("positive", "check"):
            hint = POSITIVE_HINTS[index % len(POSITIVE_HINTS)]
            return f"Say '{self.keyword}'" + (f" ({hint})" if hint else "")
        phrases = self.phrases or NEGATIVE_PHRASES
        return phrases[index % len(phrases)].replace("{keyword}", self.keyword)


class AudioSource(Protocol):
    """Mono float32 audio at the model rate, block by block."""

    def read(self) -> np.ndarray | None:
        """The next block (``[n]`` float32 in [-1, 1]); None once the input has ended."""

    def flush(self) -> None:
        """Drop audio queued while nobody listened (the user was deciding about a take)."""

    def describe(self) -> dict:
        """Where the audio comes from, for the sidecar."""


class UI(Protocol):
    def prompt(self, index: int, total: int, text: str) -> bool:
        """Show the prompt; False when the user wants to stop. True means recording starts now."""

    def level(self, dbfs: float, speaking: bool) -> None: ...

    def review(self, take: Take) -> str:
        """``keep``, ``redo`` or ``quit``."""

    def message(self, text: str) -> None: ...

    def kept(self, path: Path) -> None: ...


@dataclass(frozen=True)
class Take:
    audio: np.ndarray
    """The trimmed take, float32 ``[n]`` at the model rate (empty when no speech was found)."""
    sample_rate: int
    speech_span_s: tuple[float, float] | None
    """Start and end of the speech inside :attr:`audio` (s), None when there was none."""
    ended_by: str
    """``silence`` (normal), ``max_length``, ``no_speech`` or ``input_ended``."""
    noise_dbfs: float
    """Noise floor in the speech band (:attr:`SpeechConfig.band_hz`), dBFS."""
    speech_dbfs: float = float("-inf")
    """RMS level of the speech, all frequencies, dBFS."""
    peak_dbfs: float = float("-inf")
    snr_db: float = float("-inf")
    """Speech over noise, both in the speech band (dB)."""
    clipped_fraction: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.speech_span_s is not None


def db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-10)))


def assess(
    raw: np.ndarray, ended_by: str, floor_db: float, sample_rate: int, cfg: SessionConfig, speech_cfg: SpeechConfig
) -> Take:
    """Find and trim the speech in one raw take and say what is wrong with it, if anything."""
    span = find_speech(raw, sample_rate, speech_cfg)
    if span is None:
        return Take(
            np.zeros(0, np.float32),
            sample_rate,
            None,
            "no_speech" if ended_by == "silence" else ended_by,
            floor_db,
            warnings=("no speech found",),
        )
    audio, offset = trim(raw, span, sample_rate, speech_cfg)
    speech = raw[span.start : span.end]
    # The floor the take itself shows (its pre-roll and trailing silence) is more current than
    # the calibration; a take cut at max_length may have too little quiet to tell, so keep the lower.
    own_floor = noise_floor_db(frame_db(raw, sample_rate, speech_cfg), speech_cfg)
    noise = own_floor if ended_by == "silence" else min(floor_db, own_floor)
    speech_db, peak = level_dbfs(speech), float(np.max(np.abs(speech)))
    speech_band_db = float(10 * np.log10(np.mean(10 ** (frame_db(speech, sample_rate, speech_cfg) / 10)) + 1e-12))
    snr = speech_band_db - noise
    clipped = float(np.mean(np.abs(speech) >= CLIP_LEVEL))
    warnings = []
    if ended_by == "max_length":
        warnings.append(f"still speaking after {cfg.max_take_s:g} s: cut there")
    if clipped > cfg.max_clipped_fraction:
        warnings.append(f"clipped ({clipped:.1%} of samples at full scale): lower the input gain")
    if speech_db < cfg.quiet_dbfs:
        warnings.append(f"quiet ({speech_db:.0f} dBFS): speak up, move closer or raise the gain")
    if snr < cfg.min_snr_db:
        warnings.append(f"noisy (speech only {snr:.0f} dB above the room)")
    start_s = (span.start - offset) / sample_rate
    return Take(
        audio,
        sample_rate,
        (start_s, start_s + span.length / sample_rate),
        ended_by,
        noise,
        speech_db,
        db(peak),
        snr,
        clipped,
        tuple(warnings),
    )


class Session:
    """One recording session: calibrate, then take after take until enough are kept."""

    def __init__(
        self,
        source: AudioSource,
        ui: UI,
        cfg: SessionConfig,
        out_dir: Path,
        params: AudioParams = AudioParams(),
        speech_cfg: SpeechConfig = SpeechConfig(),
        flush_between_takes: bool = True,
    ):
        self.source, self.ui, self.cfg, self.params, self.speech_cfg = source, ui, cfg, params, speech_cfg
        self.out_dir = Path(out_dir) / cfg.kind
        self.flush_between_takes = flush_between_takes
        self.session_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.floor_db = float("nan")
        self.saved: list[Path] = []
        self.input_ended = False
        self._pending = np.zeros(0, np.float32)

    @property
    def rate(self) -> int:
        return self.params.sample_rate

    def read(self) -> np.ndarray | None:
        """The next few ms of audio; the source's blocks are cut small, so a take ends where
        its silence ends, however much audio a (file-backed, unpaced) source hands over at once."""
        while len(self._pending) == 0:
            block = self.source.read()
            if block is None:
                self.input_ended = True
                return None
            self._pending = np.asarray(block, dtype=np.float32)
        step = self.speech_cfg.frame_samples(self.rate) * READ_FRAMES
        block, self._pending = self._pending[:step], self._pending[step:]
        return block

    def calibrate(self) -> float:
        """Measure the noise floor (dBFS) over ``calibrate_s`` of audio."""
        need = round(self.cfg.calibrate_s * self.rate)
        got: list[np.ndarray] = []
        while sum(len(b) for b in got) < need and (block := self.read()) is not None:
            got.append(block)
            self.ui.level(level_dbfs(block), False)
        audio = np.concatenate(got) if got else np.zeros(0, np.float32)
        self.floor_db = noise_floor_db(frame_db(audio, self.rate, self.speech_cfg), self.speech_cfg)
        if self.floor_db < -90:
            self.ui.message("the input is digital silence: is the microphone muted, or the wrong channel picked?")
        elif self.floor_db > -35:
            self.ui.message(f"the room is loud ({self.floor_db:.0f} dBFS): takes will be noisy")
        return self.floor_db

    def record_take(self) -> Take:
        """Wait for speech, record until the trailing silence, then trim and assess."""
        ep = Endpointer(self.floor_db, self.rate, self.speech_cfg)
        pre: deque[np.ndarray] = deque()
        taken: list[np.ndarray] = []
        waited = recorded = 0
        ended_by = "input_ended"
        while (block := self.read()) is not None:
            ep.feed(block)
            self.ui.level(level_dbfs(block), ep.started)
            if not ep.started:
                pre.append(block)
                while sum(map(len, pre)) - len(pre[0]) >= self.cfg.pre_roll_s * self.rate:
                    pre.popleft()
                waited += len(block)
                if waited >= self.cfg.max_wait_s * self.rate:
                    ended_by = "no_speech"
                    break
                continue
            if not taken:
                taken = list(pre)
            taken.append(block)
            recorded += len(block)
            if ep.ended:
                ended_by = "silence"
                break
            if recorded >= self.cfg.max_take_s * self.rate:
                ended_by = "max_length"
                break
        raw = np.concatenate(taken) if taken else np.zeros(0, np.float32)
        take = assess(raw, ended_by, self.floor_db, self.rate, self.cfg, self.speech_cfg)
        if take.usable and ended_by == "silence":
            self.floor_db = take.noise_dbfs  # follow a room that got quieter or louder
        return take

    def run(self) -> int:
        """Record until ``takes`` are kept, the user quits or the input ends; returns takes kept."""
        self.calibrate()
        failed_in_a_row = 0
        while len(self.saved) < self.cfg.takes and not self.input_ended:
            index = len(self.saved)
            text = self.cfg.prompt(index)
            if not self.ui.prompt(index, self.cfg.takes, text):
                break
            if self.flush_between_takes:
                self.source.flush()
                self._pending = np.zeros(0, np.float32)
            take = self.record_take()
            if take.ended_by == "input_ended" and not take.usable:
                break
            decision = self.ui.review(take)
            if decision == "quit":
                break
            if decision == "keep" and take.usable:
                self.saved.append(self.save(take, index, text))
                self.ui.kept(self.saved[-1])
                failed_in_a_row = 0
                continue
            failed_in_a_row += not take.usable
            if failed_in_a_row >= self.cfg.max_failed_in_a_row:
                self.ui.message(
                    f"{failed_in_a_row} takes in a row without speech: check the device "
                    "and its level (`wakeword devices`)"
                )
                break
        return len(self.saved)

    def save(self, take: Take, index: int, prompt: str) -> Path:
        """Write the WAV and then its sidecar, each atomically; returns the WAV's path."""
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.cfg.keyword.strip()) or "keyword"
        n = index + 1
        while (path := self.out_dir / f"{slug}-{self.session_id}-{n:02d}.wav").exists():
            n += 1
        write_wav(path, take.audio, self.rate)
        meta = {
            "version": SIDECAR_VERSION,
            "keyword": self.cfg.keyword,
            "kind": self.cfg.kind,
            "prompt": prompt,
            "take": index + 1,
            "session": self.session_id,
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
            "sample_rate": self.rate,
            "duration_s": round(len(take.audio) / self.rate, 4),
            "speech_span_s": [round(t, 4) for t in take.speech_span_s or ()],
            "speech_dbfs": round(take.speech_dbfs, 1),
            "peak_dbfs": round(take.peak_dbfs, 1),
            "noise_dbfs": round(take.noise_dbfs, 1),
            "snr_db": round(take.snr_db, 1),
            "clipped_fraction": round(take.clipped_fraction, 5),
            "ended_by": take.ended_by,
            "warnings": list(take.warnings),
            "device": self.source.describe(),
            "speaker": self.cfg.speaker,
        }
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
        log.debug("saved %s (%.2f s)", path, len(take.audio) / self.rate)
        return path
