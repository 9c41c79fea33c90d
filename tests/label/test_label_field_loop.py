"""The field loop's contract (docs/TEAM.md, "Folder conventions"): what `wakeword record` saves and
what the labelling page writes is what the dataset builder (train/sources.py) takes in."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np

from device.clipsaver import ClipSaver, SaveConfig
from device.decision import Detection
from device.params import AudioParams
from device.takes import Session, SessionConfig
from tests.label.label_helpers import RATE, http, serving, tone_word
from train.dataconfig import DataConfig
from train.sources import plan_recordings


class Blocks:
    def __init__(self, audio):
        self.audio, self.pos = audio, 0

    def read(self):
        if self.pos >= len(self.audio):
            return None
        block, self.pos = self.audio[self.pos : self.pos + 700], self.pos + 700
        return block

    def flush(self):
        pass

    def describe(self):
        return {"name": "test"}


class Yes:
    def prompt(self, *a):
        return True

    def level(self, *a):
        pass

    def review(self, take):
        return "keep" if take.usable else "redo"

    def message(self, text):
        pass

    def kept(self, path):
        pass


def test_recorded_and_labelled_audio_reaches_the_dataset_plan(tmp_path):
    root = tmp_path / "recordings"
    words = np.concatenate(
        [
            tone_word(2.3, 1.8, 0.4, seed=1)[:, 0],
            tone_word(2.3, 1.5, 0.5, seed=2)[:, 0],
            tone_word(3.0, 1.5, 0.3, seed=3)[:, 0],
        ]
    )
    kept = Session(
        Blocks(words), Yes(), SessionConfig(keyword="computer", takes=2), root / "computer", flush_between_takes=False
    ).run()
    assert kept == 2
    Session(
        Blocks(tone_word(4.0, 1.8, 0.6, seed=4)[:, 0]),
        Yes(),
        SessionConfig(keyword="computer", kind="negative", takes=1),
        root / "computer",
        flush_between_takes=False,
    ).run()
    Session(  # a take kept out of training, for `make export` to check the model's heads on
        Blocks(tone_word(2.3, 1.8, 0.4, seed=6)[:, 0]),
        Yes(),
        SessionConfig(keyword="computer", kind="check", takes=1),
        root / "computer",
        flush_between_takes=False,
    ).run()
    # Two detections saved by the daemon's own saver, as `make collect` brings them home.
    saver = ClipSaver(
        SaveConfig(enabled=True, dir=str(root / "computer" / "field" / "pi"), pre_roll_s=2.0, post_roll_s=1.0),
        RATE,
        "computer",
    )
    stream = tone_word(20.0, 3.0, 0.5, seed=5)[:, 0]
    step = RATE // 2  # the daemon feeds 0.5 s steps
    for i in range(0, len(stream), step):
        if i / RATE in (3.5, 12.0):
            saver.detected(Detection(time_s=i / RATE + 0.1, score=0.9))
        saver.feed(stream[i : i + step], i / RATE)  # faster than real time: names must still differ
    field = sorted((root / "computer" / "field" / "pi").glob("*.wav"))
    assert len(field) == 2

    with serving(root / "computer") as url:

        def put(path, body):
            rel = quote(path.relative_to(root / "computer").as_posix())
            status, answer, _ = http("PUT", f"{url}/api/label?path={rel}", body)
            assert status == 200, answer

        put(field[0], {"kind": "true_accept", "keyword_spans": [[1.4, 1.9]]})
        put(field[1], {"kind": "false_accept", "keyword_spans": []})

    plan = plan_recordings(DataConfig(recordings_dir=str(root)), "computer", AudioParams())
    assert plan.unreadable == []
    assert plan.origins == {
        "recordings/positive": 2,
        "recordings/negative": 1,
        "recordings/field:true_accept": 1,
        "recordings/field:false_accept": 1,
    }
    by_origin = {j.origin: j for j in plan.jobs}
    assert by_origin[str(field[0])].kind == "keyword" and by_origin[str(field[0])].span_s == (1.4, 1.9)
    assert by_origin[str(field[1])].kind == "confusable"
    # the check take never trains (not in the plan above); the export's head choice reads it
    from export import headchoice
    from export.config import ExportConfig

    takes = headchoice.keyword_takes(
        ExportConfig(), {"data": {"recordings_dir": str(root)}}, "computer", tmp_path / "build", AudioParams()
    )
    assert str(root / "computer" / "check") in takes.origins and len(takes.clips) >= 1


def test_a_label_edited_into_nonsense_is_ignored_by_the_builder(tmp_path, caplog):
    kw = tmp_path / "recordings" / "computer"
    (kw / "positive").mkdir(parents=True)
    (kw / "field" / "pi").mkdir(parents=True)
    take = kw / "positive" / "take.wav"
    field = kw / "field" / "pi" / "clip.wav"
    for path in (take, field):
        from device.wavio import write_wav

        write_wav(path, tone_word(2.0, 0.5, 0.5, seed=7)[:, 0], RATE)
    # half-valid nonsense: a usable-looking span, but a kind that does not exist
    (kw / "positive" / "take.wav.label.json").write_text(
        '{"version": 1, "kind": "maybe", "keyword_spans": [[0.1, 0.2]]}'
    )
    (kw / "field" / "pi" / "clip.wav.label.json").write_text('{"kind": "true_accept", "keyword_spans": "soon"')

    plan = plan_recordings(DataConfig(recordings_dir=str(tmp_path / "recordings")), "computer", AudioParams())
    jobs = {j.origin: j for j in plan.jobs}
    assert jobs[str(take)].kind == "keyword" and jobs[str(take)].span_s is None  # a take, unlabelled
    assert str(field) not in jobs  # an unreviewed field clip is neither positive nor negative
    assert "take.wav.label.json" in caplog.text and "clip.wav.label.json" in caplog.text


def test_a_label_that_links_out_of_the_folder_is_never_read_by_the_builder(tmp_path, caplog):
    from device.wavio import write_wav

    kw = tmp_path / "recordings" / "computer" / "positive"
    kw.mkdir(parents=True)
    take = kw / "take.wav"
    write_wav(take, tone_word(2.0, 0.5, 0.5, seed=7)[:, 0], RATE)
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"version": 1, "kind": "negative", "keyword_spans": []}')
    (kw / "take.wav.label.json").symlink_to(outside)

    plan = plan_recordings(DataConfig(recordings_dir=str(tmp_path / "recordings")), "computer", AudioParams())
    jobs = {j.origin: j for j in plan.jobs}
    assert jobs[str(take)].kind == "keyword"  # what the link names did not relabel the take
    assert "symbolic link" in caplog.text


def test_room_snippets_reach_the_plan_as_negatives_unless_a_reviewer_heard_the_keyword(tmp_path):
    from device.clipsaver import SnippetConfig, SnippetKeeper

    root = tmp_path / "recordings"
    folder = root / "computer" / "snippets" / "pi"
    keeper = SnippetKeeper(
        SnippetConfig(enabled=True, dir=str(folder), per_hour=720.0, length_s=1.0, guard_s=1.0),
        RATE,
        "computer",
        lag_s=0.5,
        seed=7,
    )
    stream = tone_word(120.0, 3.0, 0.5, seed=6)[:, 0]
    for i in range(0, len(stream), RATE // 2):
        keeper.feed(stream[i : i + RATE // 2], i / RATE)
    snippets = sorted(folder.glob("*_snippet.wav"))
    assert len(snippets) >= 5
    with serving(root / "computer") as url:
        rel = quote(snippets[0].relative_to(root / "computer").as_posix())
        status, answer, _ = http(
            "PUT", f"{url}/api/label?path={rel}", {"kind": "keyword", "keyword_spans": [[0.2, 0.7]]}
        )
        assert status == 200, answer
    plan = plan_recordings(DataConfig(recordings_dir=str(root)), "computer", AudioParams())
    assert plan.origins == {"recordings/snippets": len(snippets) - 1, "recordings/snippets:keyword": 1}
    by_path = {j.origin: j for j in plan.jobs}
    assert by_path[str(snippets[0])].kind == "keyword" and by_path[str(snippets[0])].span_s == (0.2, 0.7)
    assert all(by_path[str(p)].kind == "confusable" for p in snippets[1:])
