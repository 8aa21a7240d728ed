"""The ceremony rehearsal's driver: plays the steps of `coldsign.cli.rehearsal_steps` as real
`coldsign` commands and reports each one.

Every step is a real `coldsign` command, run in-process through the root Typer app
(`coldsign.cli.main.app`, imported inside `run_cli`) with `--json`, in the home folder of the role
that does it, as if each role had its own machine:

  coordinator  the online machine: the embedded chain, the watch-only wallet, Olivia's identity
               key (operations: she requests withdrawals)
  alice, bob, carol  the custodians' air-gapped signers (keystores, the vault, the policy, the log)
  auditor      a machine with the roster, the exported logs and its own copy of the chain
  transfer     the USB medium of the key ceremony (public keys, roster, policy, signatures)

This is CLI wiring, so it lives in `coldsign/cli/` (ARCHITECTURE §2: nothing outside `cli/`
imports it): `rehearse()` here, the scenario's steps in `rehearsal_steps`, the injected faults in
`rehearsal_attacks`, the Rich narration and the command itself in `coldsign/cli/ceremony.py`. It
writes files under the workdir and prints nothing: each finished step goes to the `narrate`
callback as a `StepEvent`.

Keystores use coldsign's real Argon2id defaults; `fast_kdf=True` lowers them to libsodium's
INTERACTIVE limits for this process only, and the summary says so (`"kdf"`).

An attack (`coldsign.cli.rehearsal_attacks`) hooks in after a named step; the first command that
refuses ends the rehearsal and is reported with its role, step, exit code and error code
(`StepRefused`), so an attack is "caught" exactly when the refusal is the one the attack expects.
Without an attack, a refusal ends the rehearsal as `RehearsalFailed`, with that command's exit code.

Whatever crosses the air gap in stages 4 and 5 goes as QR images (`Ceremony.encode_frames`,
`photograph`, `scan`): the PNG frames a command drew (`qr encode`, `psbt sign --frames-dir`) are
each photographed (`coldsign.qr.camera_sim`: the frame's modules read off the picture, then tilt,
blur, noise, uneven light) to a camera-like PNG, and the other side reads those (`psbt sign
--images`, `qr decode --images`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from coldsign.errors import ColdsignError, ExitStatus

if TYPE_CHECKING:
    from coldsign.cli.rehearsal_steps import Step


# --- running one command -----------------------------------------------------------------------

@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict:
        try:
            parsed = json.loads(self.stdout) if self.stdout.strip() else {}
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    @property
    def error(self) -> dict:
        return self.doc.get("error") or {}


def run_cli(args: list[str]) -> CliResult:
    """Run `coldsign ARGS` in this process: exit code, stdout (the JSON document) and stderr.

    Through Typer's in-process runner (typer.testing.CliRunner, public API): it swaps stdin for an
    empty non-terminal stream, so no command can stop at a prompt, and keeps stdout and stderr apart.
    A Python exception escaping the command (a bug) becomes exit 70 with its type and text."""
    from typer.testing import CliRunner

    from coldsign.cli.main import app

    # NOTE: the rehearsal plays on the embedded chain only: a chain source named in the environment
    # (COLDSIGN_SOURCE) must not reach its commands.
    result = CliRunner().invoke(app, list(args), input="", catch_exceptions=True, env={"COLDSIGN_SOURCE": None})
    code, stderr = result.exit_code, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = int(ExitStatus.INTERNAL)
        stderr += f"internal error ({type(result.exception).__name__}): {result.exception}\n"
    return CliResult(tuple(args), int(code), result.stdout, stderr)


# --- what the rehearsal reports ----------------------------------------------------------------

@dataclass(frozen=True)
class StepEvent:
    """One finished step, for the narration: who, what, what crossed the air gap, how long."""

    stage: int
    step: str
    role: str
    title: str
    seconds: float
    crossed: str = ""
    frames: int = 0


class StepRefused(Exception):
    """A command of the rehearsal did not succeed (the fault an attack expects, or a real failure)."""

    def __init__(self, role: str, step: str, result: CliResult):
        self.role, self.step, self.result = role, step, result
        error = result.error
        details = error.get("details") or []
        problems = result.doc.get("errors") or []          # audit verify: {"ok": false, "errors": [...]}
        self.codes = [error.get("code", "")] + [d.get("code", "") for d in details] + \
            [e.get("code", "") for e in problems]
        # the review's own finding codes, named in brackets inside a policy check's message
        for d in details:
            self.codes += [c for c in re.findall(r"\[([a-z0-9-]+)\]", d.get("message", "")) if c not in self.codes]
        self.code = next((c for c in self.codes[1:] if c), "") or self.codes[0] or f"exit-{result.exit_code}"
        self.message = error.get("message") or (f"entry {problems[0].get('index')}: {problems[0].get('message')}"
                                                if problems else (result.stderr.strip().splitlines() or [""])[-1])
        super().__init__(f"{role}/{step}: coldsign {' '.join(result.args)} exited {result.exit_code}: {self.message}")


class RehearsalFailed(ColdsignError):
    """The rehearsal stopped at a command that failed; the exit code is that command's."""

    code = "rehearsal-failed"

    def __init__(self, refused: StepRefused):
        inner = refused.result.error.get("hint")
        super().__init__(f"the rehearsal stopped at {refused.role}/{refused.step}: {refused.message}",
                         where=f"coldsign {' '.join(refused.result.args)}",
                         hint=(f"{inner}; " if inner else "") + "the workdir keeps every file for a look")
        try:
            self.exit_status = ExitStatus(refused.result.exit_code)
        except ValueError:
            self.exit_status = ExitStatus.INTERNAL


@dataclass
class Options:
    workdir: Path
    random: bool = False
    fast_kdf: bool = False
    attack: str | None = None


@dataclass
class Ceremony:
    """The state of one rehearsal: folders, values the commands printed, frame counts."""

    options: Options
    narrate: Callable[[StepEvent], None] = lambda event: None
    values: dict = field(default_factory=dict)
    frames_out: int = 0
    frames_back: int = 0
    stage: int = 0
    step: str = ""
    role: str = ""

    @property
    def work(self) -> Path:
        return self.options.workdir

    def home(self, role: str) -> Path:
        return self.work / role

    @property
    def transfer(self) -> Path:
        return self.work / "transfer"

    def secret_file(self, name: str) -> Path:
        return self.work / "secrets" / name

    def keystore(self, who: str) -> list[str]:
        return ["--keystore", who, "--password-file", str(self.secret_file(f"{who}-password.txt"))]

    def cli(self, role: str, *args: str, home_role: str | None = None) -> dict:
        """Run one command as `role` (in its home folder) and return its JSON; raise StepRefused."""
        home = self.home(home_role or role)
        result = run_cli(["--home", str(home), "--network", "regtest", *args, "--json"])
        if result.exit_code != 0:
            raise StepRefused(role, self.step, result)
        return result.doc

    # --- the air gap ---------------------------------------------------------------------------

    def encode_frames(self, role: str, file: Path, folder: Path, *args: str) -> list[Path]:
        """`qr encode` FILE on ROLE's screen; the PNG frames it drew, in order."""
        self.cli(role, "qr", "encode", str(file), "--frames-dir", str(folder), "--density", "medium", *args)
        return frames_in(folder)

    def photograph(self, pictures: list[Path], folder: Path, seed: int) -> list[Path]:
        """Each frame picture a command drew, as the receiving camera sees it on the other screen: a
        degraded 1280x720 picture (tilted, blurred, noisy, unevenly lit), to PNG."""
        import numpy as np

        from coldsign.qr import camera_sim

        rng = np.random.default_rng(seed)
        frames = []
        for picture in pictures:
            modules = camera_sim.picture_modules(picture)
            px = min(4.0, 640 / modules.shape[0])
            frames.append(camera_sim.camera_frame(modules, rng, px_per_module=px))
        return camera_sim.write_pngs(folder, frames, stem="camera")

    def scan(self, role: str, folder: Path, out: Path) -> dict:
        """ROLE's signer reads the camera pictures in FOLDER with `qr decode --images`."""
        return self.cli(role, "qr", "decode", "--images", str(folder / "camera-*.png"), "--out", str(out))


def frames_in(folder: Path) -> list[Path]:
    """The frame pictures a command wrote to FOLDER (frame-0001.png …), in order."""
    return sorted(folder.glob("frame-*.png"))


# --- playing the steps -------------------------------------------------------------------------

@contextmanager
def _kdf(fast: bool) -> Iterator[None]:
    """Under fast=True, new keystores use Argon2id INTERACTIVE limits (this process, this rehearsal)."""
    from coldsign.keys import keystore

    saved = keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT
    if fast:
        keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = keystore.OPSLIMIT_INTERACTIVE, \
            keystore.MEMLIMIT_INTERACTIVE
    try:
        yield
    finally:
        keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = saved


MARKER = ".coldsign-rehearsal"
WORKDIR_NAMES = {MARKER, "alice", "bob", "carol", "coordinator", "auditor", "secrets", "transfer"}


def _fresh_workdir(path: Path) -> Path:
    """The workdir, emptied. Only a folder a rehearsal made (its marker file) holding nothing but what
    a rehearsal writes there is wiped; anything else is refused, and nothing is deleted."""
    from coldsign.errors import EnvironmentProblem, Refused, UsageProblem

    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise UsageProblem(f"--workdir {path} is a file", hint="give a folder (new, or one a rehearsal made)")
    if path.is_dir() and any(path.iterdir()):
        others = sorted(p.name for p in path.iterdir() if p.name not in WORKDIR_NAMES)
        if not (path / MARKER).is_file() or others:
            raise Refused(f"{path} is not empty and was not made by a rehearsal"
                          + (f" (it holds {', '.join(others[:3])}{' …' if len(others) > 3 else ''})" if others else ""),
                          code="workdir-not-empty",
                          hint="pass an empty or new folder as --workdir; a rehearsal wipes its own workdir first")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True)
        (path / MARKER).write_text("made by coldsign ceremony rehearse; wiped by the next one\n")
    except OSError as err:
        raise EnvironmentProblem(f"cannot make the workdir: {err.strerror or err}", where=str(path),
                                 hint="choose a folder you can write to") from None
    return path


def rehearse(options: Options, narrate: Callable[[StepEvent], None] = lambda event: None) -> dict:
    """Play the ceremony; returns the summary (or the attack's verdict with `options.attack`)."""
    from coldsign.cli.rehearsal_attacks import attack_named
    from coldsign.cli.rehearsal_steps import STEPS, summary

    attack = attack_named(options.attack) if options.attack else None
    options.workdir = _fresh_workdir(options.workdir)
    ceremony = Ceremony(options=options, narrate=narrate)
    started = time.monotonic()
    refused: StepRefused | None = None
    with _kdf(options.fast_kdf):
        try:
            for step in STEPS:
                _run_step(ceremony, step)
                if attack is not None and attack.after == step.name:
                    ceremony.step, ceremony.stage = f"{step.name}+{attack.name}", step.stage
                    begun = time.monotonic()
                    note = attack.inject(ceremony)
                    narrate(StepEvent(step.stage, ceremony.step, "attacker", attack.description,
                                      time.monotonic() - begun, note))
        except StepRefused as exc:
            refused = exc
    seconds = round(time.monotonic() - started, 1)
    kdf = "argon2id interactive (--fast-kdf: rehearsal only)" if options.fast_kdf else "argon2id moderate (default)"
    if attack is not None:
        return attack.verdict(refused, ceremony) | {"seconds": seconds, "kdf": kdf,
                                                     "workdir": str(options.workdir)}
    if refused is not None:
        raise RehearsalFailed(refused)
    return summary(ceremony) | {"seconds": seconds, "kdf": kdf, "workdir": str(options.workdir)}


def _run_step(ceremony: Ceremony, step: "Step") -> None:
    ceremony.stage, ceremony.step, ceremony.role = step.stage, step.name, step.role
    begun = time.monotonic()
    crossed, frames = step.run(ceremony) or ("", 0)
    ceremony.narrate(StepEvent(step.stage, step.name, step.role, step.title, time.monotonic() - begun,
                               crossed, frames))
