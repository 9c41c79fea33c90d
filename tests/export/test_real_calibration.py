"""Real negative audio for calibration: which files, which speakers, and when it sets the threshold."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from device.params import AudioParams
from export.calib_streams import CalibrationDataError
from export.config import ExportConfig
from export.heldout import REAL_GROUPS
from export.pipeline import BUNDLED_SPEECH, bundled_speech, calibration_basis, real_negatives
from train import realdata
from train.audio_io import read_audio
from train.dataconfig import DataConfig
from train.metrics import ScoredStream
from train.voicesplit import stable_split


def _wavs(folder, n: int, seconds: float = 0.2) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(str(folder / f"{i:03d}.wav"), np.zeros(int(16000 * seconds), np.float32), 16000)
    return sorted(folder.glob("*.wav"))


def test_held_out_speech_dir_files_and_every_real_negative_dir_file(tmp_path):
    speech = _wavs(tmp_path / "podcasts", 60)
    mine = _wavs(tmp_path / "kitchen", 3)
    room = _wavs(tmp_path / "room-noise", 2)
    cfg = {"data": {"speech_dirs": [str(tmp_path / "podcasts")], "background_dirs": [str(tmp_path / "room-noise")]}}
    real = real_negatives(
        ExportConfig(real_negative_dirs=(str(tmp_path / "kitchen"),), bundled_speech=False),
        cfg,
        "computer",
        tmp_path / "build",
    )
    dc = DataConfig(speech_dirs=(str(tmp_path / "podcasts"),))
    held_out = [p for p in speech if stable_split(str(p.resolve()), dc.seed, dc.recording_val_fraction) == "val"]
    trained = [p for p in speech if stable_split(str(p.resolve()), dc.seed, dc.recording_val_fraction) == "train"]
    assert held_out and trained  # 60 files split both ways
    assert set(real.files) == set(mine) | set(held_out) and not set(real.files) & set(trained)
    assert real.folders[0] == str(tmp_path / "kitchen") and "held-out" in real.folders[1]
    assert real.describe()["files"] == len(mine) + len(held_out) and list(real.noise_files) == room


def test_no_real_audio_is_none_and_an_empty_folder_is_one_clear_error(tmp_path):
    assert real_negatives(ExportConfig(bundled_speech=False), {}, "computer", tmp_path) is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationDataError, match="holds no WAV, FLAC or Ogg"):
        real_negatives(ExportConfig(real_negative_dirs=(str(tmp_path / "empty"),)), {}, "computer", tmp_path)


def test_shared_calibration_speakers_never_trained_and_bench_leaves_them_out(tmp_path, monkeypatch):
    from bench.pipeline import heard_speakers

    rows = ["path,label,source,license,speaker"]
    for i in range(40):
        _wavs(tmp_path / "shared" / "negatives" / f"s{i}", 1)
        rows.append(f"negatives/s{i}/000.wav,negative_speech,x,CC,s{i}")
    _wavs(tmp_path / "shared" / "noise", 1)
    rows.append("noise/000.wav,noise,x,CC,none")
    (tmp_path / "shared" / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path / "shared"))
    trained = [f"s{i}" for i in range(40) if realdata.speaker_trains(f"s{i}", 0.7)]
    clips, speakers = realdata.calibration_negatives(0.5, "computer", trained)
    expected = {f"s{i}" for i in range(40) if realdata.speaker_position(f"s{i}") >= 0.5} - set(trained)
    assert set(speakers) == expected and expected and not set(speakers) & set(trained)
    assert {c.speaker for c in clips} == expected

    real = real_negatives(
        ExportConfig(shared_calibration_share=0.5, bundled_speech=False), {}, "computer", tmp_path / "build"
    )
    assert set(real.shared_speakers) == {f"s{i}" for i in range(40) if realdata.speaker_position(f"s{i}") >= 0.5}
    assert [p.name for p in real.noise_files] == ["000.wav"]  # the shared noise, for the noisy copy

    class Meta:
        calibration = {"real_negatives": real.describe()}
        training: dict = {}

    assert set(heard_speakers(tmp_path / "build", Meta)) == set(real.shared_speakers)


def test_the_bundled_speech_is_real_held_out_audio_that_bench_leaves_out(tmp_path):
    """What every export calibrates on by default: speechocean762's calibration-half speakers,
    readable, never a file that says the keyword, and named so that `make bench` leaves them out."""
    files, speakers = bundled_speech("computer")
    assert len(files) >= 1300 and len(speakers) == 66
    assert all(realdata.speaker_position(s) >= 0.5 and s.startswith("speechocean762-SPEAKER") for s in speakers)
    everything, _ = bundled_speech("zebra crossing")
    said = [p for p in everything if p not in files]  # the one sentence that says "computer"
    assert [p.relative_to(BUNDLED_SPEECH).as_posix() for p in said] == ["speechocean762/SPEAKER0157/001570212.ogg"]
    audio = read_audio(files[0], AudioParams())
    assert audio.dtype == np.float32 and 1.0 < len(audio) / 16000 < 20 and np.abs(audio).max() > 0.01

    real = real_negatives(ExportConfig(), {}, "computer", tmp_path / "build")
    assert set(real.files) == set(files) and set(real.shared_speakers) == set(speakers)
    assert "speechocean762" in real.folders[-1] and not real.noise_files

    class Meta:
        calibration = {"real_negatives": real.describe()}
        training: dict = {}

    from bench.pipeline import heard_speakers

    assert set(heard_speakers(tmp_path / "build", Meta)) == set(speakers)
    trained_one = bundled_speech("computer", trained=[speakers[0]])
    assert speakers[0] not in trained_one[1] and len(trained_one[0]) < len(files)


def _streams(hours: float) -> list[ScoredStream]:
    return [ScoredStream(np.zeros(int(hours * 3600 / 0.08), np.float32), 0.08, [], "s")]


def test_real_groups_pool_with_the_synthetic_ones_or_stand_alone_with_enough_hours(caplog):
    synthetic = {"speech": _streams(4.0), "noise": _streams(1.0)}
    enough = {**synthetic, REAL_GROUPS[0]: _streams(0.6), REAL_GROUPS[1]: _streams(0.6)}
    assert calibration_basis(synthetic, ExportConfig()) == ()
    assert calibration_basis(enough, ExportConfig()) == ()  # pooled: every group together (the default)
    alone = ExportConfig(real_basis="real", real_min_hours=1.0)
    assert calibration_basis(enough, alone) == REAL_GROUPS
    few = {**synthetic, REAL_GROUPS[0]: _streams(0.3), REAL_GROUPS[1]: _streams(0.3)}
    with caplog.at_level(logging.WARNING):
        assert calibration_basis(few, alone) == ()
    assert "real_min_hours" in caplog.text


def test_bad_real_calibration_settings_are_refused():
    for bad in (
        {"shared_calibration_share": 1.5},
        {"shared_calibration_share": float("nan")},
        {"real_basis": "both"},
        {"real_min_hours": float("inf")},
        {"real_min_hours": -1.0},
    ):
        with pytest.raises(ValueError):
            ExportConfig(**bad)
    from train.config import ConfigError, section

    def export(values):
        return section({"export": values}, "export", ExportConfig)

    assert export({"real_negative_dirs": "a, b"}).real_negative_dirs == ("a", "b")  # a `--set` string
    assert export({"extra_targets_fa_per_hour": 0.2}).extra_targets_fa_per_hour == (0.2,)
    with pytest.raises(ConfigError, match="extra_targets_fa_per_hour must be a finite number"):
        export({"extra_targets_fa_per_hour": [0.2, float("nan")]})
