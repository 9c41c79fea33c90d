"""The soak bench's real parts around the daemon: a paced live microphone, a small disk for
``[save]``, a systemd notify socket, and the daemon's own ``/proc`` figures.

**The microphone** (:class:`PulseMic`). The ALSA ``file`` plugin over a ``null`` slave (what the
device tests use) is not paced -- audio arrives about 2400x faster than real time -- and this
machine has no sound modules (no snd-aloop; ../shared/notes/pi-testing.md). A private
PulseAudio server with a *null sink* is paced by the kernel's clock instead: the bench plays the
soak WAV into the sink in real time (``pacat``) and the daemon captures the sink's monitor
through ALSA's ``pulse`` plugin (libasound2-plugins), an ordinary ALSA PCM named in an asoundrc,
opened by PyAudio like any microphone. Killing the server is a device that vanishes (the open
stream errors out, the PCM is no longer listed); starting it again is the device coming back.
Stopping it (SIGSTOP) is a wedged device: it neither delivers nor fails (it is then killed and
started afresh: a server thawed after a freeze serves new streams ~2 s late, a flaw of the rig).
The server's socket and the asoundrc live in a short private folder under /tmp (unix socket
paths are limited to 108 bytes; ALSA config strings must not need quoting).

**The disk** (:class:`SaveDisk`): as root, a tmpfs of a few MiB mounted over the save folder,
so the full-disk fault fills a real filesystem (``ENOSPC``) without touching the machine's
disks; without root, a plain folder and the full-disk fault is skipped (the report says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SINK = "soak"
PCM = "soakmic"
PIPE_BYTES = 4096
"""The pipe to the player: 128 ms of 16 kHz 16-bit audio at most between the bench and the sound server."""


class RigError(RuntimeError):
    """A part of the rig could not be set up (one line)."""


def _which(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RigError(f"{name} is not installed (apt-get install {package}; `make setup-test` installs it)")
    return path


class PulseMic:
    """A paced ALSA capture device: a private PulseAudio null sink, played into by ``pacat``."""

    def __init__(self, log_path: Path, rate_hz: int = 16000):
        self.rate_hz = rate_hz
        self.log_path = log_path
        self.pulseaudio = _which("pulseaudio", "pulseaudio")
        self.pacat = _which("pacat", "pulseaudio-utils")
        if not any(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_pulse.so")):
            raise RigError("ALSA's pulse plugin is not installed (apt-get install libasound2-plugins)")
        self.dir = Path(tempfile.mkdtemp(prefix="wakeword-soak-"))
        self.socket = self.dir / "native"
        (self.dir / "client.conf").write_text("autospawn = no\n")
        (self.dir / "asound.conf").write_text(
            f'pcm.{PCM} {{\n  type pulse\n  server "unix:{self.socket}"\n  device "{SINK}.monitor"\n}}\n'
        )
        self._server: subprocess.Popen | None = None
        self._player: subprocess.Popen | None = None
        self._frozen = False
        self.overflowed_bytes = 0
        """Audio the player could not take in time (dropped so that the rest stays on schedule)."""
        self.drops: list[tuple[float, float]] = []
        """``(monotonic time, seconds of audio)`` of each such drop: the report sets the keywords they
        touch apart, like those of an injected outage."""
        self._lock = threading.Lock()

    def env(self) -> dict[str, str]:
        """What a client (the daemon, pacat) needs to find this device and only this server."""
        return {
            "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{self.dir / 'asound.conf'}",
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.dir / "client.conf"),
            "PULSE_RUNTIME_PATH": str(self.dir / "run"),
            "PULSE_STATE_PATH": str(self.dir / "state"),
        }

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server and the player; returns once the sink takes audio."""
        env = dict(os.environ, **self.env(), HOME=str(self.dir))
        with open(self.log_path, "ab") as out:
            self._server = subprocess.Popen(
                [
                    self.pulseaudio,
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--use-pid-file=no",
                    "--realtime=no",
                    "--high-priority=no",
                    "--disable-shm=yes",
                    f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
                    f"--load=module-null-sink sink_name={SINK} rate={self.rate_hz} channels=1 format=s16le",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        _unnice(self._server.pid)
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self._server.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RigError(f"pulseaudio did not start (see {self.log_path})")
            time.sleep(0.05)
        with self._lock:
            self._frozen = False
            if self._player is None:  # (the feeder may have started one already)
                self._player = self._start_player()

    def _start_player(self) -> subprocess.Popen:
        env = dict(os.environ, **self.env(), HOME=str(self.dir))
        player = subprocess.Popen(
            [
                self.pacat,
                "--playback",
                "--raw",
                f"--device={SINK}",
                f"--rate={self.rate_hz}",
                "--channels=1",
                "--format=s16le",
                "--latency-msec=40",
                "--client-name=soak-player",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        _unnice(player.pid)
        # A small pipe written without blocking: when the player falls behind, the audio that does
        # not fit is dropped, and what follows is still heard on time. (A full 64 KiB pipe held the
        # audio up to 2 s behind its schedule for the rest of the run.)
        assert player.stdin is not None  # started with stdin=PIPE
        fd = player.stdin.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(fd, False)
        return player

    def play(self, pcm: bytes) -> bool:
        """Hand int16 mono audio to the sink; False while the device is gone or frozen (the audio is lost)."""
        with self._lock:
            if self._frozen or not self.up:
                return False
            if self._player is None or self._player.poll() is not None:
                self._player = self._start_player()  # the player gave up (e.g. after a freeze): a new one
            player = self._player
        stdin = player.stdin
        assert stdin is not None  # started with stdin=PIPE
        try:
            sent = os.write(stdin.fileno(), pcm)
        except BlockingIOError:
            sent = 0
        except (OSError, ValueError):
            return False
        if sent < len(pcm):
            self.overflowed_bytes += len(pcm) - sent
            self.drops.append((time.monotonic(), (len(pcm) - sent) / 2 / self.rate_hz))
        return True

    def freeze(self) -> None:
        """Wedge the device: the server stops (SIGSTOP) without going away."""
        with self._lock:
            self._frozen = True
            server = self._live_server()
            if server is not None:
                os.kill(server.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """Yank the device: the server is killed outright (SIGKILL), as when a USB mic is pulled."""
        with self._lock:
            player, self._player = self._player, None
            server, self._server = self._server, None
            self._frozen = False
        if server is not None and server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGCONT)  # a frozen server dies of SIGKILL all the same; be tidy
        for proc in (server, player):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in (player, server):
            if proc is not None:
                with contextlib.suppress(OSError, ValueError):
                    if proc.stdin:
                        proc.stdin.close()
                proc.wait()
        self.socket.unlink(missing_ok=True)

    def _live_server(self) -> subprocess.Popen | None:
        """The server process while it runs, else None."""
        server = self._server
        return server if server is not None and server.poll() is None else None

    @property
    def up(self) -> bool:
        return self._live_server() is not None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Feeder(threading.Thread):
    """Plays a 16-bit mono WAV into the microphone at 1x, by the monotonic clock: sample ``p`` is
    handed over at ``t0 + p / rate`` (and heard ~40 ms later). While the device is gone its audio
    is skipped, as a room goes on talking to an unplugged microphone."""

    def __init__(self, wav: Path, mic: PulseMic, chunk_s: float = 0.02):
        super().__init__(name="soak-feeder", daemon=True)
        import wave

        self._wav = wave.open(str(wav), "rb")
        if self._wav.getnchannels() != 1 or self._wav.getsampwidth() != 2:
            raise RigError(f"{wav}: the soak audio must be 16-bit mono")
        self.rate_hz = self._wav.getframerate()
        self.total_frames = self._wav.getnframes()
        self.mic = mic
        self.chunk = max(1, round(chunk_s * self.rate_hz))
        self.t0: float | None = None
        self.frames_played = 0
        self.frames_lost = 0
        self.done = threading.Event()
        self._stop = threading.Event()

    def start_at(self, t0: float) -> None:
        self.t0 = t0
        self.start()

    def run(self) -> None:
        t0 = self.t0
        assert t0 is not None, "start the feeder with start_at()"
        pos = 0
        try:
            while pos < self.total_frames and not self._stop.is_set():
                due = t0 + pos / self.rate_hz
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                # everything that is due by now (catches up after the bench itself was descheduled)
                upto = min(self.total_frames, max(pos + self.chunk, int((time.monotonic() - t0) * self.rate_hz)))
                data = self._wav.readframes(upto - pos)
                if self.mic.play(data):
                    self.frames_played += upto - pos
                else:
                    self.frames_lost += upto - pos
                pos = upto
        finally:
            self._wav.close()
            self.done.set()

    def stop(self) -> None:
        self._stop.set()


def _unnice(pid: int) -> None:
    """The sound server and the player at nice 0 when allowed (root). They use next to no CPU, and
    starved of it the player runs dry: every underrun shifts the audio after it behind its schedule
    (seen on a loaded machine: seconds, growing). Not allowed: they stay as nice as the bench, and
    the daemon's own-clock lateness (bench.soakreport) still tells the two apart."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 0)
    except OSError:
        pass


class SaveDisk:
    """The ``[save]`` folder: a ``size_mib`` tmpfs when root (so it can be filled), else a folder."""

    def __init__(self, folder: Path, size_mib: float):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mounted = False
        self.why_not = ""
        if os.geteuid() != 0:
            self.why_not = "not root: no tmpfs to fill"
            return
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={int(size_mib * 1024)}k,mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            self.why_not = f"mount failed: {(r.stderr or r.stdout).strip()[:120]}"
            return
        self.mounted = True
        self._filler = folder / ".soak-filler"

    @property
    def can_fill(self) -> bool:
        return self.mounted

    def fill(self) -> int:
        """Fill the filesystem to the last byte (ENOSPC) -> bytes written."""
        written = 0
        block = b"\0" * 65536
        with open(self._filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        written += f.write(block[:size])
                except OSError:
                    continue
        return written

    def free(self) -> None:
        if self.mounted:
            self._filler.unlink(missing_ok=True)

    def close(self, keep_to: Path | None = None) -> None:
        """Unmount (copying what was saved to ``keep_to`` first)."""
        if not self.mounted:
            return
        self.free()
        if keep_to is not None:
            shutil.copytree(self.folder, keep_to, dirs_exist_ok=True)
        r = subprocess.run(["umount", str(self.folder)], capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)
        self.mounted = False


@dataclass
class NotifyLog:
    """Everything the daemon sent to its ``NOTIFY_SOCKET``: ``(monotonic_s, message)``."""

    messages: list[tuple[float, str]] = field(default_factory=list)

    def times(self, message: str) -> list[float]:
        return [t for t, m in self.messages if m == message]

    def statuses(self) -> list[tuple[float, str]]:
        return [(t, m[len("STATUS=") :]) for t, m in self.messages if m.startswith("STATUS=")]


class NotifySocket:
    """A real unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path):
        self.path = path
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.log = NotifyLog()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").splitlines():
                self.log.messages.append((now, line))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        self.path.unlink(missing_ok=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_mem_kib(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, RssAnon)`` of ``pid`` in KiB, or None when it is gone. RssAnon is the process's own
    heap and stacks: what a leak grows. VmRSS adds the pages of mapped files (onnxruntime's and
    numpy's libraries), which the kernel drops and reads back as the machine's memory comes and goes."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])
    except (OSError, ValueError, IndexError, KeyError):
        return None


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (``/proc/<pid>/stat``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def processes_in_group(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (a hook's leftovers)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)
