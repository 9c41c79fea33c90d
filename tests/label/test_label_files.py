"""Label files (train/label/labels.py): the format, atomic saves, and bad files kept as .bad."""

from __future__ import annotations

import json

import pytest

from tests.label.label_helpers import label_of
from train.label.labels import Label, LabelError, parse, read_label, write_label


def test_missing_label_is_unlabelled(tmp_path):
    state = read_label(tmp_path / "a.wav", 1.0)
    assert state.label.kind == "unlabeled" and state.label.keyword_spans == () and not state.exists
    assert state.problem == ""


def test_write_then_read_round_trips_and_keeps_unknown_fields(tmp_path):
    audio = tmp_path / "a.wav"
    label_of(audio).write_text(
        json.dumps({"version": 1, "kind": "unlabeled", "keyword_spans": [], "updated": "", "reviewer": "ann"})
    )
    old = read_label(audio, 2.0).label
    saved = write_label(audio, Label("keyword", ((0.25, 0.75),), extra=old.extra))
    data = json.loads(label_of(audio).read_text())
    assert data["version"] == 1 and data["kind"] == "keyword" and data["keyword_spans"] == [[0.25, 0.75]]
    assert data["reviewer"] == "ann" and data["updated"] == saved.updated != ""
    assert read_label(audio, 2.0).label == saved
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav.label.json"]  # no temp file left


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 2, "kind": "keyword", "keyword_spans": []}', "version"),
        ('{"version": 1, "kind": "maybe", "keyword_spans": []}', "kind 'maybe'"),
        ('{"version": 1, "kind": "keyword", "keyword_spans": [[0.5]]}', "not a [start_s, end_s] pair"),
        ('{"version": 1, "kind": "keyword", "keyword_spans": [[0.9, 0.2]]}', "0 <= start_s < end_s"),
        ('{"version": 1, "kind": "keyword", "keyword_spans": [[0.2, 9.0]]}', "ends after the audio"),
        ('{"version": 1, "kind": "keyword", "keyword_spans": [[0.1, 0.5], [0.4, 0.8]]}', "overlap"),
        ('{"version": 1, "kind": "false_accept", "keyword_spans": [[0.1, 0.5]]}', "cannot have keyword_spans"),
        ('{"version": 1, "kind": "keyword", "keyword_spans": [[true, 0.5]]}', "pair of numbers"),
    ],
)
def test_nonsense_is_reported_kept_as_bad_and_treated_as_unlabelled(tmp_path, text, reason):
    audio = tmp_path / "a.wav"
    label_of(audio).write_text(text)
    state = read_label(audio, 1.0)
    assert reason in state.problem and "a.wav.label.json.bad" in state.problem
    assert state.label.kind == "unlabeled" and not state.exists
    assert (tmp_path / "a.wav.label.json.bad").read_text() == text
    assert label_of(audio).read_text() == text  # not touched until the user saves
    write_label(audio, Label("negative"))
    assert (tmp_path / "a.wav.label.json.bad").read_text() == text  # survives the save


def test_a_second_different_bad_file_gets_its_own_copy(tmp_path):
    audio = tmp_path / "a.wav"
    label_of(audio).write_text("first")
    read_label(audio, 1.0)
    read_label(audio, 1.0)  # the same bad content again: no new copy
    label_of(audio).write_text("second")
    read_label(audio, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.wav.label.json",
        "a.wav.label.json.bad",
        "a.wav.label.json.bad.2",
    ]
    assert (tmp_path / "a.wav.label.json.bad.2").read_text() == "second"


def test_spans_are_rounded_to_ms_and_sorted():
    label = parse({"version": 1, "kind": "keyword", "keyword_spans": [[1.00049, 1.5], [0.1234, 0.5]]}, 2.0)
    assert label.keyword_spans == ((0.123, 0.5), (1.0, 1.5))


def test_unknown_duration_does_not_bound_spans():
    assert parse({"version": 1, "kind": "true_accept", "keyword_spans": [[5, 6]]}, None).keyword_spans == ((5.0, 6.0),)
    with pytest.raises(LabelError):
        parse({"version": 1, "kind": "true_accept", "keyword_spans": [[5, 6]]}, 1.0)
