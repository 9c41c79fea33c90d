"""What the engines that run a Debian program (``flite``, ``festival``, ``rhvoice``, ``pico``,
``mbrola``) share: finding the program, the line ``probe()`` gives when it is missing, its version for
``backend()``, and one run per render for the programs that write a WAV (:func:`render_each`)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf

from train.tts import Rendered, Request


@functools.cache
def which(name: str) -> str | None:
    """The path of program ``name``, looked up once per process; None when it is not installed."""
    return shutil.which(name)


class Program:
    """The program ``name`` an engine runs, from the Debian ``packages`` named when it is missing."""

    def __init__(self, name: str, packages: str):
        self.name = name
        self.missing = f"the {name} program is not installed ({packages})"
        """What :meth:`probe` says when the program is missing (one line)."""

    def path(self) -> str | None:
        """The program's path (None: not installed); tests replace it to play a machine without it."""
        return which(self.name)

    def probe(self) -> str | None:
        """None when the program is there, else :attr:`missing` (the engine's ``probe()``)."""
        return None if self.path() else self.missing

    def exe(self) -> str:
        """The program's path; FileNotFoundError(:attr:`missing`) when it is missing (the engine is
        used after its probe, so this only happens when the program went away in between)."""
        exe = self.path()
        if exe is None:
            raise FileNotFoundError(self.missing)
        return exe

    def version(self, pattern: str) -> str | None:
        """The first group of ``pattern`` in what ``<program> --version`` prints; None when it is not there."""
        out = subprocess.run([self.exe(), "--version"], capture_output=True, text=True).stdout
        match = re.search(pattern, out)
        return match.group(1) if match else None


def render_each(
    prog: Program, requests: Sequence[Request], command: Callable[[Request, Path], tuple[list[str], str | None]]
) -> list[Rendered | str]:
    """Each request rendered by one run of ``prog`` that writes a WAV: ``command(request, wav)`` gives
    the arguments after the program's path and the text for its stdin (None: none). Per request the
    audio, or a one-line error naming the voice (a render that fails never stops the others)."""
    out: list[Rendered | str] = []
    with tempfile.TemporaryDirectory(prefix=f"{prog.name}-") as tmp:
        wav = Path(tmp) / "out.wav"
        for req in requests:
            wav.unlink(missing_ok=True)
            try:
                args, stdin = command(req, wav)
                proc = subprocess.run([prog.exe(), *args], input=stdin, capture_output=True, text=True, timeout=60)
                if proc.returncode != 0 or not wav.exists():
                    raise ValueError(proc.stderr.strip()[:200] or f"exit status {proc.returncode}")
                audio, rate = sf.read(str(wav), dtype="float32")
                if audio.ndim > 1:
                    audio = audio.mean(axis=1)
                out.append(Rendered(audio, rate))
            except (ValueError, OSError, subprocess.SubprocessError, sf.LibsndfileError) as exc:
                out.append(f"{req.voice.id}: {exc}")
    return out
