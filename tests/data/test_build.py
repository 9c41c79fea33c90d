"""End to end: a tiny dataset build, its contract (train.dataset), resuming, and bad input."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from device.params import AudioParams
from tests.data.conftest import tiny_config, toml_of
from tests.terminal import ctrl_c, start_job
from train import backgrounds, clipmaker, datasynth, synth
from train.dataset import build, main, open_split, source_utterances
from train.sources import KeywordTooLong, SourceError, load_index

REPO = Path(__file__).resolve().parents[2]


def test_manifest_counts_and_provenance(tiny_build):
    build_dir, cfg, manifest = tiny_build
    assert manifest["keyword"] == "computer" and manifest["seed"] == cfg["data"]["seed"]
    assert AudioParams.from_dict(manifest["audio_params"]) == AudioParams()
    assert {s: v["clips"] for s, v in manifest["splits"].items()} == {"train": 12, "val": 4, "test": 4}
    assert manifest["splits"]["train"]["shard_counts"] == [4, 4, 4]
    src = manifest["sources"]
    assert len(src["unreadable"]) == 1 and "corrupt.wav" in src["unreadable"][0]
    assert src["recordings"] == {"recordings/positive": 1, f"folder:{cfg['data']['negative_dirs'][0]}": 1}
    assert src["shared_data"]["use_shared_negatives"] is False
    assert all(src["distinct_voices"][s] > 0 for s in ("train", "val", "test"))
    assert manifest["throughput"]["clips_per_s"] > 0
    ds = build_dir / "dataset"
    assert (ds / "report.md").read_text().count("clips/s") >= 1
    assert sorted(p.suffix for p in (ds / "examples").iterdir()) == [".png", ".png", ".wav", ".wav"]
    assert not list(build_dir.rglob("*.tmp"))


def test_splits_read_back_with_labels_where_the_keywords_end(tiny_build):
    build_dir, _, _ = tiny_build
    params = AudioParams()
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        clips = open_split(build_dir / "dataset", split)
        assert len(clips) == n and clips.keyword == "computer" and clips.params == params
        for i in range(n):
            feats, labels, meta = clips.features(i), clips.labels(i), clips.meta(i)
            assert feats.dtype == np.float32 and feats.shape == (37, 96)  # 3 s = 37 frames of 80 ms
            assert labels.dtype == np.float32 and labels.shape == (37,)
            ends = [k["end_sample"] for k in meta["keywords"]]
            assert np.array_equal(labels, synth.keyword_labels(ends, 37, params).astype(np.float32))
            assert bool(labels.any()) == bool(meta["keywords"])
            spans = sorted((u["start_sample"], u["end_sample"]) for u in meta["keywords"] + meta["negatives"])
            assert all(a1 <= b0 for (_, a1), (b0, _) in zip(spans, spans[1:]))
            assert all(
                k["end_s"] * params.sample_rate
                <= 37 * params.output_hop_samples - params.label_window_frames * params.output_hop_samples + 1
                for k in meta["keywords"]
            )
    train = open_split(build_dir / "dataset", "train")
    assert sum(bool(train.meta(i)["keywords"]) for i in range(12)) >= 3  # keyword clips do exist
    assert train.summary()["distinct_voices"]["train"] > 0


def test_features_are_the_front_end_of_the_clip(tiny_build):
    """A stored clip equals the front end's embeddings of the same clip made again: deterministic
    per (seed, split, i)."""
    build_dir, cfg, _ = tiny_build
    from train import config
    from train.dataconfig import DataConfig
    from train.frontend import features

    params, dcfg = AudioParams(), config.section(cfg, "data", DataConfig)
    index = load_index(build_dir / "sources")
    bg = {s: [(cfg["data"]["background_dirs"][0] + "/fan.flac", 5.0)] for s in ("train", "val", "test")}
    srcs = datasynth.split_sources(index, build_dir, dcfg, params, bg)
    clips = open_split(build_dir / "dataset", "val")
    for i in (0, 3):
        clip = clipmaker.make_clip(srcs["val"], *datasynth.clip_rngs(dcfg, "val", i))
        assert json.loads(json.dumps(dict(clip.meta, index=i))) == clips.meta(i)
        np.testing.assert_allclose(features(clip.audio, params), clips.features(i), atol=0.02, rtol=0.01)
        assert np.max(np.abs(clip.audio)) < 1.0  # never clipped


def test_held_out_speakers_are_never_heard_in_train(tiny_build):
    build_dir, _, manifest = tiny_build
    index = load_index(build_dir / "sources")
    by_split = {s: {e["speaker"] for e in index["entries"] if e["split"] == s} for s in ("train", "val", "test")}
    shared = set(manifest["sources"]["shared_speakers"]) | {"person:user"}  # piper's one voice; user takes
    assert not (by_split["val"] & by_split["train"]) - shared
    assert not (by_split["test"] & by_split["train"]) - shared
    assert not (by_split["test"] & by_split["val"]) - shared
    kw = source_utterances(build_dir, "test", "keyword")
    assert kw and all(c.split == "test" and c.kind == "keyword" and c.path.is_file() for c in kw)
    audio, rate = sf.read(str(kw[0].path))
    assert rate == 16000 and audio.ndim == 1 and 0.2 < len(audio) / rate < 3


def test_rerun_is_up_to_date_and_rewrites_nothing(tiny_build):
    build_dir, cfg, manifest = tiny_build
    files = sorted((build_dir / "dataset").rglob("shard-*"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    t0 = time.monotonic()
    again = build("computer", build_dir, cfg)
    assert again["build_key"] == manifest["build_key"]
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert time.monotonic() - t0 < 30  # (generous: a loaded CI machine) nothing is rendered or mixed


def test_packaged_sound_joins_the_background_folders_when_installed(tiny_build, tmp_path, monkeypatch):
    """[data] packaged_backgrounds: the folder a system package installs (the newest version when
    several are installed) joins the background folders and is split by file like any other; the
    manifest and the report name its package and licence. Not installed, the build is the one
    without it (same key: nothing is mixed again)."""
    build_dir, cfg, manifest = tiny_build
    rng = np.random.default_rng(5)
    for version in ("1.14", "1.16"):
        music = tmp_path / "games" / version / "music"
        music.mkdir(parents=True)
        for i in range(3):  # Ogg Vorbis, stereo 22.05 kHz, as game soundtracks ship
            sf.write(str(music / f"track{i}.ogg"), 0.1 * rng.standard_normal((22050 * 4, 2)), 22050)
    pattern = str(tmp_path / "games" / "*" / "music")
    sound = backgrounds.PackagedSound("some-music", pattern, "GPL-2.0-or-later", "Tunes")
    monkeypatch.setattr(backgrounds, "PACKAGED_SOUNDS", (sound,))
    work = tmp_path / "build"
    shutil.copytree(build_dir / "sources", work / "sources")
    shutil.copytree(build_dir / "rooms", work / "rooms")
    on = dict(cfg, data=dict(cfg["data"], packaged_backgrounds=True, example_pngs=0))
    got = build("computer", work, on)
    folders = got["sources"]["background_folders"]
    assert [f.get("package") for f in folders] == [None, "some-music"]
    assert folders[1]["folder"] == str(tmp_path / "games" / "1.16" / "music") and folders[1]["files"] == 3
    assert {f"track{i}.ogg" for i in range(3)} <= {n for names in got["sources"]["backgrounds"].values() for n in names}
    assert got["build_key"] != manifest["build_key"]
    assert "Tunes (Debian package some-music, GPL-2.0-or-later; 3 files" in (work / "dataset" / "report.md").read_text()
    heard = [open_split(work / "dataset", s).meta(i)["background"] for s in ("train", "val", "test") for i in range(4)]
    assert any(b.startswith("file:track") for b in heard), heard

    named = dict(on, data=dict(on["data"], background_dirs=[str(tmp_path / "games" / "1.16" / "music")]))
    folders = build("computer", work, named)["sources"]["background_folders"]
    assert [(f.get("package"), f["files"]) for f in folders] == [(None, 3)]  # named and packaged: once

    gone = backgrounds.PackagedSound("gone", str(tmp_path / "no" / "*"), "-", "-")
    monkeypatch.setattr(backgrounds, "PACKAGED_SOUNDS", (gone,))
    again = build("computer", work, on)
    assert again["build_key"] == manifest["build_key"]
    assert [f.get("package") for f in again["sources"]["background_folders"]] == [None]


def test_ctrl_c_leaves_no_partial_file_and_a_rerun_resumes(tiny_build, tmp_path):
    """SIGINT to the whole process group (as a terminal's Ctrl-C) while clips are being mixed.
    (Interrupting a pool of workers: tests/data/test_workpool.py.)"""
    build_dir, cfg, _ = tiny_build
    work = tmp_path / "build"
    shutil.copytree(build_dir / "sources", work / "sources")  # same renders: comparable clips
    shutil.copytree(build_dir / "rooms", work / "rooms")
    data = dict(cfg["data"], train_clips=40, shard_clips=2, workers=1, example_pngs=0)
    (tmp_path / "c.toml").write_text(toml_of("data", data))
    cmd = [
        sys.executable,
        "-m",
        "train.dataset",
        "--keyword",
        "computer",
        "--build",
        str(work),
        "--config",
        str(tmp_path / "c.toml"),
    ]
    proc = start_job(cmd, REPO)
    deadline = time.monotonic() + 120
    while not list((work / "dataset" / "train").glob("*.meta.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.02)
    ctrl_c(proc)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out[-2000:]
    assert "run again to resume" in out
    assert not list(work.rglob("*.tmp")), "a temp file was left behind"
    done = sorted((work / "dataset" / "train").glob("*.meta.jsonl"))
    assert 0 < len(done) < 20 and not (work / "dataset" / "manifest.json").exists()
    for meta in done:  # every shard that claims completion is whole and readable
        feats = np.load(str(meta).replace(".meta.jsonl", ".features.npy"))
        assert feats.shape == (2, 37, 96) and len(meta.read_text().splitlines()) == 2

    resumed = build("computer", work, tiny_config(data))
    assert resumed["splits"]["train"]["clips"] == 40
    assert resumed["throughput"]["clips_made"] <= 40 + 8 - 2 * len(done)  # finished shards not made again
    full, fresh = open_split(build_dir / "dataset", "train"), open_split(work / "dataset", "train")
    for i in range(12):  # clip i is the same clip, whichever run made it
        assert fresh.meta(i) == full.meta(i)
        np.testing.assert_allclose(fresh.features(i), full.features(i), atol=0.02, rtol=0.01)


def test_no_keyword_source_is_one_clear_error(tmp_path):
    cfg = tiny_config(
        {
            "engines": [],
            "engine_weights": [],
            "confusable_count": 0,
            "recordings_dir": str(tmp_path / "none"),
            "workers": 1,
        }
    )
    with pytest.raises(SourceError, match="no keyword utterances for the train split"):
        build("computer", tmp_path / "b", cfg)


def test_empty_source_folder_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = tiny_config(
        {
            "positive_dirs": [str(tmp_path / "empty")],
            "confusable_count": 0,
            "workers": 1,
            "engines": [],
            "engine_weights": [],
        }
    )
    with pytest.raises(SourceError, match=f"{tmp_path / 'empty'} holds no WAV, FLAC or Ogg"):
        build("computer", tmp_path / "b", cfg)


def test_keyword_longer_than_a_clip_is_one_clear_error(tmp_path):
    take = tmp_path / "long" / "take.wav"
    take.parent.mkdir()
    t = np.arange(5 * 16000) / 16000
    sf.write(str(take), 0.3 * np.sin(2 * np.pi * 300 * t), 16000)
    cfg = tiny_config(
        {
            "positive_dirs": [str(take.parent)],
            "clip_s": 3.0,
            "confusable_count": 0,
            "workers": 1,
            "engines": [],
            "engine_weights": [],
            "speech_renders": 0,
        }
    )
    with pytest.raises(KeywordTooLong, match="take.wav is 5.0 s"):
        build("computer", tmp_path / "b", cfg)


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["--keyword", "computer", "--build", str(tmp_path / "b"), "--set", "data.clip_s=0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dataset: error:") and "clip_s" in err and "\n" not in err
