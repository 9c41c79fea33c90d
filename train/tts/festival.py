"""festival (Debian ``festival`` + ``festvox-*`` voices), with varied duration.

Starting festival costs ~0.3 s, so a batch of requests runs as one Scheme script in one
``festival -b`` process, each utterance saved to its own WAV.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from train.tts import Rendered, Request, Voice, program

ENGINE = "festival"
LICENSE = (
    "festival voices kal/kd (diphones) and cmu_us_slt_arctic_hts: free for any use "
    "(Festival/EST and BSD-style licences)"
)
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
VOICE_ROOTS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))
# Festival voices recorded by the same person as a flite voice (same speaker, same split).
SPEAKERS = {
    "kal_diphone": "kal",
    "cmu_us_slt_arctic_hts": "slt",
    "ked_diphone": "ked",
    "cmu_us_awb_cg": "awb",
    "cmu_us_rms_cg": "rms",
    "cmu_us_slt_cg": "slt",
}
PROGRAM = program.Program("festival", "Debian packages festival festvox-*")
"""The program this engine runs (tests replace its ``path`` to play a machine without it)."""


def probe() -> str | None:
    return PROGRAM.probe()


def backend() -> str:
    exe = PROGRAM.exe()
    version = PROGRAM.version(r"System:\s*([\d.]+)")
    return f"festival {version or '?'} ({exe})"


def voices() -> list[Voice]:
    names = sorted(
        {
            p.name
            for root in VOICE_ROOTS
            if root.is_dir()
            for lang in root.iterdir()
            if lang.is_dir()
            for p in lang.iterdir()
            if p.is_dir()
        }
    )
    # Shared speaker names so festival's kal/slt share a split with flite's.
    return [Voice(ENGINE, n, f"person:{SPEAKERS.get(n, n)}") for n in names]


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Duration stretch 0.8-1.35 (>1 is slower)."""
    return {"duration_stretch": round(float(rng.uniform(0.8, 1.35)), 3)}


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        lines = []
        for i, req in enumerate(requests):
            if not re.fullmatch(r"[A-Za-z0-9_]+", req.voice.name):
                raise ValueError(f"bad festival voice name {req.voice.name!r}")
            stretch = dict(req.settings).get("duration_stretch", 1.0)
            lines.append(
                f"(voice_{req.voice.name})"
                f"(Parameter.set 'Duration_Stretch {float(stretch)})"
                f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(req.text)}))"
                f" {_scheme_string(str(Path(tmp) / f'{i}.wav'))} 'riff)"
            )
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        try:
            proc = subprocess.run(
                [PROGRAM.exe(), "-b", str(script)], capture_output=True, text=True, timeout=60 + 10 * len(requests)
            )
            err = proc.stderr.strip()[:200]
        except (OSError, subprocess.SubprocessError) as exc:
            err = str(exc)
        out: list[Rendered | str] = []
        for i, req in enumerate(requests):
            wav = Path(tmp) / f"{i}.wav"
            try:
                audio, rate = sf.read(str(wav), dtype="float32")
                out.append(Rendered(audio, rate))
            except (sf.LibsndfileError, RuntimeError, OSError):
                out.append(f"{req.voice.id}: festival wrote no audio ({err or 'no message'})")
    return out
