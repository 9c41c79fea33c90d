"""Every installed TTS engine speaks: non-silent, speech-like audio of a plausible length."""

from __future__ import annotations

import numpy as np
import pytest

from device.params import AudioParams
from train import sources, tts
from train.audio_io import resample

PARAMS = AudioParams()


def _speech_checks(audio: np.ndarray, rate: int, text: str) -> None:
    job = sources.Job("keyword", "train", "x:y", "s", "x", text)
    ctx = sources.RenderContext(PARAMS, "", max_keyword_s=3.0, max_speech_s=9.0)
    audio = sources.finish(resample(audio, rate, PARAMS.sample_rate), job, ctx)  # trims, raises if silent/implausible
    seconds = len(audio) / PARAMS.sample_rate
    assert 0.25 < seconds < 2.0, f"{seconds:.2f} s for {text!r}"
    # Speech, not a tone or noise: its 10 ms energy envelope swings (syllables, stops) ...
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    assert np.percentile(energy_db, 95) - np.percentile(energy_db, 10) > 10
    # ... and most of its energy lies in the speech band
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / PARAMS.sample_rate)
    assert spectrum[(freqs > 80) & (freqs < 4000)].sum() / spectrum.sum() > 0.6


@pytest.mark.parametrize("engine", tts.ENGINES)
def test_engine_speaks_the_keyword(engine):
    mod = tts.engine_module(engine)
    reason = mod.probe()
    if reason is not None:
        pytest.skip(f"{engine} not installed here: {reason}")
    voices = mod.voices()
    assert voices and all(v.engine == engine and v.speaker for v in voices)
    rng = np.random.default_rng(0)
    picks = [voices[i] for i in rng.choice(len(voices), size=min(2, len(voices)), replace=False)]
    requests = [tts.Request(v, "computer", tuple(sorted(mod.random_settings(v, rng).items()))) for v in picks]
    for req, res in zip(requests, tts.synthesize(requests)):
        assert not isinstance(res, str), res
        _speech_checks(res.audio, res.sample_rate, req.text)


def test_a_bad_voice_is_an_error_line_not_an_exception():
    if tts.engine_module("espeak").probe() is not None:
        pytest.skip("espeak-ng not installed")
    bad = tts.Voice("espeak", "xx-nonexistent+nothing", "espeak+nothing")
    (res,) = tts.synthesize([tts.Request(bad, "computer")])
    assert isinstance(res, str) and "xx-nonexistent" in res


PROGRAM_VOICES = {
    "flite": "kal",
    "festival": "kal_diphone",
    "rhvoice": "slt",
    "pico": "en-US",
    "mbrola": "mb-us1",
}


@pytest.mark.parametrize("engine", sorted(PROGRAM_VOICES))
def test_a_missing_program_is_an_error_line_not_a_type_error(engine, monkeypatch):
    """Found by mypy: the program's path was ``str | None`` and went into the command line as is, so a
    render without the program died of a TypeError instead of giving each request its error line."""
    mod = tts.engine_module(engine)
    monkeypatch.setattr(mod.PROGRAM, "path", lambda: None)
    assert mod.probe() is not None
    voice = tts.Voice(engine, PROGRAM_VOICES[engine], "person:x")
    results = mod.synthesize([tts.Request(voice, "computer"), tts.Request(voice, "hello")])
    assert len(results) == 2 and all(isinstance(r, str) and "not installed" in r for r in results), results
    with pytest.raises(FileNotFoundError, match="not installed"):
        mod.backend()


def test_discovery_reports_what_it_skips():
    found = tts.discover(tts.ENGINES)
    assert set(found.backends) | set(found.missing) == set(tts.ENGINES)
    assert not set(found.backends) & set(found.missing)
    assert all(v.engine in found.backends for v in found.voices)


def test_speakers_that_are_one_person_share_a_speaker_name():
    from train.tts import festival, flite

    if flite.probe() or festival.probe():
        pytest.skip("flite or festival missing")
    fl = {v.name: v.speaker for v in flite.voices()}
    fe = {v.name: v.speaker for v in festival.voices()}
    assert fl["kal"] == fl["kal16"] == fe["kal_diphone"]
    assert fl["slt"] == fe["cmu_us_slt_arctic_hts"]


def test_rhvoice_speakers_are_the_flite_and_festival_people_they_were_recorded_from():
    """RHVoice's alan is the CMU ARCTIC awb recordings and its slt is flite's slt: the same person, one split."""
    from train.tts import flite, rhvoice

    if rhvoice.probe() or flite.probe():
        pytest.skip("RHVoice or flite missing")
    rh = {v.name: v.speaker for v in rhvoice.voices()}
    fl = {v.name: v.speaker for v in flite.voices()}
    assert set(rh) == {"alan", "bdl", "clb", "slt"}, "only the voices any use may be made of"
    assert rh["alan"] == fl["awb"] and rh["slt"] == fl["slt"]


def test_pico_reads_angle_brackets_as_text_not_markup():
    from train.tts import pico

    text = pico._markup('say <speed level="10">x</speed> now', {"speed_pct": 90.0, "pitch_pct": 110.0})
    assert text.count("<speed") == 1 and text.count("<pitch") == 1
    assert text.startswith('<speed level="90"><pitch level="110">') and text.endswith("</pitch></speed>")
    if pico.probe() is not None:
        pytest.skip("SVOX Pico not installed")
    voice = pico.voices()[0]
    (res,) = pico.synthesize([tts.Request(voice, "<computer>", (("pitch_pct", 100.0), ("speed_pct", 100.0)))])
    assert not isinstance(res, str), res
    _speech_checks(res.audio, res.sample_rate, "computer")


def test_mbrola_offers_the_voices_whose_database_is_installed(tmp_path, monkeypatch):
    """espeak-ng lists every MBROLA voice; only those with a database under /usr/share/mbrola can speak."""
    from train.tts import mbrola

    if mbrola.PROGRAM.probe() is not None:
        pytest.skip("the espeak-ng program is not installed")
    folder = mbrola._espeak_voices()
    if folder is None or not (folder / "mb-us1").is_file():
        pytest.skip("this espeak-ng has no MBROLA voice list")
    (tmp_path / "us2").mkdir()
    (tmp_path / "us2" / "us2").write_bytes(b"x")
    (tmp_path / "de1").mkdir()
    (tmp_path / "de1" / "de1").write_bytes(b"x")
    monkeypatch.setattr(mbrola, "DATABASES", tmp_path)
    voices = mbrola.voices()
    assert {v.name for v in voices} == {"mb-us2", "mb-de1-en"}, "English voices and accented English only"
    assert len({v.speaker for v in voices}) == 2


def test_espeak_program_fallback_speaks_the_same_voice_names():
    """The Debian program is the fallback when the espeakng-loader wheel is absent."""
    import shutil

    from train.tts import espeak

    if shutil.which("espeak-ng") is None:
        pytest.skip("the espeak-ng program is not installed")
    program = espeak._Program()
    assert "en-us" in espeak.accents(program.data_dir) and "f3" in espeak.variants(program.data_dir)
    audio = program.render("en-us+f3", "computer", {"rate_wpm": 160, "pitch": 60})
    _speech_checks(audio, program.sample_rate, "computer")


def test_seeded_piper_batches_are_reproducible():
    """piper's graph draws its own noise; a seeded batch renders the same audio every time."""
    from train.tts import piper

    if piper.probe() is not None:
        pytest.skip("piper not installed")
    voice = piper.voices()[0]
    reqs = [
        tts.Request(voice, "computer", (("length_scale", 1.0), ("noise_scale", 0.8), ("noise_w_scale", 1.0))),
        tts.Request(voice, "commuter", (("length_scale", 1.2), ("noise_scale", 0.8), ("noise_w_scale", 1.0))),
    ]
    first, second = tts.synthesize(reqs, seed=7), tts.synthesize(reqs, seed=7)
    for a, b in zip(first, second):
        assert not isinstance(a, str) and np.array_equal(a.audio, b.audio)


def test_many_voiced_engines_hold_out_speakers_of_each_family():
    from train.dataconfig import DataConfig
    from train.voicesplit import assign

    voices = (
        [tts.Voice("espeak", f"en+v{i}", f"espeak+v{i}") for i in range(30)]
        + [tts.Voice("kokoro", f"mix{i:02d}", f"kokoro+mix{i:02d}") for i in range(40)]
        + [tts.Voice("flite", "rms", "person:rms")]
    )
    split = assign(voices, DataConfig())
    for family, n in (("espeak+", 30), ("kokoro+", 40)):
        held = [s for s, where in split.items() if s.startswith(family) and where != "train"]
        want = round(0.12 * n)
        assert sorted(where for s, where in split.items() if s in held) == ["test"] * want + ["val"] * want
    assert split["person:rms"] == "val"
    assert assign(voices, DataConfig()) == split  # the same for a seed


def test_kokoro_mixes_are_fixed_and_distinct():
    from train.tts import kokoro

    if kokoro.probe() is not None:
        pytest.skip("Kokoro not installed")
    styles = kokoro._styles()
    assert len(styles) == len(kokoro.BASE_STYLES) + kokoro.MIXES
    first = {k: v.copy() for k, v in styles.items()}
    kokoro._styles.cache_clear()
    assert all(np.array_equal(first[k], v) for k, v in kokoro._styles().items())
    mixes = [styles[f"mix{k:02d}"] for k in range(kokoro.MIXES)]
    assert min(np.abs(a - b).mean() for i, a in enumerate(mixes) for b in mixes[i + 1 :]) > 1e-3
