"""Model files for tests beside the tone model itself (:mod:`bench.tonemodel`): a training
checkpoint of its head, calibration streams for it, and deliberately bad model files (export and
device tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.tonemodel import TONE_S, tone_clip, train_tone_head


def write_tone_checkpoint(path: str | Path, seed: int = 0, steps: int = 120, keyword: str = "tone") -> Path:
    """A training checkpoint (docs/TEAM.md format) holding the trained tone head."""
    from train import checkpoint

    model, params, n_clips = train_tone_head(seed, steps)
    return checkpoint.save(
        path,
        {
            "keyword": keyword,
            "audio_params": params.to_dict(),
            "model_config": model.cfg.to_dict(),
            "config": {"model": model.cfg.to_dict(), "train": {"seed": seed}},
            "model": model.state_dict(),
            "optimizer": {},
            "scheduler": {},
            "step": steps,
            "epoch": 1,
            "rng": {},
            "metrics": {"val_loss": 0.1},
            "best": {"metric": "val_loss", "value": 0.1, "step": steps},
            "data_summary": {"kind": "test tone clips", "clips": n_clips, "seed": seed},
        },
    )


def write_tone_streams(
    folder: str | Path, n_positive: int = 3, n_negative: int = 3, stream_s: float = 20.0, seed: int = 0
) -> Path:
    """Calibration streams for the tone model: WAVs with ``.label.json`` sidecars (docs/TEAM.md).

    ``positive/``: a tone burst every 5 s; ``negative/``: low noise plus 3 kHz bursts (not the tone).
    """
    import json

    import soundfile as sf

    folder = Path(folder)
    sr = 16000
    for k in range(n_positive):
        starts = [float(s) for s in np.arange(1.5, stream_s - 2.0, 5.0)]
        path = folder / "positive" / f"pos{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone_clip(stream_s, starts, sr, seed=seed + k), sr)
        spans = [[s, s + TONE_S] for s in starts]
        path.with_name(path.name + ".label.json").write_text(
            json.dumps({"version": 1, "kind": "keyword", "keyword_spans": spans})
        )
    for k in range(n_negative):
        rng = np.random.default_rng(seed + 100 + k)
        clip = (rng.standard_normal(int(stream_s * sr)) * 0.02).astype(np.float32)
        t = np.arange(int(TONE_S * sr)) / sr
        for start in np.arange(1.0, stream_s - 1.0, 4.0):
            i = int(start * sr)
            clip[i : i + len(t)] += (0.3 * np.sin(2 * np.pi * 3000.0 * t) * np.hanning(len(t))).astype(np.float32)
        path = folder / "negative" / f"neg{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, clip, sr)
    return folder


def corrupt_model_copy(src: str | Path, dst: str | Path, keep_fraction: float = 0.5) -> Path:
    """``src`` cut short (a failed copy): not a loadable ONNX file."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(dst)


def model_with_props(src: str | Path, dst: str | Path, updates: dict[str, str]) -> Path:
    """``src`` with some ``metadata_props`` replaced (the graph untouched)."""
    import onnx

    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(updates)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(dst))
    return Path(dst)


def wrong_sample_rate_model(src: str | Path, dst: str | Path, sample_rate: int = 8000) -> Path:
    """``src`` whose metadata claims ``sample_rate`` although the graph was built for another."""
    import json

    import onnx

    from device import modelmeta
    from device.params import AudioParams

    props = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    params = json.loads(props[modelmeta.KEY_AUDIO_PARAMS])
    params["sample_rate"] = sample_rate  # valid on its own: only the graph disagrees
    return model_with_props(src, dst, {modelmeta.KEY_AUDIO_PARAMS: AudioParams(**params).to_json()})


def other_format_model(src: str | Path, dst: str | Path, fmt: int = 99) -> Path:
    """``src`` labelled with a model format this code does not support."""
    from device import modelmeta

    return model_with_props(src, dst, {modelmeta.KEY_FORMAT: str(fmt)})
