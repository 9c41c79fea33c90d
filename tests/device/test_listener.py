"""The inference loop with the real tone model: stalls, gaps, a device that vanishes, the
energy gate, and chunk-size invariance. The audio producer is a script that pushes int16
blocks into the real queue (what the PortAudio callback does), so the timing is exact."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bench.tonemodel import TONE_S, tone_clip
from device.decision import Decider, DecisionConfig
from device.engine import Engine
from device.filesource import WavSource
from device.gate import EnergyGate, GateConfig
from device.gpio import FakePin
from device.listener import CaptureConfig, Listener
from device.outputs import GpioConfig, Indicator, Outputs
from device.ringqueue import Block, DropOldestQueue
from device.stopflag import StopFlag
from device.wavio import write_wav
from tests.device.daemon_helpers import PARAMS, RATE, multichannel


class ScriptedSource:
    """A microphone driven by the test: :meth:`say` pushes audio as callback-sized blocks."""

    def __init__(self, session: int, rate_hz: int = RATE, channels: int = 1, block_ms: float = 32.0):
        self.session, self.rate_hz, self.channels = session, rate_hz, channels
        self.block_frames = round(block_ms / 1000 * rate_hz)
        self.frames = 0
        self.queue: DropOldestQueue | None = None
        self.dead = False
        self.closed = False
        self.overflows = 0

    def open(self, queue_s: float) -> DropOldestQueue:
        self.queue = DropOldestQueue(round(queue_s * self.rate_hz))
        return self.queue

    def say(self, audio: np.ndarray) -> None:
        a = audio if audio.ndim == 2 else audio[:, None]
        pcm = (np.clip(a, -1, 32767 / 32768) * 32768).round().astype("<i2")
        for i in range(0, len(pcm), self.block_frames):
            b = pcm[i : i + self.block_frames]
            self.queue.push(Block(self.session, self.frames, len(b), b.tobytes()))
            self.frames += len(b)

    finished = False

    @property
    def alive(self) -> bool:
        return not self.dead and not self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def engine(tone_model) -> Engine:
    return Engine.load(tone_model)


def make_listener(engine, sources, live=True, gate=None, **cfg) -> tuple[Listener, list]:
    """A listener whose ``open_source`` hands out ``sources`` in order; returns it and its detections."""
    dets = []
    pin = FakePin(17)
    outputs = Outputs("tone", Indicator(pin, GpioConfig(backend="fake", on_s=0.05)))
    it = iter(sources)
    lst = Listener(
        engine,
        Decider(DecisionConfig(0.5, refractory_s=1.0), PARAMS.output_hop_s),
        outputs,
        lambda session: next(it)(session),
        CaptureConfig(**cfg),
        live=live,
        gate=gate,
        on_detection=dets.append,
    )
    return lst, dets


def quiet(seconds: float, seed: int = 0) -> np.ndarray:
    return tone_clip(seconds, [], seed=seed)


def test_a_stall_drops_stale_audio_and_never_fires_late(engine):
    """The loop misses its ticks for 4 s; a tone that ended 3 s before it wakes up is stale."""

    def scenario(stall: bool):
        src = ScriptedSource(0)
        lst, dets = make_listener(engine, [lambda s: src], stale_after_s=1.0)
        assert lst.connect()
        src.say(quiet(1.0, seed=1))
        lst.poll()
        burst = tone_clip(4.0, [0.5], seed=2)  # the tone ends at 1.0 + 0.9 s stream time
        step = len(burst) if stall else RATE // 2
        for i in range(0, len(burst), step):
            src.say(burst[i : i + step])
            lst.poll()
        for k in range(4):
            src.say(quiet(0.5, seed=3 + k))
            lst.poll()
        lst.outputs.close()
        return lst, dets

    lst, dets = scenario(stall=False)
    assert len(dets) == 1 and 1.9 <= dets[0].time_s <= 2.2
    assert lst.stats.stale_drops == 0 and lst.dropped_s == 0

    lst, dets = scenario(stall=True)
    assert dets == []
    assert lst.stats.stale_drops == 1 and lst.stats.resets == 1
    assert lst.dropped_s == pytest.approx(3.0, abs=0.04)  # all but the newest stale_after_s


def test_after_the_loop_stalled_whatever_waits_is_stale_however_little(engine):
    """Found by `make soak`: a tone queued just before the process was stopped (SIGSTOP) was
    stepped right after SIGCONT, before the audio thread had handed over the stall's backlog --
    little audio, so the amount rule kept it, but 3 s old: the LED fired 3 s late. A loop that did
    not run for longer than stale_after_s now drops all that waits."""

    def scenario(stall_s: float):
        src = ScriptedSource(0)
        lst, dets = make_listener(engine, [lambda s: src], stale_after_s=0.6)
        assert lst.connect()
        src.say(quiet(0.5, seed=1))
        lst.poll()
        src.say(tone_clip(0.5, [0.05], seed=2))  # less than stale_after_s of audio waits ...
        time.sleep(stall_s)  # ... while the loop does not run
        lst.poll()
        for k in range(6):
            src.say(quiet(0.25, seed=3 + k))
            lst.poll()
        lst.outputs.close()
        return lst, dets

    lst, dets = scenario(0.0)
    assert len(dets) == 1 and lst.stats.stale_drops == 0
    lst, dets = scenario(0.9)
    assert dets == [] and lst.stats.stale_drops == 1
    assert lst.dropped_s == pytest.approx(0.5, abs=0.04)


def test_queue_overflow_is_a_gap_the_model_restarts_after_with_true_stream_times(engine):
    src = ScriptedSource(0)
    lst, dets = make_listener(engine, [lambda s: src], queue_s=1.0, stale_after_s=10.0)
    assert lst.connect()
    src.say(quiet(1.0, seed=1))
    lst.poll()
    src.say(quiet(3.0, seed=2))  # 3 s into a 1 s queue: the oldest 2 s are dropped
    assert src.queue.dropped_frames == pytest.approx(2 * RATE, abs=src.block_frames)
    lst.poll()
    tone = tone_clip(2.0, [0.5], seed=3)  # from stream time 4.0 s: the tone ends at 4.9 s
    for i in range(0, len(tone), RATE // 2):
        src.say(tone[i : i + RATE // 2])
        lst.poll()
    lst.outputs.close()
    assert lst.stats.resets == 1
    assert len(dets) == 1 and 4.9 <= dets[0].time_s <= 5.2
    assert lst.dropped_s == pytest.approx(2.0, abs=0.04)


def test_a_device_that_vanishes_is_reopened_and_detection_resumes(engine):
    made = []

    def factory(session):
        s = ScriptedSource(session)
        made.append(s)
        return s

    lst, dets = make_listener(engine, [factory] * 5, retry_min_s=0.05, retry_max_s=0.1, stale_after_s=10.0)
    stop = StopFlag()
    t = threading.Thread(target=lst.run, args=(stop,))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not made or made[0].queue is None:
            time.sleep(0.01)
        made[0].say(quiet(1.0))
        made[0].dead = True  # unplugged: the stream stops
        while len(made) < 2 or made[1].queue is None:
            assert time.monotonic() < deadline, "not reopened"
            time.sleep(0.01)
        assert made[0].closed
        made[1].say(tone_clip(3.0, [0.5], seed=4))
        while not dets:
            assert time.monotonic() < deadline, "no detection after reconnect"
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(10)
        lst.outputs.close()
    assert not t.is_alive()
    assert lst.stats.reconnects == 1 and len(dets) == 1
    # the live loop gives freed heap memory back (device/heap.py), once a minute at most
    assert lst.heap.trims == (1 if lst.heap.available else 0)


def test_silence_from_an_open_device_counts_as_lost(engine):
    made = []

    def factory(session):
        made.append(ScriptedSource(session))
        return made[-1]

    lst, _ = make_listener(engine, [factory] * 5, no_audio_s=0.3, retry_min_s=0.05, retry_max_s=0.1)
    stop = StopFlag()
    t = threading.Thread(target=lst.run, args=(stop,))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while len(made) < 2:  # the first source never says anything
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(10)
        lst.outputs.close()
    assert made[0].closed


def test_working_off_a_backlog_longer_than_no_audio_s_is_not_a_lost_device(engine, monkeypatch):
    """A slow machine (an emulated Pi, a busy Pi) takes longer than no_audio_s to process what
    arrived; the device delivered all of it, so it must not be closed and reopened."""
    src = ScriptedSource(0)
    lst, _ = make_listener(engine, [lambda s: src], no_audio_s=0.3, stale_after_s=10.0)
    assert lst.connect()
    real_step = engine.step
    monkeypatch.setattr(engine, "step", lambda audio: (time.sleep(0.5), real_step(audio))[1])
    src.say(quiet(2.0, seed=1))  # one step over the backlog that takes longer than no_audio_s
    lst.poll()
    lst._check_alive()
    lst.outputs.close()
    assert lst.source is src and not src.closed and lst.stats.resets == 0


def write_clip(path, audio, rate=RATE):
    write_wav(path, audio, rate)
    return str(path)


def run_file(engine, path, block_ms=32.0, gate=None, use_channels=()):
    probs = []
    real_step = engine.step

    def recording_step(audio):
        p = real_step(audio)
        probs.append(p.copy())
        return p

    engine.step = recording_step
    try:
        steps = []
        lst, dets = make_listener(
            engine, [lambda s: WavSource(path, block_ms, session=s)], live=False, gate=gate, use_channels=use_channels
        )
        lst.on_step = lambda t, p: steps.append((round(t, 6), p))
        lst.run(StopFlag())
        lst.outputs.close()
    finally:
        del engine.step
    return np.concatenate(probs), steps, dets, lst


def test_results_do_not_depend_on_block_size(engine, tmp_path):
    audio = multichannel(tone_clip(5.0, [1.0, 3.2], seed=5), 4, 48000, 1)
    path = write_clip(tmp_path / "quad48.wav", audio, 48000)
    runs = [run_file(engine, path, block_ms=b, use_channels=(1,)) for b in (5.0, 32.0, 210.0)]
    ref_probs, ref_steps, ref_dets, _ = runs[0]
    assert len(ref_dets) == 2
    for det, tone_at in zip(ref_dets, (1.0, 3.2)):
        assert tone_at + TONE_S - 0.05 <= det.time_s <= tone_at + TONE_S + 0.3
    for probs, steps, dets, _ in runs[1:]:
        np.testing.assert_allclose(probs, ref_probs, atol=2e-5)
        assert [t for t, _ in steps] == [t for t, _ in ref_steps]
        assert [round(d.time_s, 6) for d in dets] == [round(d.time_s, 6) for d in ref_dets]
    # file steps are uniform: every infer_every_s, then the rest
    times = [t for t, _ in ref_steps]
    step = PARAMS.infer_every_s
    assert times[:3] == pytest.approx([step, 2 * step, 3 * step])
    assert times[-1] == pytest.approx(5.0, abs=PARAMS.output_hop_s)


def test_energy_gate_skips_quiet_steps_and_still_detects(engine, tmp_path):
    audio = tone_clip(10.0, [7.0], seed=6)
    path = write_clip(tmp_path / "quiet.wav", audio)
    _, _, dets_open, lst_open = run_file(engine, path)
    _, _, dets, lst = run_file(engine, path, gate=EnergyGate(GateConfig(enabled=True)))
    assert [round(d.time_s, 2) for d in dets] == [round(d.time_s, 2) for d in dets_open]
    assert len(dets) == 1 and 7.0 + TONE_S <= dets[0].time_s <= 7.8
    assert lst.stats.skipped_steps >= 10
    assert lst.stats.steps < lst_open.stats.steps - 8
