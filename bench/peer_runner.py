"""Run another wake-word engine over a WAV and print what it found, as JSON lines.

This file runs *inside a peer's own virtual environment* (build/peers/<engine>/), so it imports
nothing from this project: only the standard library, numpy and the engine. ``bench.peers``
starts it as a subprocess and reads its output.

    python peer_runner.py porcupine --keyword computer --wav X.wav --sensitivities 0.5,0.9
        -> {"setting": 0.5, "time_s": t} per detection (t = end of the audio frame that fired)
    python peer_runner.py openwakeword --keyword alexa --wav X.wav
    python peer_runner.py pymicro --keyword alexa --wav X.wav
        -> {"frame_s": f, "start_s": s, "probs": [...]} per block of frames
    every engine, last line -> {"done": true, "audio_s": seconds processed}

The WAV must be 16-bit mono at the engine's rate (16 kHz), as the benchmark writes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave

import numpy as np

BLOCK_S = 10.0
"""Audio read from the WAV at a time (s)."""


def blocks(path: str, max_s: float | None):
    """int16 ``[n]`` blocks of the WAV (``max_s``: stop after that much audio)."""
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16-bit mono, got {w.getnchannels()} ch x {w.getsampwidth()} bytes")
        rate = w.getframerate()
        left = w.getnframes() if max_s is None else min(w.getnframes(), int(max_s * rate))
        while left > 0:
            n = min(left, int(BLOCK_S * rate))
            yield rate, np.frombuffer(w.readframes(n), np.int16)
            left -= n


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def _porcupine_step(engine):
    """``step(int16 frame) -> keyword index or -1`` for one engine. Porcupine 1.9's ``process``
    turns every frame into a Python list and then a ctypes array, which costs more CPU than the
    engine itself; its C function is called here on the numpy buffer instead, so the CPU figure
    is the engine's (the result is the same)."""
    from ctypes import POINTER, byref, c_int, c_short

    handle = getattr(engine, "_handle", None)
    func = getattr(engine, "process_func", None)
    if handle is None or func is None:  # another wrapper layout: the public, slower way
        return lambda frame: engine.process(frame.tolist())
    ok = engine.PicovoiceStatuses.SUCCESS
    result = c_int()

    def step(frame: np.ndarray) -> int:
        status = func(handle, np.ascontiguousarray(frame).ctypes.data_as(POINTER(c_short)), byref(result))
        if status != ok:
            raise RuntimeError(f"porcupine process failed: {status}")
        return result.value

    return step


def run_porcupine(args) -> float:
    import pvporcupine

    settings = [float(s) for s in args.sensitivities.split(",")]
    engines = [pvporcupine.create(keywords=[args.keyword], sensitivities=[s]) for s in settings]
    steps = [_porcupine_step(e) for e in engines]
    frame = engines[0].frame_length
    pending = np.zeros(0, np.int16)
    done = 0  # samples processed
    rate = engines[0].sample_rate
    for wav_rate, block in blocks(args.wav, args.max_audio_s):
        if wav_rate != rate:
            raise SystemExit(f"porcupine needs {rate} Hz audio, the WAV is {wav_rate} Hz")
        pending = np.concatenate([pending, block])
        n = len(pending) // frame
        for k in range(n):
            pcm = pending[k * frame : (k + 1) * frame]
            done += frame
            for s, step in zip(settings, steps):
                if step(pcm) >= 0:
                    emit({"setting": s, "time_s": done / rate})
        pending = pending[n * frame :]
    for eng in engines:
        eng.delete()
    return done / rate


def run_openwakeword(args) -> float:
    from openwakeword.model import Model

    name = args.keyword.replace(" ", "_")
    model = Model(wakeword_models=[name], inference_framework="onnx")
    key = next(iter(model.models))
    chunk = 1280  # openWakeWord's 80 ms step at 16 kHz
    pending = np.zeros(0, np.int16)
    done = 0
    for rate, block in blocks(args.wav, args.max_audio_s):
        pending = np.concatenate([pending, block])
        n = len(pending) // chunk
        probs = [float(model.predict(pending[k * chunk : (k + 1) * chunk])[key]) for k in range(n)]
        if probs:
            emit({"frame_s": chunk / rate, "start_s": done / rate, "probs": probs})
        done += n * chunk
        pending = pending[n * chunk :]
    return done / 16000


def run_pymicro(args) -> float:
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    mww = MicroWakeWord.from_builtin(Model(args.keyword.replace(" ", "_")))
    features = MicroWakeWordFeatures()
    step_s = 0.01 * mww.stride  # the model runs once per `stride` feature windows of 10 ms
    done = emitted = windows = 0
    for _rate, block in blocks(args.wav, args.max_audio_s):
        probs = []
        for feats in features.process_streaming(block.tobytes()):
            p = mww.process_streaming_prob(feats)  # its sliding-window mean; a placeholder 0.0 between runs
            windows += 1
            if windows % mww.stride == 0:
                probs.append(float(p))
        if probs:  # timed by the count of steps so far: blocks are not whole multiples of a step
            emit({"frame_s": step_s, "start_s": emitted * step_s, "probs": probs})
            emitted += len(probs)
        done += len(block)
    return done / 16000


ENGINES = {"porcupine": run_porcupine, "openwakeword": run_openwakeword, "pymicro": run_pymicro}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine", choices=sorted(ENGINES))
    ap.add_argument("--keyword", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--sensitivities", default="0.5", help="porcupine: comma-separated, one engine each")
    ap.add_argument("--max-audio-s", type=float)
    args = ap.parse_args()
    audio_s = ENGINES[args.engine](args)
    emit({"done": True, "audio_s": audio_s})
    return 0


if __name__ == "__main__":
    sys.exit(main())
