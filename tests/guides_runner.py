"""Extract the runnable parts of the ceremony guides and run them, in guide order, on the embedded chain.

The markup is documented in ceremony-guides/README.md; in short:

  ```coldsign            one `coldsign ...` command a line (a trailing backslash continues it), run in
                         order; `# capture NAME = .json.path` and `# expect .json.path = VALUE` after a
                         command make the runner add --json and read the answer; `# expect exit N`
                         expects that exit code instead of 0; other `#` lines are comments for people
  ```coldsign rehearsal  the same, but only for a rehearsal (e.g. the embedded chain pays a deposit)
  ```coldsign check      parsed against the real command tree (commands and options must exist) but not
                         run: what is done differently in the room (a camera instead of image files)
  ```LANG file=PATH      the block's text is written to PATH (people write it by hand or in an editor)

`<name>` is a placeholder: a fixed one the runner supplies (home folders, password and dice files, the
network, the exchange's address) or a value captured from an earlier command. Placeholders start with
a lower-case letter, so a descriptor's `<0;1>` is left alone.

Commands run in-process through `coldsign.cli.main.app` (Typer's CliRunner) with COLDSIGN_NETWORK set to
the rehearsal's network; a failure names the guide file, the line and the command.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

GUIDES_DIR = Path(__file__).resolve().parent.parent / "ceremony-guides"
# The order a custody team lives through them: the chain of values captured runs across guides.
GUIDE_ORDER = ("key-generation.md", "withdrawal.md", "policy-change-and-key-rotation.md",
               "disaster-recovery.md", "audit.md")
NETWORK = "regtest"

PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
FENCE = re.compile(r"^(`{3,})\s*(.*)$")
CAPTURE = re.compile(r"^#\s*capture\s+([a-z][a-z0-9-]*)\s*=\s*(\.\S*)\s*$")
EXPECT_VALUE = re.compile(r"^#\s*expect\s+(\.\S*)\s*=\s*(.+?)\s*$")
EXPECT_EXIT = re.compile(r"^#\s*expect\s+exit\s+(\d+)\s*$")
DIRECTIVE = re.compile(r"^#\s*(capture|expect)\b")
JSON_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")

# People with a keystore password and dice rolls, and the folders each rehearsal creates.
PEOPLE = ("alice", "bob", "carol", "olivia", "oscar")
FOLDERS = ("alice-home", "bob-home", "carol-home", "coord-home", "auditor-home", "alice-new-home",
           "alice-ramdisk", "bob-ramdisk", "carol-ramdisk", "alice-new-ramdisk", "transfer")
SHARE_FOLDERS = {"alice-shares": "alice-ramdisk", "bob-shares": "bob-ramdisk", "carol-shares": "carol-ramdisk"}


class GuideFormatError(Exception):
    """A guide's markup the extractor cannot read (named by file and line)."""


@dataclass(frozen=True)
class Command:
    """One `coldsign ...` line of a guide with the directives that follow it."""

    guide: str
    line: int
    text: str
    mode: str = "run"                                  # run | rehearsal | check
    captures: tuple[tuple[str, str], ...] = ()         # (placeholder name, JSON path)
    expects: tuple[tuple[str, str], ...] = ()          # (JSON path, expected text with placeholders)
    exit_code: int = 0

    @property
    def where(self) -> str:
        return f"ceremony-guides/{self.guide}:{self.line}"

    @property
    def wants_json(self) -> bool:
        return bool(self.captures or self.expects)

    def placeholders(self) -> set[str]:
        texts = [self.text, *(value for _path, value in self.expects)]
        return {name for text in texts for name in PLACEHOLDER.findall(text)}


@dataclass(frozen=True)
class FileBlock:
    """A file the people write by hand (a policy document): the runner writes it at `target`."""

    guide: str
    line: int
    target: str
    content: str

    @property
    def where(self) -> str:
        return f"ceremony-guides/{self.guide}:{self.line}"

    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.target)) | set(PLACEHOLDER.findall(self.content))


Step = Command | FileBlock


def extract(path: Path) -> list[Step]:
    """The runnable steps of one guide, in order."""
    steps: list[Step] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match.groups()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        if end == len(lines):
            raise GuideFormatError(f"{path.name}:{i + 1}: code block is never closed")
        words = info.split()
        body = lines[start:end]
        if words and words[0] == "coldsign":
            steps.extend(_commands(path.name, start + 1, body, words[1:]))
        elif any(w.startswith("file=") for w in words[1:]):
            [target] = [w[len("file="):] for w in words[1:] if w.startswith("file=")]
            steps.append(FileBlock(path.name, i + 1, target, "\n".join(body) + "\n"))
        i = end + 1
    return steps


def _commands(guide: str, first_line: int, body: list[str], attrs: list[str]) -> list[Command]:
    modes = {"rehearsal", "check"}
    if len(attrs) > 1 or (attrs and attrs[0] not in modes):
        raise GuideFormatError(f"{guide}:{first_line - 1}: unknown coldsign block attributes {attrs} "
                               f"(known: {sorted(modes)})")
    mode = attrs[0] if attrs else "run"
    commands: list[Command] = []
    pending: list[str] = []
    pending_line = 0
    for offset, raw in enumerate(body):
        number = first_line + offset
        line = raw.strip()
        if pending:
            pending.append(line.rstrip("\\").strip())
            if not line.endswith("\\"):
                commands.append(Command(guide, pending_line, " ".join(pending), mode))
                pending = []
            continue
        if not line:
            continue
        if line.startswith("#"):
            if DIRECTIVE.match(line):
                if not commands:
                    raise GuideFormatError(f"{guide}:{number}: a directive needs a command before it")
                commands[-1] = _directive(commands[-1], line, f"{guide}:{number}")
            continue
        if not line.startswith("coldsign "):
            raise GuideFormatError(f"{guide}:{number}: a coldsign block holds only `coldsign ...` commands "
                                   f"and # comments, not {line!r}")
        if line.endswith("\\"):
            pending, pending_line = [line.rstrip("\\").strip()], number
        else:
            commands.append(Command(guide, number, line, mode))
    if pending:
        raise GuideFormatError(f"{guide}:{pending_line}: a continued command runs off the end of its block")
    return commands


def _directive(command: Command, line: str, where: str) -> Command:
    if command.mode == "check":
        raise GuideFormatError(f"{where}: directives belong to commands that run, not to check blocks")
    if m := CAPTURE.match(line):
        return _replace(command, captures=command.captures + ((m[1], m[2]),))
    if m := EXPECT_EXIT.match(line):
        return _replace(command, exit_code=int(m[1]))
    if m := EXPECT_VALUE.match(line):
        return _replace(command, expects=command.expects + ((m[1], m[2]),))
    raise GuideFormatError(f"{where}: cannot read the directive {line!r}: use `# capture NAME = .path`, "
                           f"`# expect .path = VALUE` or `# expect exit N`")


def _replace(command: Command, **changes) -> Command:
    from dataclasses import replace

    return replace(command, **changes)


def extract_all(folder: Path = GUIDES_DIR) -> dict[str, list[Step]]:
    """Every guide's steps, in GUIDE_ORDER. A guide file not in the order is an error, not skipped."""
    present = {p.name for p in folder.glob("*.md")} - {"README.md"}
    unknown = present - set(GUIDE_ORDER)
    if unknown:
        raise GuideFormatError(f"guides not in the runner's order: {sorted(unknown)} (add them to GUIDE_ORDER)")
    return {name: extract(folder / name) for name in GUIDE_ORDER}


def json_path(document, path: str, where: str):
    """The value at `.a.b[0]` in a JSON document."""
    value = document
    position = 1 if path == "." else 0
    for m in JSON_STEP.finditer(path):
        if m.start() != position:
            break
        position = m.end()
        try:
            value = value[m[1]] if m[1] is not None else value[int(m[2])]
        except (KeyError, IndexError, TypeError) as exc:
            raise AssertionError(f"{where}: the JSON answer has no {path} ({exc!r}):\n"
                                 f"{json.dumps(document)[:2000]}") from None
    if position != len(path):
        raise GuideFormatError(f"{where}: cannot read the JSON path {path!r}")
    return value


def as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def fixed_values(root: Path) -> dict[str, str]:
    """The placeholders the runner supplies: folders, secrets written to files, network, exchange address.

    Passwords and dice rolls are rehearsal values written to files (mode 0600); the dice are a fixed
    pseudo-random sequence per person (the seeds still come from the OS CSPRNG mixed with them).
    """
    import walletkit as W
    from coldsign.network import Network
    from coldsign.psbt.review import address_of

    values: dict[str, str] = {"network": NETWORK,
                              "exchange-address": address_of(W.EXTERNAL_SCRIPT, Network.REGTEST)}
    for name in FOLDERS:
        folder = root / name
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        values[name] = str(folder)
    for name, ramdisk in SHARE_FOLDERS.items():
        values[name] = str(root / ramdisk / "shares")
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    for person in PEOPLE:
        password = secrets / f"{person}-password.txt"
        password.write_text(f"rehearsal password of {person}\n")
        dice = secrets / f"{person}-dice.txt"
        rolls = random.Random(f"coldsign guide dice {person}")
        dice.write_text("".join(str(rolls.randint(1, 6)) for _ in range(99)) + "\n")
        for path in (password, dice):
            path.chmod(0o600)
        values[f"{person}-password-file"] = str(password)
        values[f"{person}-dice-file"] = str(dice)
    return values


def known_placeholders(steps: list[Step], fixed: set[str]) -> list[str]:
    """Problems: placeholders used before anything defines them (fixed names or earlier captures)."""
    known = set(fixed)
    problems = []
    for step in steps:
        unknown = step.placeholders() - known
        if unknown:
            problems.append(f"{step.where}: unknown placeholder(s) {sorted(unknown)}")
        if isinstance(step, Command):
            known |= {name for name, _path in step.captures}
    return problems


@dataclass
class Rehearsal:
    """Runs steps in order, carrying captured values from one command to the next."""

    root: Path
    values: dict[str, str] = field(default_factory=dict)
    ran: int = 0

    def __post_init__(self):
        if not self.values:
            self.values = fixed_values(self.root)

    def substitute(self, text: str, where: str) -> str:
        def value(m: re.Match) -> str:
            if m[1] not in self.values:
                raise AssertionError(f"{where}: placeholder <{m[1]}> has no value yet")
            return self.values[m[1]]

        return PLACEHOLDER.sub(value, text)

    def run(self, step: Step) -> None:
        if isinstance(step, FileBlock):
            target = Path(self.substitute(step.target, step.where))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.substitute(step.content, step.where))
            return
        argv = shlex.split(self.substitute(step.text, step.where))
        if argv[0] != "coldsign":
            raise GuideFormatError(f"{step.where}: not a coldsign command: {step.text}")
        argv = argv[1:]
        if step.mode == "check":
            check_parses(argv, step)
            return
        if step.wants_json and "--json" not in argv:
            argv.append("--json")
        self._invoke(step, argv)
        self.ran += 1

    def _invoke(self, step: Command, argv: list[str]) -> None:
        from typer.testing import CliRunner

        from coldsign.cli.main import app

        env = {"COLDSIGN_NETWORK": NETWORK, "COLDSIGN_HOME": str(self.root / "default-home"),
               "COLDSIGN_SOURCE": None}
        result = CliRunner().invoke(app, argv, env=env)
        output = result.output
        if result.exit_code == 2 and ("No such command" in output or "No such option" in output):
            raise AssertionError(f"{step.where}: the guide's command no longer exists in coldsign:\n"
                                 f"  {step.text}\n{output[-2000:]}")
        if result.exit_code != step.exit_code:
            detail = ""
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                detail = f"\n{type(result.exception).__name__}: {result.exception}"
            raise AssertionError(f"{step.where}: exit {result.exit_code}, the guide expects {step.exit_code}:\n"
                                 f"  {step.text}\n{output[-3000:]}{detail}")
        if not step.wants_json:
            return
        try:
            document = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"{step.where}: --json did not print one JSON document:\n  {step.text}\n"
                                 f"{result.stdout[-2000:]}") from None
        for path, expected in step.expects:
            want = self.substitute(expected, step.where)
            got = as_text(json_path(document, path, step.where))
            if got != want:
                raise AssertionError(f"{step.where}: {path} is {got!r}, the guide expects {want!r}:\n"
                                     f"  {step.text}")
        for name, path in step.captures:
            self.values[name] = as_text(json_path(document, path, step.where))


def check_parses(argv: list[str], step: Command) -> None:
    """Parse a command against the real command tree without running it: unknown commands or options,
    missing arguments and bad values fail, naming the guide line."""
    import typer.main

    from coldsign.cli.main import app

    command = typer.main.get_command(app)
    name = "coldsign"
    args = list(argv)
    try:
        while True:
            context = command.make_context(name, args)
            rest = [*getattr(context, "_protected_args", []), *context.args]
            if not hasattr(command, "resolve_command"):
                return
            if not rest:
                raise AssertionError(f"{step.where}: `{step.text}` names no subcommand")
            name, command, args = command.resolve_command(context, rest)
            if command is None:
                raise AssertionError(f"{step.where}: no such command {name!r} in `{step.text}`")
    except AssertionError:
        raise
    except Exception as exc:    # the vendored Click's UsageError family: unknown option, missing argument
        raise AssertionError(f"{step.where}: `{step.text}` does not parse: {exc}") from None
