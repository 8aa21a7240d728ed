"""`coldsign audit verify | report`: the auditor's side of the ceremony log.

Thin: the checks are `coldsign.ceremony.audit`, the report is `coldsign.ceremony.report`. This
module reads the files (bounded), opens the chain source or the folder of transaction files, and
prints. A failed verification prints its result (the JSON document with --json) and exits 5,
naming the first bad entry and the reason.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, settings_of
from coldsign.errors import BadInput, ExitStatus, NotFound, UsageProblem

app = typer.Typer(no_args_is_help=True, help="Verify a ceremony log against the roster and the chain; "
                  "write the auditor's report.")

TRANSACTION_FILES_MAX = 10_000            # files read from --transactions DIR

RosterOpt = Annotated[Optional[Path], typer.Option("--roster", help="the custodians' roster (default: "
                      "<home>/roster.json)")]
CheckpointOpt = Annotated[Optional[Path], typer.Option("--checkpoint", help="for a raw log.jsonl: the "
                          "checkpoint made of it (an export carries its own)")]
PreviousOpt = Annotated[Optional[Path], typer.Option("--previous", help="a checkpoint you hold from an "
                        "earlier audit (or the paper record): the log must extend it")]
ChainSourceOpt = Annotated[Optional[str], typer.Option("--chain-source", help="check each withdrawal against "
                           "this chain source: bitcoind://…, esplora://… or regtest")]
TransactionsOpt = Annotated[Optional[Path], typer.Option("--transactions", help="check each withdrawal "
                            "against the raw transactions in this folder (binary or hex files)")]
NetworkOpt = Annotated[Optional[str], typer.Option("--network", help="the network of the withdrawals' "
                       "addresses (main, test, signet, regtest); default: the global --network")]


class ReportFormat(str, Enum):
    md = "md"
    html = "html"


class TransactionFiles:
    """`ChainFacts` over a folder of raw transactions (one per file, binary or hex), by txid. It
    cannot say whether a transaction is in a block: that takes a chain source."""

    place = "among the transaction files"

    def __init__(self, folder: Path) -> None:
        from embit.transaction import Transaction

        from coldsign.cli.psbt import read_transaction

        if not folder.is_dir():
            raise NotFound("the transactions folder does not exist", where=str(folder))
        self.by_txid: dict[str, bytes] = {}
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if len(files) > TRANSACTION_FILES_MAX:
            raise BadInput(f"more than {TRANSACTION_FILES_MAX} files in the transactions folder", where=str(folder))
        for path in files:
            raw = read_transaction(path)             # hex or binary, bounded
            try:
                txid = Transaction.parse(raw).txid().hex()
            except Exception:  # noqa: BLE001 - embit raises bare errors on junk
                raise BadInput("not a raw transaction (binary or hex)", where=str(path),
                               hint="put only raw transactions in the --transactions folder") from None
            self.by_txid[txid] = raw

    def transaction(self, txid: str) -> bytes:
        if txid not in self.by_txid:
            raise NotFound(f"transaction {txid} is not among the transaction files")
        return self.by_txid[txid]


def _roster(settings: Settings, roster_file: Path | None):
    from coldsign.keys import roster as rosters

    path = roster_file or settings.home / "roster.json"
    if roster_file is None and not path.exists():
        raise UsageProblem("no roster given", hint="pass --roster FILE (the custodians' identity keys)")
    return rosters.load(path)


def _checkpoint(path: Path | None):
    if path is None:
        return None
    from coldsign.cli.log import read_checkpoint

    return read_checkpoint(path)


class Unreadable(Exception):
    """The file is no log at all, or an export so damaged it cannot be read: a failed verification
    (exit 5) all the same, with the entry the damage falls in when that can be told."""

    def __init__(self, index: int | None, code: str, message: str):
        super().__init__(message)
        self.index, self.code, self.message = index, code, message

    def to_json(self) -> dict:
        return {"ok": False, "entries": 0, "errors": [{"index": self.index, "code": self.code,
                                                        "message": self.message}], "withdrawals": []}


def damaged_entry(data: bytes) -> int | None:
    """The index of the entry in which an export stops being JSON, or None (outside its entries, or
    it parses). The entries are canonical JSON objects kept as strings of one array, so the entries
    before the damage are the `}","{` joints before it."""
    import json

    try:
        json.loads(data)
        return None
    except json.JSONDecodeError as err:
        position = len(err.doc[:err.pos].encode("utf-8"))
    except (UnicodeDecodeError, RecursionError):
        return None
    start = data.find(b'"entries":["{')
    if start < 0 or position < start:
        return None
    return data.count(b'}","{', start, position)


def run_audit(settings: Settings, path: Path, roster_file: Path | None, checkpoint_file: Path | None,
              previous_file: Path | None, chain_source: str | None, transactions: Path | None,
              network_name: str | None):
    """Read everything, run `audit_export` or `audit_log`, return the AuditResult; a file that
    cannot be read as a log prints its failed verdict and exits 5 here."""
    try:
        return _audit(settings, path, roster_file, checkpoint_file, previous_file, chain_source, transactions,
                      network_name)
    except Unreadable as damaged:
        _fail_unreadable(settings, path, damaged)


def _audit(settings: Settings, path: Path, roster_file: Path | None, checkpoint_file: Path | None,
           previous_file: Path | None, chain_source: str | None, transactions: Path | None, network_name: str | None):
    from coldsign.ceremony.audit import audit_export_bytes, audit_log
    from coldsign.ceremony.checkpoint import looks_like_export
    from coldsign.ceremony.log import LOG_MAX_BYTES
    from coldsign.network import Network
    from coldsign.store import read_limited

    if chain_source is not None and transactions is not None:
        raise UsageProblem("give one of --chain-source URL or --transactions DIR, not both")
    roster = _roster(settings, roster_file)
    previous = _checkpoint(previous_file)
    data = read_limited(path, LOG_MAX_BYTES, what="log")
    if not data.strip():
        raise Unreadable(None, "empty-log", "the file holds no entry: a ceremony log starts with its "
                                            "ceremony-opened entry")
    is_export = looks_like_export(data)      # parsed once, by audit_export_bytes
    if is_export and checkpoint_file is not None:
        raise UsageProblem("an export carries its own checkpoint; --checkpoint is for a raw log.jsonl")
    checkpoint = _checkpoint(checkpoint_file)
    network = Network.parse(network_name) if network_name else settings.network
    chain = None
    if chain_source is not None or transactions is not None:
        if network is None:
            raise UsageProblem("checking against the chain needs the network of the withdrawals' addresses",
                               hint="pass --network main|test|signet|regtest")
    if transactions is not None:
        chain = TransactionFiles(transactions)
    if chain_source is not None:
        from coldsign.chain.sources import open_source

        chain = open_source(chain_source, network, settings.home)
    try:
        if is_export:
            try:
                return audit_export_bytes(data, roster, where=str(path), previous=previous, chain=chain,
                                          network=network)
            except BadInput as err:                 # a damaged export: failed, not "bad input"
                raise Unreadable(damaged_entry(data), err.code, err.message) from None
        return audit_log(data, roster, checkpoint=checkpoint, previous=previous, chain=chain, network=network)
    finally:
        if chain_source is not None and chain is not None:
            chain.close()


def _verdict_lines(result) -> list[str]:
    first = result.first_problem
    where = f"entry {first.index}" if first is not None and first.index is not None else "the log"
    lines = []
    if first is not None:
        lines.append(f"FAILED: {where}: [{first.code}] {first.message}")
        if len(result.problems) > 1:
            lines.append(f"  ({len(result.problems) - 1} more problem(s); --json lists them all)")
    return lines


def _exit_if_failed(result, *, verdict_shown: bool) -> None:
    """Exit 5 when the verification failed, the verdict on stderr unless the human output gave it."""
    if result.ok:
        return
    if not verdict_shown:
        for line in _verdict_lines(result):
            typer.echo(line, err=True)
    raise typer.Exit(int(ExitStatus.VERIFICATION_FAILED))


def _fail_unreadable(settings: Settings, path: Path, damaged: Unreadable) -> None:
    """Print the failed verdict of a file that could not be read as a log, and exit 5."""
    where = f"entry {damaged.index}" if damaged.index is not None else str(path)
    emit(settings, {**damaged.to_json(), "truncation_checked": False},
         lambda: typer.echo(f"FAILED: {where}: [{damaged.code}] {damaged.message}", err=True))
    raise typer.Exit(int(ExitStatus.VERIFICATION_FAILED))


def _render_verify(result, doc: dict, path: Path) -> None:
    if not doc["truncation_checked"]:
        typer.echo("warning: no checkpoint (--checkpoint or --previous): entries cut off the end of this log "
                   "could not be noticed", err=True)
    if result.ok:
        typer.echo(f"OK: {path}: {result.entries} entries verified"
                   + (f", checkpoint size {result.checkpoint.size} signed by "
                      + ", ".join(s.name or s.fingerprint for s in result.checkpoint_signers)
                      if result.checkpoint is not None else ", no checkpoint given"))
    else:
        for line in _verdict_lines(result):
            typer.echo(line, err=True)
    for w in doc["withdrawals"]:
        typer.echo(f"  withdrawal at entry {w['index']}: {w['txid']} {w['amount_sat']} sat "
                   f"to {len(w['outputs'])} output(s): {w['chain']}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="an export (coldsign log export --out) or a raw log.jsonl")],
    roster_file: RosterOpt = None,
    checkpoint_file: CheckpointOpt = None,
    previous_file: PreviousOpt = None,
    chain_source: ChainSourceOpt = None,
    transactions: TransactionsOpt = None,
    network: NetworkOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Verify a ceremony log: every entry's signature against the roster, the hash chain, the
    sequence, the checkpoint's root and signatures, consistency with a checkpoint you hold, and
    (with --chain-source or --transactions) that each withdrawal reached the chain paying exactly
    what was signed.

    Exit 0 when everything verifies; exit 5 naming the first bad entry and the reason otherwise.

    Example: coldsign audit verify log-export.json --roster roster.json --previous paper-17.txt --chain-source regtest --network regtest --json
    """
    settings = settings_of(ctx, json_flag)
    result = run_audit(settings, path, roster_file, checkpoint_file, previous_file, chain_source, transactions,
                       network)
    doc = result.to_json()
    # NOTE: without any checkpoint a log cut short after its last entry looks whole: say so, not silently ok.
    doc["truncation_checked"] = result.checkpoint is not None or previous_file is not None
    emit(settings, doc, lambda: _render_verify(result, doc, path))
    _exit_if_failed(result, verdict_shown=not settings.json)


@app.command("report")
def report(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="an export (coldsign log export --out) or a raw log.jsonl")],
    out: Annotated[Path, typer.Option("--out", help="where to write the report")],
    fmt: Annotated[ReportFormat, typer.Option("--format", help="md (Markdown) or html (one self-contained "
                   "page)")] = ReportFormat.html,
    roster_file: RosterOpt = None,
    checkpoint_file: CheckpointOpt = None,
    previous_file: PreviousOpt = None,
    chain_source: ChainSourceOpt = None,
    transactions: TransactionsOpt = None,
    network: NetworkOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Write the auditor's report of the ceremonies in a log: participants, times (the signer's
    clock, untrusted), each withdrawal with amounts and destinations, approvals, policy versions,
    refusals, checkpoint roots and the verification verdict.

    The report is written even when verification fails (it says so at the top); the exit code is
    then 5, as for `audit verify`.

    Example: coldsign audit report log-export.json --roster roster.json --format html --out audit-2026-q1.html
    """
    from coldsign.ceremony.report import render_html, render_markdown
    from coldsign.store import atomic_write

    settings = settings_of(ctx, json_flag)
    result = run_audit(settings, path, roster_file, checkpoint_file, previous_file, chain_source, transactions,
                       network)                        # unreadable: exit 5 there, no report written
    text = (render_html if fmt is ReportFormat.html else render_markdown)(result, title=path.name)
    atomic_write(out, text.encode("utf-8"), mode=0o644)
    doc = {"out": str(out), "format": fmt.value, "ok": result.ok, "entries": result.entries,
           "withdrawals": len(result.withdrawals), "errors": [p.to_json() for p in result.problems]}
    emit(settings, doc, lambda: typer.echo(f"wrote the {fmt.value} report of {result.entries} entries to {out} "
                                           f"(verification: {'OK' if result.ok else 'FAILED'})"))
    _exit_if_failed(result, verdict_shown=False)
