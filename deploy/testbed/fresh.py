"""`make fresh-systems`: the README's two commands on freshly installed machines (issue 16).

For each distro (``DISTROS="bookworm trixie noble"``: Debian 12, Debian 13, Ubuntu 24.04):

1. build or reuse the root of a fresh installation (``fresh-root.sh``: the standard system
   utilities plus sudo and git, and a user ``tester`` with passwordless sudo) and boot a copy of
   it with ``systemd-nspawn --boot`` (systemd as PID 1; the copy is thrown away afterwards);
2. as ``tester``, in a login shell: the README's quick start, step by step, each timed --
   ``sudo apt-get install git make`` (what the README says a fresh system needs first), ``git
   clone`` of the committed HEAD of this checkout, ``make train export QUICK=1`` and ``make test``
   (``make test`` exactly as written: ``QUICK`` does not change what it runs);
3. when a command stops because setup printed ``sudo apt-get install ...`` (a non-root setup
   installs nothing), run that very line (with ``-y``, the answer a user types) and the command
   again, as the README says a user does;
4. record per step: wall time, exit status, the Debian packages it installed (the root's dpkg
   database before and after) and the Python packages (the clone's ``.venv``), and for ``make
   test`` pytest's summary and skip reasons.

The container has this machine's pip configuration (``bind_files``: local wheel directories and
indexes bind-mounted read-only, constraints copied in), so pip installs what this machine's pip
would; a user's machine gets the same packages from PyPI (and torch from PyTorch's CPU index).
``../shared`` (the real recordings the README's reports use) is bound read-only beside the clone.
Nothing runs nested: inside, ``make test`` runs as a non-root user, so the root-only tiers skip.
One run at a time per machine (a lock): the containers share the host's network (port 22).

Results: ``build/fresh-systems/<distro>/`` (``result.json``, one log per step, the console) and
``build/fresh-systems/report.md`` (every distro with a result). Exit 0 when every distro passed,
1 when one failed, 2 usage. Needs root, systemd-nspawn, nsenter and mmdebstrap. Test machinery only.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.testbed.nspawn import Booted, bind_files

REPO = Path(__file__).resolve().parents[2]
ROOT_BUILDER = Path(__file__).resolve().parent / "fresh-root.sh"
DISTROS = {"bookworm": "Debian 12 (bookworm)", "trixie": "Debian 13 (trixie)", "noble": "Ubuntu 24.04 (noble)"}
USER = "tester"
HOME = f"/home/{USER}"
BUNDLE = "/srv/wakeword.bundle"
LOCK = Path("/run/lock/wakeword-fresh-systems.lock")
# The README's quick start, as a new user on a fresh machine types it: (name, directory, command).
README_STEPS = [
    ("prerequisites", HOME, "sudo apt-get install -y git make"),
    ("clone", HOME, f"git clone -q -c advice.detachedHead=false {BUNDLE} wakeword"),
    ("make train export QUICK=1", f"{HOME}/wakeword", "make train export QUICK=1"),
    ("make test", f"{HOME}/wakeword", "make test"),
]
# What scripts/setup.sh prints when a non-root run stops for missing Debian packages; the next
# line is the command that installs them.
SETUP_STOPS = "setup: the venv and its pip step need missing Debian packages"
SETUP_OPTIONAL = "setup: optional Debian packages missing"
log = logging.getLogger("fresh-systems")


@dataclass
class Step:
    name: str
    command: str
    seconds: float
    status: int
    apt: list[str] = field(default_factory=list)  # Debian packages this step installed (name=version)
    pip: list[str] = field(default_factory=list)  # Python packages this step added to the clone's .venv
    log: str = ""
    notes: list[str] = field(default_factory=list)  # setup's own lines, pytest's summary and skips


@dataclass
class Result:
    distro: str
    commit: str
    python: str = ""
    root: str = ""
    root_seconds: float = 0.0
    root_built: bool = False  # False: reused from the cache
    boot_seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    passed: bool = False
    error: str = ""
    disk: str = ""


def dpkg_installed(status_text: str) -> dict[str, str]:
    """Installed packages (name -> version) from the text of a dpkg status file."""
    out: dict[str, str] = {}
    for stanza in status_text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.M))
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            arch = fields.get("Architecture", "")
            name = fields["Package"] + (f":{arch}" if arch not in ("", "all", "amd64") else "")
            out[name] = fields.get("Version", "")
    return out


def venv_packages(site: Path) -> dict[str, str]:
    """Python distributions (normalised name -> version) installed under a site-packages dir."""
    out: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def added(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``name=version`` of what ``after`` has that ``before`` had not (or had at another version)."""
    return [f"{name}={v}" for name, v in sorted(after.items()) if before.get(name) != v]


def setup_apt_line(output: str) -> str | None:
    """The ``sudo apt-get install ...`` line a stopped non-root setup printed, or None."""
    lines = output.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith(SETUP_STOPS) and lines[i + 1].strip().startswith("sudo apt-get install "):
            return lines[i + 1].strip()
    return None


def notes_of(output: str) -> list[str]:
    """The lines of a step's output worth reading in the report: setup's own, pytest's result."""
    keep = []
    for line in output.splitlines():
        if line.startswith(("setup: ", "  sudo apt-get install ")) or re.match(r"^(SKIPPED|FAILED|ERROR) ", line):
            keep.append(line.strip())
        elif re.match(r"^=*\s*\d+ (passed|failed)", line) or re.search(r"\d+ (passed|failed).* in [\d.]+s", line):
            keep.append(line.strip("= ").strip())
    return keep


def as_user(command: str, cwd: str) -> list[str]:
    """The argv (run as root inside the container) for ``command`` in a login shell of the test
    user, in ``cwd``, with a login's environment and nothing of the host's."""
    env = [f"HOME={HOME}", f"USER={USER}", f"LOGNAME={USER}", "SHELL=/bin/bash", "LANG=C.UTF-8", "TERM=dumb"]
    env.append("PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games")
    return ["runuser", "-u", USER, "--", "env", "-i", *env, "bash", "-lc", f"cd {shlex.quote(cwd)} && {command}"]


def build_root(distro: str) -> tuple[Path, bool]:
    """The cached fresh root of ``distro``, and whether this call built it."""
    proc = subprocess.run([str(ROOT_BUILDER), distro], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"fresh-root.sh {distro} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]), "fresh-root: built in" in proc.stderr


class Run:
    """One distro: a booted copy of the fresh root and the steps run in it."""

    def __init__(self, distro: str, work: Path, bundle: Path, commit: str, shared: Path | None):
        self.distro = distro
        self.work = work
        self.bundle = bundle
        self.shared = shared
        self.result = Result(distro=distro, commit=commit)
        self.machine: Booted | None = None

    @property
    def root(self) -> Path:
        return self.work / "machine"

    def apt_now(self) -> dict[str, str]:
        return dpkg_installed((self.root / "var/lib/dpkg/status").read_text(errors="replace"))

    def pip_now(self) -> dict[str, str]:
        sites = list((self.root / HOME.lstrip("/") / "wakeword/.venv/lib").glob("python3*/site-packages"))
        return venv_packages(sites[0]) if sites else {}

    def step(self, name: str, cwd: str, command: str, timeout_s: float) -> Step:
        assert self.machine is not None
        n = len(self.result.steps) + 1
        logfile = self.work / f"{n:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.log"
        apt0, pip0 = self.apt_now(), self.pip_now()
        log.info("== %s: %s", self.distro, command)
        t0 = time.monotonic()
        with open(logfile, "wb") as out:
            out.write(f"$ {command}\n".encode())
            out.flush()
            try:
                status = subprocess.run(
                    self.machine.enter(as_user(command, cwd)),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                ).returncode
            except subprocess.TimeoutExpired:
                status = 124
                out.write(f"\nfresh-systems: stopped after {timeout_s:g} s\n".encode())
        seconds = time.monotonic() - t0
        output = logfile.read_text(errors="replace")
        step = Step(
            name=name,
            command=command,
            seconds=round(seconds, 1),
            status=status,
            apt=added(apt0, self.apt_now()),
            pip=added(pip0, self.pip_now()),
            log=logfile.name,
            notes=notes_of(output),
        )
        self.result.steps.append(step)
        log.info("   %s: exit %d, %.1f s, %d Debian and %d Python packages", name, status, seconds, len(step.apt),
                 len(step.pip))  # fmt: skip
        return step

    def readme(self, timeout_s: float) -> bool:
        """The README's steps; a command that stops on setup's ``sudo apt-get install`` line is
        followed by that line and run again. True when every command ended with status 0."""
        for name, cwd, command in README_STEPS:
            step = self.step(name, cwd, command, timeout_s)
            line = setup_apt_line((self.work / step.log).read_text(errors="replace"))
            if step.status != 0 and line is not None:
                fix = self.step("the line setup printed", cwd, line.replace(" install ", " install -y ", 1), timeout_s)
                if fix.status != 0:
                    return False
                step = self.step(f"{name} (again)", cwd, command, timeout_s)
            if step.status != 0:
                return False
        return True

    def go(self, timeout_s: float, keep: bool) -> Result:
        r = self.result
        try:
            t0 = time.monotonic()
            cached, r.root_built = build_root(self.distro)
            r.root, r.root_seconds = cached.name, round(time.monotonic() - t0, 1)
            if self.root.exists():
                shutil.rmtree(self.root)
            subprocess.run(["cp", "-a", "--reflink=auto", str(cached), str(self.root)], check=True)
            (self.root / ".complete").unlink(missing_ok=True)
            options = bind_files(self.work / "files", {})
            options.append(f"--bind-ro={self.bundle}:{BUNDLE}")
            if self.shared is not None:
                options.append(f"--bind-ro={self.shared}:{HOME}/shared")
            # This machine's DNS server: Ubuntu's systemd-resolved would have none (no DHCP here).
            options.append("--resolv-conf=replace-host")
            self.machine = Booted(
                self.root, self.work, machine=f"fresh-{self.distro}-{os.getpid()}", hostname=f"fresh-{self.distro}",
                volatile=False, options=options,
            )  # fmt: skip
            try:
                r.boot_seconds = round(self.machine.start(), 1)
                r.python = subprocess.run(
                    self.machine.enter(["python3", "--version"]), capture_output=True, text=True
                ).stdout.strip()
                r.passed = self.readme(timeout_s)
                r.disk = subprocess.run(["du", "-sh", str(self.root)], capture_output=True, text=True).stdout.split()[0]
            finally:
                self.machine.stop()
        except Exception as exc:  # the harness broke: say where, keep what there is
            log.exception("%s: %s", self.distro, exc)
            r.error = str(exc)
        finally:
            if not keep and self.root.exists():
                shutil.rmtree(self.root, ignore_errors=True)
        (self.work / "result.json").write_text(json.dumps(asdict(r), indent=1) + "\n")
        return r


def load_results(out: Path) -> list[Result]:
    results = []
    for distro in DISTROS:
        path = out / distro / "result.json"
        if path.exists():
            raw = json.loads(path.read_text())
            raw["steps"] = [Step(**s) for s in raw["steps"]]
            results.append(Result(**raw))
    return results


def report(results: Sequence[Result]) -> str:
    """The markdown report of every distro's result."""
    lines = [
        "# Fresh systems: the README's commands on freshly installed machines",
        "",
        "`make fresh-systems` (deploy/testbed/fresh.py). Each machine: a fresh root (standard system utilities,"
        " sudo, git; user `tester` with passwordless sudo) booted with systemd-nspawn; every command runs as"
        " `tester` in a login shell. pip used this machine's configuration (its local wheels and PyPI mirrors,"
        " bound read-only, besides PyPI); a user's machine gets the same packages from PyPI, and torch's CPU build"
        " from PyTorch's CPU index. Measured on docs/fresh-systems.md's terms (a shared, busy machine).",
        "",
    ]
    for r in results:
        total = sum(s.seconds for s in r.steps)
        lines += [
            f"## {DISTROS.get(r.distro, r.distro)}: {'PASS' if r.passed else 'FAIL'}",
            "",
            f"Commit {r.commit[:12]}; {r.python or 'python3 ?'}; root {r.root} ("
            + (f"built in {r.root_seconds:.0f} s" if r.root_built else "reused from the cache")
            + f"); boot {r.boot_seconds:.1f} s; the machine used {r.disk or '?'} at the end.",
            "",
        ]
        if r.error:
            lines += [f"**Harness error:** {r.error}", ""]
        lines += [
            "| step | command | wall time | exit | Debian packages | Python packages |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for s in r.steps:
            lines.append(f"| {s.name} | `{s.command}` | {s.seconds:.1f} s | {s.status} | {len(s.apt)} | {len(s.pip)} |")
        lines += [f"| total | | {total:.1f} s | | | |", ""]
        for s in r.steps:
            if not (s.apt or s.pip or s.notes):
                continue
            lines += [f"### {s.name} (`{s.log}`)", ""]
            lines += [f"    {n}" for n in s.notes]
            if s.notes:
                lines.append("")
            if s.apt:
                lines += [f"Debian packages installed ({len(s.apt)}): " + ", ".join(s.apt), ""]
            if s.pip:
                lines += [f"Python packages installed ({len(s.pip)}): " + ", ".join(s.pip), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill: the machine is still powered off
    ap = argparse.ArgumentParser(prog="fresh-systems", description=__doc__.split("\n\n")[0])
    ap.add_argument("distros", nargs="*", default=["bookworm", "trixie", "noble"], help=", ".join(DISTROS))
    ap.add_argument("--out", type=Path, default=REPO / "build" / "fresh-systems", help="report and logs (%(default)s)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per command (default 3 h)")
    ap.add_argument("--keep", action="store_true", help="keep each machine's root (else removed at the end)")
    args = ap.parse_args(argv)
    unknown = [d for d in args.distros if d not in DISTROS]
    if unknown:
        print(f"fresh-systems: unknown distro {' '.join(unknown)} (choose from {', '.join(DISTROS)})", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("fresh-systems: needs root (builds and boots containers); run it as root", file=sys.stderr)
        return 2
    for tool in ("systemd-nspawn", "nsenter", "mmdebstrap", "git"):
        if shutil.which(tool) is None:
            print(f"fresh-systems: {tool} is missing (make setup-test as root installs it)", file=sys.stderr)
            return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # One run at a time on this machine: the containers share its network, and the openssh-server
    # `make test` installs listens on port 22, so a second machine's sshd (Ubuntu: ssh.socket) could
    # not start and its apt-get install failed.
    lock = open(LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("fresh-systems: another run holds %s (its machines share this network); waiting", LOCK)
        fcntl.flock(lock, fcntl.LOCK_EX)
    # The committed HEAD of this checkout, not its working tree: what a user clones.
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    bundle = out / "wakeword.bundle"
    subprocess.run(["git", "-C", str(REPO), "bundle", "create", "-q", str(bundle), "HEAD"], check=True)
    shared = (REPO.parent / "shared").resolve()
    failed = []
    for distro in args.distros:
        work = out / distro
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        r = Run(distro, work, bundle, commit.stdout.strip(), shared if shared.is_dir() else None).go(
            args.timeout, args.keep
        )
        if not r.passed:
            failed.append(distro)
        (out / "report.md").write_text(report(load_results(out)))
    print(f"\nfresh-systems: {'FAIL ' + ' '.join(failed) if failed else 'PASS'}; report: {out / 'report.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
