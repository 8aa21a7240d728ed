"""`coldsign log open | close | show | repair | checkpoint | witness | export`: the signer's ceremony log.

`log open` makes the log ACTIVE in the home folder (its first entry creates <home>/ceremony/log.jsonl):
from then on the commands that read a seed (`psbt sign`, `policy install` with seed options) log
what they do, signed by the custodian's identity key (`coldsign.ceremony.session`). `log close`
ends the ceremony and signs a checkpoint.

Thin: the log file is `coldsign.ceremony.log.CeremonyLog`, checkpoints and exports are
`coldsign.ceremony.checkpoint`. Checkpoints live in ``<home>/ceremony/checkpoints/<size>.txt``.
The identity key that signs comes from the seed options every signing command has (--keystore or
--mnemonic-file), read only when a signature is actually needed.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, settings_of
from coldsign.cli.secrets import (IdentityIndexOpt, KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt,
                                 PasswordFileOpt, load_identity)
from coldsign.errors import BadInput, EnvironmentProblem, Refused, UsageProblem

app = typer.Typer(no_args_is_help=True, help="The signed, append-only ceremony log: show it, checkpoint it, "
                  "have a witness co-sign, export it for the auditor.")

CHECKPOINT_MAX_BYTES = 16_384


class ExportFormat(str, Enum):
    bbqr = "bbqr"
    ur = "ur"


def _log(settings: Settings):
    from coldsign.ceremony.log import CeremonyLog

    return CeremonyLog(settings.home)


def _seed_given(keystore_name, mnemonic_file) -> bool:
    return keystore_name is not None or mnemonic_file is not None


def read_checkpoint(path: Path):
    from coldsign.ceremony.checkpoint import parse_checkpoint
    from coldsign.store import read_limited

    return parse_checkpoint(read_limited(path, CHECKPOINT_MAX_BYTES, what="checkpoint"), where=str(path))


def latest_checkpoint(log):
    """The checkpoint with the largest size in the home's checkpoint folder, or None."""
    if not log.checkpoints.is_dir():
        return None
    sizes = sorted(int(p.stem) for p in log.checkpoints.glob("*.txt") if p.stem.isdigit())
    return read_checkpoint(log.checkpoints / f"{sizes[-1]}.txt") if sizes else None


def make_checkpoint(log, key):
    """Sign a checkpoint of the whole (untorn) log and write checkpoints/<size>.txt."""
    from coldsign.ceremony import merkle
    from coldsign.ceremony.checkpoint import origin_for, sign_checkpoint
    from coldsign.store import atomic_write

    contents = log.check_not_torn()
    if not contents.lines:
        raise Refused("the ceremony log is empty; there is nothing to checkpoint", code="log-empty")
    cp = sign_checkpoint(origin_for(key.fingerprint), len(contents.lines), merkle.tree_hash(contents.lines), key)
    path = atomic_write(log.checkpoints / f"{cp.size}.txt", cp.text)
    return cp, path


def _qr_lines(text: str) -> list[str]:
    """The checkpoint as one QR code (byte mode, error correction M) in terminal half blocks."""
    from coldsign.qr.render import FrameTooLarge, half_blocks, render_modules

    for version in range(4, 41):
        try:
            return half_blocks(render_modules(text, version, ec="M"))
        except FrameTooLarge:
            continue
    raise BadInput("the checkpoint does not fit one QR code")


# --- open / close -------------------------------------------------------------------------------

def _open_ceremony_at(log) -> int | None:
    """The seq of the ceremony-opened entry of a ceremony not closed yet, or None."""
    from coldsign.ceremony import events
    from coldsign.ceremony.log import parse_entry

    for line in reversed(log.check_not_torn().lines):
        entry = parse_entry(line)
        if entry.event == events.CEREMONY_CLOSED:
            return None
        if entry.event == events.CEREMONY_OPENED:
            return entry.seq
    return None


def _participants(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise UsageProblem(f"--participants {text!r} is not a comma-separated list of names",
                           hint='e.g. --participants "alice,bob" (names or identity fingerprints)')
    if len(set(names)) != len(names):
        raise UsageProblem("--participants names someone twice")
    return names


@app.command("open")
def open_ceremony(
    ctx: typer.Context,
    participants: Annotated[str, typer.Option("--participants", help="who takes part, comma-separated (names "
                            "or identity fingerprints)")],
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    json_flag: JsonFlag = False,
) -> None:
    """Open a signing ceremony: log ceremony-opened, signed by your identity key.

    The entry names the participants, the coldsign version, the SHA-256 of the installed package
    files and the machine (platform and host name). From then on the log is active in this home
    folder: `psbt sign` and `policy install` log each step, signed by the same custodian's key.
    Refused (exit 4) while a ceremony is open (close it first) or the log has a torn tail.

    Example: coldsign log open --participants "alice,bob" --keystore treasury-1
    """
    import platform
    import socket

    from coldsign import __version__
    from coldsign.ceremony import events
    from coldsign.ceremony.log import installed_package_digest
    from coldsign.cli.secrets import check_seed_options

    settings = settings_of(ctx, json_flag)
    names = _participants(participants)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    log = _log(settings)
    if log.path.exists():
        open_at = _open_ceremony_at(log)
        if open_at is not None:
            raise Refused(f"a ceremony is already open in this log (entry {open_at}); nothing was appended",
                          where=str(log.path), code="ceremony-open",
                          hint="close it first with `coldsign log close`")
    machine = f"{platform.platform()} on host {socket.gethostname() or 'unknown'}"
    payload = events.ceremony_opened(names, __version__, installed_package_digest(), machine[:events.TEXT_MAX_CHARS])
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    entry = log.append(events.CEREMONY_OPENED, payload, key)
    doc = {"path": str(log.path), "seq": entry.seq, "actor": entry.actor, **payload}
    emit(settings, doc, lambda: typer.echo(f"ceremony opened (entry {entry.seq}) by {entry.actor}: "
                                           f"{', '.join(names)}; the log at {log.path} is active"))


@app.command("close")
def close_ceremony(
    ctx: typer.Context,
    outcome: Annotated[Optional[str], typer.Option("--outcome", help="a short note for the record, e.g. "
                       "\"1 withdrawal signed\"")] = None,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    qr: Annotated[bool, typer.Option("--qr", help="also draw the checkpoint as a QR code (on stderr), for "
                  "a witness's camera")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Close the open ceremony: log ceremony-closed, then sign a checkpoint of the whole log.

    The checkpoint (written to <home>/ceremony/checkpoints/SIZE.txt, as `log checkpoint` does) is
    short enough for the paper ceremony record, and with --qr drawn as a QR code. Refused (exit 4)
    when no ceremony is open.

    Example: coldsign log close --keystore treasury-1 --outcome "1 withdrawal signed" --qr
    """
    from coldsign.ceremony import events
    from coldsign.cli.secrets import check_seed_options

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    log = _log(settings)
    if not log.path.exists() or _open_ceremony_at(log) is None:
        raise Refused("no ceremony is open in this home folder; nothing was appended", where=str(log.path),
                      code="ceremony-not-open", hint="open one with `coldsign log open`")
    payload = events.ceremony_closed(outcome)
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    entry = log.append(events.CEREMONY_CLOSED, payload, key)
    cp, path = make_checkpoint(log, key)
    doc = {"path": str(log.path), "seq": entry.seq, "actor": entry.actor, **payload,
           "checkpoint": {**cp.to_json(), "path": str(path)}}

    def human() -> None:
        typer.echo(f"ceremony closed (entry {entry.seq}); checkpoint for the paper record:")
        typer.echo(cp.text, nl=False)
        typer.echo(f"(written to {path})", err=True)

    emit(settings, doc, human)
    if qr:
        for line in _qr_lines(cp.text):
            typer.echo(line, err=True)


# --- show / repair ------------------------------------------------------------------------------

@app.command("show")
def show(
    ctx: typer.Context,
    tail: Annotated[int, typer.Option("--tail", min=0, help="show the last N entries (0: all)")] = 20,
    json_flag: JsonFlag = False,
) -> None:
    """Show the ceremony log: its size, Merkle root, newest checkpoint and last entries.

    A torn last line (a write cut by a crash) is reported, not hidden; `coldsign log repair`
    moves it aside.

    Example: coldsign log show --tail 5 --json
    """
    from coldsign.ceremony import merkle
    from coldsign.ceremony.log import parse_entry

    settings = settings_of(ctx, json_flag)
    log = _log(settings)
    contents = log.read()
    cp = latest_checkpoint(log)
    shown = contents.lines[-tail:] if tail else contents.lines
    doc = {"path": str(log.path), "size": len(contents.lines), "root": merkle.tree_hash(contents.lines).hex(),
           "torn_bytes": len(contents.torn),
           "checkpoint": cp.to_json() if cp is not None else None,
           "entries": [json.loads(parse_entry(line).line) for line in shown]}

    def human() -> None:
        typer.echo(f"{doc['path']}: {doc['size']} entries, root {doc['root']}")
        if cp is not None:
            typer.echo(f"newest checkpoint: size {cp.size}, signed by {', '.join(doc['checkpoint']['signers'])}")
        for e in doc["entries"]:
            typer.echo(f"  {e['seq']:>6}  {e['time']}  {e['actor']}  {e['event']}  "
                       f"{json.dumps(e['payload'], ensure_ascii=False)[:100]}")
        if contents.torn:
            typer.echo(f"WARNING: the log ends in {len(contents.torn)} torn bytes; run `coldsign log repair`", err=True)

    emit(settings, doc, human)


@app.command("repair")
def repair(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """Move a torn last line (left by a crash mid-write) aside so the log can grow again.

    The torn bytes are kept in <home>/ceremony/log.jsonl.torn-N, never dropped; a whole log is
    left untouched.

    Example: coldsign log repair --json
    """
    settings = settings_of(ctx, json_flag)
    log = _log(settings)
    moved = log.repair()
    doc = {"path": str(log.path), "repaired": moved is not None,
           "moved_to": str(moved[0]) if moved else None, "bytes": moved[1] if moved else 0}
    emit(settings, doc, lambda: typer.echo(f"moved {doc['bytes']} torn bytes to {doc['moved_to']}" if moved
                                           else "the log is whole; nothing to repair"))


# --- checkpoint / witness -----------------------------------------------------------------------

@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    qr: Annotated[bool, typer.Option("--qr", help="also draw the checkpoint as a QR code (on stderr)")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Sign a checkpoint of the log (origin, size, Merkle root) with the identity key.

    Written to <home>/ceremony/checkpoints/SIZE.txt and printed: short enough to copy onto the
    paper ceremony record. Refused while the log has a torn tail.

    Example: coldsign log checkpoint --keystore treasury-1 --qr
    """
    settings = settings_of(ctx, json_flag)
    log = _log(settings)
    log.check_not_torn()                       # before any password prompt
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    cp, path = make_checkpoint(log, key)
    doc = {**cp.to_json(), "path": str(path)}

    def human() -> None:
        typer.echo(cp.text, nl=False)
        typer.echo(f"(written to {path})", err=True)

    emit(settings, doc, human)
    if qr:
        for line in _qr_lines(cp.text):
            typer.echo(line, err=True)


@app.command("witness")
def witness(
    ctx: typer.Context,
    checkpoint_file: Annotated[Path, typer.Argument(help="the checkpoint to co-sign")],
    out: Annotated[Path, typer.Option("--out", help="where to write the co-signed checkpoint")],
    previous: Annotated[Optional[Path], typer.Option("--previous", help="an older checkpoint of the same log "
                        "you hold: co-sign only if the new one extends it (needs the log)")] = None,
    log_file: Annotated[Optional[Path], typer.Option("--log", help="the log to check against: a log.jsonl or an "
                        "export file (default: this home's log)")] = None,
    roster_file: Annotated[Optional[Path], typer.Option("--roster", help="require a valid signature by a "
                           "custodian of this roster before co-signing")] = None,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    json_flag: JsonFlag = False,
) -> None:
    """Co-sign another custodian's checkpoint as a witness.

    With --previous, the witness first checks against the log that the new checkpoint extends the
    older one (same entries, only appended: no rewrite, fork or rollback) and refuses (exit 5)
    otherwise. With --roster, the log owner's signature (the identity its origin names) must be
    there and verify against the roster.

    Example: coldsign log witness checkpoints/42.txt --previous paper-17.txt --log export.json --keystore bob --out 42-witnessed.txt
    """
    from coldsign.ceremony import merkle
    from coldsign.ceremony.checkpoint import cosign, owner_of, verify_checkpoint
    from coldsign.ceremony.log import actor_of
    from coldsign.errors import VerificationFailed
    from coldsign.store import atomic_write

    settings = settings_of(ctx, json_flag)
    cp = read_checkpoint(checkpoint_file)
    if roster_file is not None:
        from coldsign.keys import roster as rosters

        roster = rosters.load(roster_file)
        # NOTE: the log owner's signature (the identity its origin names), not just anyone's on the
        # roster: another witness's signature alone is no checkpoint of that log.
        owner = owner_of(cp.origin)
        if owner is None or owner not in verify_checkpoint(cp, [c.identity for c in roster.custodians]):
            raise VerificationFailed(f"the checkpoint is not signed by the log's own key (its origin {cp.origin}) "
                                     "on the roster", where=str(checkpoint_file), code="checkpoint-unsigned",
                                     hint="co-sign only a checkpoint its log's owner signed")
    consistent_with = None
    if previous is not None or log_file is not None:
        lines = _lines_of(settings, log_file)
        if len(lines) < cp.size or merkle.tree_hash(lines[:cp.size]) != cp.root:
            raise VerificationFailed(f"the log does not match the checkpoint (size {cp.size})",
                                     where=str(checkpoint_file), code="inconsistent",
                                     hint="compare the log you hold with the one the checkpoint was made from")
        owner = owner_of(cp.origin)
        for seq, line in enumerate(lines[:cp.size]):
            actor = actor_of(line)
            if owner is not None and actor != owner:
                raise VerificationFailed(f"entry {seq} of the log is signed by {actor}, not by the log's owner "
                                         f"{owner} that the checkpoint's origin names", where=str(checkpoint_file),
                                         code="wrong-actor", hint="do not co-sign; raise it with the auditor")
        if previous is not None:
            old = read_checkpoint(previous)
            if old.origin != cp.origin or old.size > cp.size or \
                    merkle.tree_hash(lines[:old.size]) != old.root:
                raise VerificationFailed(f"the checkpoint does not extend the previous one (size {old.size}): "
                                         "the log was rewritten, forked or rolled back", where=str(previous),
                                         code="inconsistent", hint="do not co-sign; raise it with the auditor")
            consistent_with = old.size
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    signed = cosign(cp, key)
    atomic_write(out, signed.text)
    doc = {**signed.to_json(), "out": str(out), "consistent_with": consistent_with}
    emit(settings, doc, lambda: (typer.echo(signed.text, nl=False), typer.echo(f"(written to {out})", err=True)))


def _lines_of(settings: Settings, log_file: Path | None) -> list[bytes]:
    """The log lines to check a checkpoint against: this home's log, a log.jsonl, or a whole export."""
    from coldsign.ceremony.checkpoint import looks_like_export, parse_export
    from coldsign.ceremony.log import LOG_MAX_BYTES, split_lines
    from coldsign.store import read_limited

    if log_file is None:
        return _log(settings).check_not_torn().lines
    data = read_limited(log_file, LOG_MAX_BYTES, what="log")
    if looks_like_export(data):
        doc = parse_export(data, where=str(log_file))
        if doc["from_size"] != 0:
            raise UsageProblem("--log needs a whole export (made without --since) to check a checkpoint",
                               where=str(log_file))
        return [e.encode("utf-8", "surrogatepass") for e in doc["entries"]]
    lines, tail = split_lines(data)
    if tail:
        raise BadInput("the log ends in a torn line", where=str(log_file))
    return lines


# --- export -------------------------------------------------------------------------------------

@app.command("export")
def export(
    ctx: typer.Context,
    since: Annotated[Optional[Path], typer.Option("--since", help="the checkpoint the auditor already has: "
                     "export only the entries after it, with a consistency proof")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="write the export document to this file")] = None,
    frames_dir: Annotated[Optional[Path], typer.Option("--frames-dir", help="write it as animated QR frames "
                          "(frame-0001.png … and frames.txt) to this folder")] = None,
    qr: Annotated[bool, typer.Option("--qr", help="animate it as QR codes in the terminal for the auditor's "
                                     "camera (stderr with --json; q quits)")] = False,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="QR format for --frames-dir and --qr: bbqr "
                   "(file type J, compressed) or ur (bytes)")] = ExportFormat.bbqr,
    cycles: Annotated[Optional[int], typer.Option("--cycles", min=1, help="with --qr: stop after this many "
                      "cycles of the frames (default: until q)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace frames already in --frames-dir")] = False,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    json_flag: JsonFlag = False,
) -> None:
    """Export the log for the auditor: entries, the newest checkpoint, a consistency proof.

    The log leaves the air-gapped machine only on removable media (--out) or by light: --qr
    animates it in the terminal (as `coldsign qr show --type json` does), --frames-dir writes the
    frames (then `coldsign qr show`/scan, or `coldsign qr decode --text frames.txt`). Give exactly
    one of the three. If the log grew since the newest checkpoint, a new one is signed first: pass
    the seed options (--keystore or --mnemonic-file), else the export is refused (exit 4). A
    terminal too small for the QR code exits 7.

    Example: coldsign log export --since paper-17.txt --out /media/usb/log-export.json --keystore treasury-1

    Example: coldsign log export --since paper-17.txt --qr --keystore treasury-1
    """
    from coldsign.ceremony.checkpoint import build_export, export_bytes
    from coldsign.ceremony import merkle
    from coldsign.cli.qr_send import TerminalQR, json_kind, transmission_of, write_transmission_frames
    from coldsign.store import atomic_write

    settings = settings_of(ctx, json_flag)
    if [out is not None, frames_dir is not None, qr].count(True) != 1:
        raise UsageProblem("give one of --out FILE, --frames-dir DIR or --qr")
    if cycles is not None and not qr:
        raise UsageProblem("--cycles goes with --qr")
    log = _log(settings)
    contents = log.check_not_torn()
    if not contents.lines:
        raise Refused("the ceremony log is empty; there is nothing to export", code="log-empty")
    from_size = 0
    if since is not None:
        old = read_checkpoint(since)
        if old.size > len(contents.lines) or merkle.tree_hash(contents.lines[:old.size]) != old.root:
            raise Refused(f"the checkpoint {since} (size {old.size}) is not of this log as it is now",
                          where=str(since), code="checkpoint-mismatch",
                          hint="give a checkpoint this log signed earlier (see <home>/ceremony/checkpoints)")
        from_size = old.size
    cp = latest_checkpoint(log)
    made = False
    if cp is None or cp.size != len(contents.lines):
        if not _seed_given(keystore_name, mnemonic_file):
            raise Refused(f"the log has {len(contents.lines)} entries but the newest checkpoint covers "
                          f"{cp.size if cp else 0}; an export needs a checkpoint of the whole log",
                          code="checkpoint-stale", hint="pass --keystore NAME or --mnemonic-file FILE to sign "
                          "one now, or run `coldsign log checkpoint` first")
        key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
        cp, _path = make_checkpoint(log, key)
        made = True
    doc = build_export(contents.lines, from_size, cp)
    data = export_bytes(doc)
    result = {"from_size": doc["from_size"], "to_size": doc["to_size"], "entries": len(doc["entries"]),
              "checkpoint": cp.to_json(), "checkpoint_made": made, "bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}
    where = str(out) if out is not None else str(frames_dir) if frames_dir is not None else "the terminal as QR"

    def human() -> None:
        span = (f"entries {result['from_size']}..{result['to_size'] - 1}" if result["entries"]
                else f"no new entry since checkpoint size {result['from_size']} (the consistency proof only)")
        typer.echo(f"exported {span} ({result['bytes']} bytes) to {where}; checkpoint size {cp.size}")

    if out is not None:
        atomic_write(out, data)
        result["out"] = str(out)
    elif frames_dir is not None:
        written = write_transmission_frames(transmission_of(data, fmt, json_kind(fmt), density="high"), frames_dir,
                                            overwrite)
        result.update(frames_dir=written["frames_dir"], format=written["format"], frames=written["frames"],
                      qr_version=written["qr_version"])
    else:
        try:
            terminal = TerminalQR(data, fmt, json_kind(fmt), label="log export", stderr=settings.json)
        except EnvironmentProblem as err:                   # too small a terminal: say what helps here
            err.hint = "enlarge the window or reduce the font size, or write the frames with --frames-dir DIR"
            raise
        if not settings.json:
            human()
        result["qr_shown"] = terminal.show(cycles=cycles)
        if not settings.json:
            return
    emit(settings, result, human)
