"""The audio path without a device or a clock: made-up blocks in, the real tone model's steps
and detections out. Stale dropping, gaps that start a new segment, sessions, uniform file steps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.tonemodel import TONE_S, tone_clip
from device.audiopath import AudioPath, KeywordUnit, split_stale
from device.decision import Decider, DecisionConfig
from device.downmix import Downmixer
from device.engine import Engine
from device.listenstats import Stats
from device.outputs import Outputs
from device.ringqueue import Block
from tests.device.daemon_helpers import PARAMS, RATE

BLOCK = 512  # frames per made-up block (32 ms)


def whole_hops_s(seconds: float) -> float:
    """The part of ``seconds`` of audio that fills whole output hops (s)."""
    hop = PARAMS.output_hop_samples
    return round(seconds * RATE) // hop * hop / RATE


@pytest.fixture(scope="module")
def engine(tone_model) -> Engine:
    return Engine.load(tone_model)


def blocks(audio: np.ndarray, start_frame: int = 0, session: int = 0, block: int = BLOCK) -> list[Block]:
    """Mono float32 -> int16 blocks of ``block`` frames from ``start_frame`` on."""
    pcm = (np.clip(audio, -1, 32767 / 32768) * 32768).round().astype("<i2")
    return [
        Block(session, start_frame + i, len(pcm[i : i + block]), pcm[i : i + block].tobytes())
        for i in range(0, len(pcm), block)
    ]


def make_path(engine, live=True, stale_after_s=10.0, offset_s=0.0, session=0):
    """A path with one session started -> it, its detections, its (end_time_s, max_prob) steps."""
    dets, steps = [], []
    unit = KeywordUnit(engine, Decider(DecisionConfig(0.5, refractory_s=1.0), PARAMS.output_hop_s), Outputs("tone"))
    path = AudioPath(
        PARAMS,
        [unit],
        Stats(),
        stale_after_s=stale_after_s,
        live=live,
        on_detection=dets.append,
        on_step=lambda t, p: steps.append(t),
    )
    path.start_session(session, Downmixer(RATE, 1, RATE), offset_s)
    return path, dets, steps


def test_split_stale_keeps_the_newest_whole_blocks():
    bs = [Block(0, i * 100, 100, b"") for i in range(5)]
    assert split_stale(bs, 500) == (bs, 0)
    assert split_stale(bs, 250) == (bs[3:], 300)  # whole blocks: 200 frames are left, not 250
    assert split_stale(bs, 0) == ([], 500)
    assert split_stale([], 0) == ([], 0)


def test_a_tone_fed_as_blocks_is_detected_at_its_stream_time(engine):
    path, dets, steps = make_path(engine)
    audio = tone_clip(3.0, [1.0], seed=1)
    for i in range(0, len(audio), RATE // 2):  # a tick every 0.5 s
        path.feed(blocks(audio[i : i + RATE // 2], start_frame=i))
    assert len(dets) == 1 and 1.0 + TONE_S - 0.05 <= dets[0].time_s <= 1.0 + TONE_S + 0.3
    assert dets[0].keyword == engine.meta.keyword and path.units[0].count == 1
    assert path.stats.audio_s == pytest.approx(3.0) and path.stats.resets == 0
    assert steps[-1] == pytest.approx(whole_hops_s(3.0)) == path.segment_end_s  # whole hops only


def test_a_backlog_longer_than_stale_after_s_is_cut_to_its_newest_part(engine):
    path, dets, _ = make_path(engine, stale_after_s=1.0)
    path.feed(blocks(tone_clip(1.0, [], seed=2)))
    path.feed(blocks(tone_clip(4.0, [0.5], seed=3), start_frame=RATE))  # the tone is 3 s old
    assert dets == []
    assert path.stats.stale_drops == 1 and path.stats.resets == 1  # the kept audio is a new segment
    assert path.stats.dropped_s == pytest.approx(3.0, abs=BLOCK / RATE)
    assert path.stats.audio_s == pytest.approx(2.0, abs=BLOCK / RATE)


def test_after_a_stall_all_that_waits_is_dropped_however_little(engine):
    path, dets, _ = make_path(engine, stale_after_s=1.0)
    path.feed(blocks(tone_clip(0.5, [0.05], seed=4)), stalled=True)
    assert dets == [] and path.stats.stale_drops == 1
    assert path.stats.dropped_s == pytest.approx(0.5) and path.stats.audio_s == 0.0


def test_a_stall_noticed_before_its_audio_arrives_drops_the_first_audio_that_comes(engine):
    """Found by CI's `make soak`: SIGCONT woke the loop before the audio thread, so the tick that saw
    the stall had nothing to drop; the next tick's audio went on where the stall began, and the
    model completed a keyword from before the stall 3 s late."""

    def scenario(stalled: bool):
        path, dets, _ = make_path(engine, stale_after_s=1.5)
        audio = tone_clip(3.0, [1.0], seed=1)
        cut = round(1.4 * RATE)  # the tone has ended; the model has not fired yet
        path.feed(blocks(audio[:cut]))
        assert dets == []
        path.feed([], stalled=stalled)  # the loop wakes up; the audio thread has not run yet
        for i in range(cut, len(audio), RATE // 4):  # the backlog, continuing the stream
            path.feed(blocks(audio[i : i + RATE // 4], start_frame=i))
        return path, dets

    path, dets = scenario(stalled=False)
    assert len(dets) == 1 and path.stats.stale_drops == 0
    path, dets = scenario(stalled=True)
    assert dets == [] and path.stats.stale_drops == 1 and path.stats.resets == 1
    assert path.stats.dropped_s == pytest.approx(0.25, abs=BLOCK / RATE)  # the first tick's audio only


def test_a_stall_backlog_handed_over_across_several_ticks_is_dropped_until_the_audio_catches_up(engine):
    """After SIGCONT the audio thread may hand a stall's backlog over over several ticks, each
    under ``stale_after_s``. A tone said early in the stall must not fire late from the second
    tick's share; fresh audio after the catch-up is heard as usual."""

    def scenario(stalled: bool):
        path, dets, _ = make_path(engine, stale_after_s=1.5)
        path.feed(blocks(tone_clip(1.0, [], seed=2)))
        backlog = tone_clip(3.0, [0.4], seed=3)  # said early in a 3 s stall
        start = RATE
        for k, share_s in enumerate((0.25, 1.0, 1.0, 0.75)):  # handed over back to back
            n = round(share_s * RATE)
            path.feed(blocks(backlog[:n], start_frame=start), stalled=stalled and k == 0)
            backlog, start = backlog[n:], start + n
        fresh = tone_clip(3.0, [1.0], seed=4)  # then the audio comes on time, a tick per 0.25 s
        for i in range(0, len(fresh), RATE // 4):
            path.feed(blocks(fresh[i : i + RATE // 4], start_frame=start + i))
        return path, dets

    path, dets = scenario(stalled=False)  # no stall: the same audio is all heard, both tones
    assert len(dets) == 2 and path.stats.stale_drops == 0
    path, dets = scenario(stalled=True)
    assert len(dets) == 1 and dets[0].time_s > 4.0 + 1.0  # only the fresh tone
    assert path.stats.dropped_s == pytest.approx(3.0, abs=BLOCK / RATE)  # the whole backlog
    assert path.stats.audio_s == pytest.approx(1.0 + 3.0, abs=2 * BLOCK / RATE)


def test_a_step_held_up_for_longer_than_stale_after_s_fires_nothing(engine):
    """A process stopped (or starved) in the middle of the step that would fire must not fire when
    it goes on: its audio is as old as the stop is long. The model restarts on the next audio."""

    def scenario(hold_s: float):
        path, dets, _ = make_path(engine, stale_after_s=0.6)
        audio = tone_clip(4.0, [1.0], seed=1)  # the tone is detected at about 1.44 s
        path.on_step = lambda end_s, p: time.sleep(hold_s) if 1.4 <= end_s < 1.7 else None
        for i in range(0, len(audio), RATE // 4):
            path.feed(blocks(audio[i : i + RATE // 4], start_frame=i))
        return path, dets

    path, dets = scenario(0.0)
    assert len(dets) == 1 and path.stats.stale_drops == 0
    path, dets = scenario(0.7)
    assert dets == [] and path.stats.stale_drops == 1
    assert path.stats.dropped_s == pytest.approx(0.25, abs=PARAMS.output_hop_s)  # that step's audio


def test_a_detection_is_reported_before_the_outputs_act(engine):
    """The outputs can take a while (a hook is a new process); the soak caught a process stopped
    between the LED and the report, which then came 3 s after a punctual detection."""
    path, _, _ = make_path(engine)
    outputs_done_at_report = []
    path.on_detection = lambda det: outputs_done_at_report.append(path.units[0].outputs.count)
    path.feed(blocks(tone_clip(2.0, [0.5], seed=1)))
    assert outputs_done_at_report == [0] and path.units[0].outputs.count == 1


def test_a_file_never_drops_stale_audio(engine):
    path, _, _ = make_path(engine, live=False, stale_after_s=1.0)
    path.feed(blocks(tone_clip(3.0, [], seed=5)), stalled=True)
    assert path.stats.stale_drops == 0 and path.stats.audio_s == pytest.approx(3.0)


def test_a_gap_in_the_frames_starts_a_new_segment_at_the_true_stream_time(engine):
    path, dets, steps = make_path(engine)
    path.feed(blocks(tone_clip(1.0, [], seed=6)))
    n_before = len(steps)
    path.feed(blocks(tone_clip(2.0, [0.5], seed=7), start_frame=3 * RATE))  # 2 s are missing
    assert path.stats.resets == 1
    assert steps[n_before] == pytest.approx(3.0 + whole_hops_s(2.0))
    assert len(dets) == 1 and 3.5 + TONE_S - 0.05 <= dets[0].time_s <= 3.5 + TONE_S + 0.3


def test_late_blocks_of_a_closed_session_are_ignored_and_a_new_one_starts_at_its_offset(engine):
    path, dets, steps = make_path(engine, session=1, offset_s=10.0)
    path.feed(blocks(tone_clip(1.0, [0.2], seed=8), session=0))
    assert path.stats.audio_s == 0.0 and steps == [] and dets == []
    path.feed(blocks(tone_clip(1.5, [0.2], seed=9), session=1))
    assert steps[0] > 10.0 and len(dets) == 1 and 10.2 + TONE_S - 0.05 <= dets[0].time_s <= 10.2 + TONE_S + 0.3


@pytest.mark.parametrize("block", [37, 512, 7000])
def test_file_steps_are_uniform_whatever_the_block_size(engine, block):
    path, _, steps = make_path(engine, live=False)
    path.feed(blocks(tone_clip(1.3, [], seed=10), block=block))
    step = PARAMS.infer_every_s
    assert steps == pytest.approx([step, 2 * step])  # only whole steps until the end ...
    path.finish()
    assert steps[-1] == pytest.approx(whole_hops_s(1.3))  # ... then the whole hops that are left
