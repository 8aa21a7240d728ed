"""`coldsign watch send | bump | collect | broadcast | psbts`: from "pay these addresses" to a
confirmed transaction. Registered on `coldsign.cli.watch.app`.

Thin: read the database and the chain source, call the pure builders (coldsign.watch.send,
coldsign.watch.collect), store the PSBT and its status, render. A PSBT moves through the statuses
created → sent (shown as QR by `watch send --qr`) → partially_signed → final → broadcast →
confirmed, never backwards. `confirmed` is set
when the wallet's synced coins show the withdrawal's change output in a block (checked by every
command here and by `watch psbts`), or when the chain source says the transaction is in a block
(asked by `watch sync`: a withdrawal without change has no coin of the wallet to show).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, settings_of
from coldsign.cli.watch import (CameraOpt, ImagesOpt, NameArg, SourceOpt, TextOpt, VideoOpt, app, open_db,
                                open_source, wallet_of)
from coldsign.errors import NotFound, Refused, UsageProblem

DEFAULT_TARGET_BLOCKS = 6

PsbtIdArg = Annotated[int, typer.Argument(help="the withdrawal's PSBT id (see `coldsign watch psbts NAME`)")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="also write the unsigned PSBT (binary) here")]


# ---------------------------------------------------------------- shared

def _network_of(settings, record):
    if settings.network is not None and settings.network != record.network:
        raise UsageProblem(f"wallet {record.name} is on {record.network.value}, not {settings.network.value}",
                           hint="drop --network or use the right wallet")
    return record.network


def _parse_to(text: str, network):
    from coldsign.amounts import parse_amount
    from coldsign.errors import BadInput
    from coldsign.watch.send import payment

    address, sep, amount = text.rpartition(":")
    if not sep or not address or not amount:
        raise BadInput(f"--to {text!r} is not ADDRESS:AMOUNT",
                       hint="e.g. --to bcrt1q...:0.015 (BTC) or --to bcrt1q...:150000sat")
    return payment(address, parse_amount(amount), network)


def _advance(db, record, status: str, psbt: bytes | None = None):
    """Move a PSBT forward to `status` (never back); store new bytes when given."""
    from coldsign.watch.db import PSBT_STATUSES  # listed in their order

    if PSBT_STATUSES.index(status) < PSBT_STATUSES.index(record.status):
        status = record.status
    return db.set_psbt_status(record.id, status, psbt)


def settle(db, name: str, source=None, unanswered: list | None = None) -> list[int]:
    """Mark broadcast withdrawals confirmed, and return their ids: those whose change the last sync
    saw in a block, and, given a chain source, those it says are in a block (`tx_height`; the only
    way to see a withdrawal without change confirmed). The source is asked only about broadcast
    withdrawals the coins do not settle already; when it cannot answer (exit 7 errors), the
    withdrawal stays broadcast and (id, error) goes to `unanswered`: the sync itself stands."""
    from coldsign.errors import EnvironmentProblem
    from coldsign.watch.collect import confirmed

    coins = db.coins(name, include_spent=True)
    done = []
    for item in db.psbts(name):
        if item.status != "broadcast":
            continue
        height = None
        if source is not None and not confirmed(item.txid, coins):
            try:
                height = source.tx_height(item.txid)
            except EnvironmentProblem as err:
                if unanswered is None:
                    raise
                unanswered.append((item.id, err))
                continue
        if confirmed(item.txid, coins, height):
            db.set_psbt_status(item.id, "confirmed")
            done.append(item.id)
    return done


def _pending(db, name: str):
    from coldsign.psbt.codec import Psbt
    from coldsign.watch.send import PENDING_STATUSES

    return [(item, Psbt.parse(item.psbt)) for item in db.psbts(name) if item.status in PENDING_STATUSES]


def _write(out: Path, psbt) -> str:
    from coldsign.cli.psbt import write_psbt

    _data, sha = write_psbt(out, psbt, True)
    return sha


def _show_qr(psbt, cycles: int | None) -> None:
    """The PSBT as animated UR in the terminal, as `coldsign qr show FILE` shows it."""
    from coldsign.cli.qr_send import TerminalQR

    terminal = TerminalQR(psbt.serialize(), "ur", "psbt")
    shown = terminal.show(cycles=cycles)
    typer.echo(terminal.summary(shown), err=True)


def _render_withdrawal(result, doc: dict, title: str) -> None:
    from coldsign.console import render_review

    render_review(result.review)
    typer.echo(f"{title} PSBT {doc['psbt_id']} (status created), txid {doc['txid']}"
               + (f"; wrote {doc['out']}" if doc["out"] else ""))
    for warning in doc["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo("Next: have the custodians sign it, then `coldsign watch collect "
               f"{doc['wallet']} {doc['psbt_id']} SIGNED.psbt ...`")


# ---------------------------------------------------------------- send

@app.command("send")
def send_cmd(
    ctx: typer.Context,
    name: NameArg,
    to: Annotated[list[str], typer.Option("--to", help="ADDRESS:AMOUNT, AMOUNT in BTC (0.015) or sat (150000sat); "
                                          "repeat for several payments")],
    fee_rate: Annotated[Optional[float], typer.Option("--fee-rate", min=1, help="sat/vB (at least 1: nodes relay nothing cheaper)")] = None,
    target_blocks: Annotated[Optional[int], typer.Option("--target-blocks", min=1, max=1008, help="ask the "
                             "chain source for the fee rate to confirm within N blocks (default 6)")] = None,
    from_coins: Annotated[Optional[str], typer.Option("--from-coins", help="spend exactly these coins: "
                          "TXID:VOUT,TXID:VOUT,...")] = None,
    from_label: Annotated[Optional[str], typer.Option("--from-label", help="select among the coins with "
                          "this label")] = None,
    include_unconfirmed: Annotated[bool, typer.Option("--include-unconfirmed", help="allow spending "
                                   "unconfirmed coins")] = False,
    subtract_fee: Annotated[bool, typer.Option("--subtract-fee", help="the payments pay the fee (split "
                            "equally)")] = False,
    source_url: SourceOpt = None,
    out: OutOpt = None,
    qr: Annotated[bool, typer.Option("--qr", help="animate the PSBT as UR QR codes for the signers' cameras "
                                     "(q quits)")] = False,
    qr_cycles: Annotated[Optional[int], typer.Option("--qr-cycles", min=1, help="with --qr: stop after this "
                         "many cycles of the frames")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Build an unsigned withdrawal PSBT, store it (status created) and show what the signers will see.

    Coin selection, change to the next unused change address, RBF, anti-fee-sniping locktime.

    Example: coldsign --network regtest watch send vault --to bcrt1q...:0.015 --to bcrt1q...:250000sat --fee-rate 5 --out w.psbt

    Example: coldsign watch send vault --to bc1q...:0.5 --target-blocks 2 --source esploras://blockstream.info/api --qr
    """
    from coldsign.watch import send as B

    settings = settings_of(ctx, json_flag)
    if qr and settings.json:
        raise UsageProblem("--qr animates for a camera; --json is for scripts",
                           hint="drop one, or run `coldsign qr show FILE` after writing --out FILE")
    if fee_rate is not None and target_blocks is not None:
        raise UsageProblem("give --fee-rate or --target-blocks, not both")
    if from_coins is not None and from_label is not None:
        raise UsageProblem("give --from-coins or --from-label, not both")
    with open_db(settings) as db:
        record, wallet = wallet_of(db, name)
        network = _network_of(settings, record)
        payments = [_parse_to(t, network) for t in to]
        if record.tip_height is None:
            raise Refused(f"wallet {name} was never synced: its coins are unknown", code="never-synced",
                          hint=f"run `coldsign watch sync {name}` first")
        if fee_rate is None:
            source = open_source(settings, network, source_url)
            try:
                fee_rate = source.fee_rate(target_blocks or DEFAULT_TARGET_BLOCKS)
            finally:
                source.close()
        settle(db, name)
        coins = db.coins(name)
        previous = {c.txid: raw for c in coins if (raw := db.transaction_raw(c.txid)) is not None}
        pending = _pending(db, name)
        reserved = {}
        for item, psbt in pending:
            for i in range(len(psbt.inputs)):
                txid, vout = psbt.input(i).prevout
                reserved[f"{txid}:{vout}"] = item.id
        first_unused, _address = db.next_unused(name, 1)
        used = {s.index for s in db.scripts(name, 1) if s.used}
        change_index = B.choose_change_index(first_unused, used,
                                             B.pending_change_indexes(wallet, [p for _, p in pending]))
        chosen = [o for o in from_coins.split(",") if o.strip()] if from_coins is not None else None
        result = B.build_withdrawal(wallet, coins, payments, fee_rate=fee_rate, change_index=change_index,
                                    tip_height=record.tip_height, previous_txs=previous, chosen=chosen,
                                    label=from_label, include_unconfirmed=include_unconfirmed,
                                    subtract_fee=subtract_fee, reserved=reserved, wallet_name=name)
        if qr and out is None:
            out = settings.home / "psbts" / f"{name}-{result.txid[:16]}.psbt"
            out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sha = _write(out, result.psbt) if out is not None else None
        psbt_id = db.add_psbt(name, result.psbt.serialize(), result.txid)
    doc = {"psbt_id": psbt_id, "wallet": name, **result.to_json(), "out": str(out) if out else None,
           "sha256": sha}
    emit(settings, doc, lambda: _render_withdrawal(result, doc, "Stored"))
    if qr:
        _show_qr(result.psbt, qr_cycles)
        with open_db(settings) as db:                   # shown to the signers' cameras: sent
            stored = _advance(db, db.psbt(psbt_id), "sent")
        typer.echo(f"PSBT {psbt_id} is now {stored.status}", err=True)


# ---------------------------------------------------------------- bump

@app.command("bump")
def bump_cmd(
    ctx: typer.Context,
    txid: Annotated[str, typer.Argument(help="the txid of a withdrawal built here")],
    fee_rate: Annotated[float, typer.Option("--fee-rate", min=1, help="the new fee rate, sat/vB")],
    out: OutOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Build an RBF replacement (BIP-125) of a stuck withdrawal.

    Same coins, same payments, the change reduced to pay the higher fee. Refused (exit 4) when the
    change cannot pay it, saying how much is missing.

    Example: coldsign watch bump 3f2a...c1 --fee-rate 25 --out bumped.psbt --json
    """
    from coldsign.psbt.codec import Psbt
    from coldsign.watch.send import build_replacement

    settings = settings_of(ctx, json_flag)
    txid = txid.strip().lower()
    with open_db(settings) as db:
        found = [item for w in db.list_wallets() for item in db.psbts(w.name) if item.txid == txid]
        if not found:
            raise NotFound(f"no withdrawal built here has txid {txid}",
                           hint="see them with `coldsign watch psbts NAME`")
        original = found[-1]
        settle(db, original.wallet)
        original = db.psbt(original.id)
        if original.status == "confirmed":
            raise Refused(f"withdrawal {txid} is confirmed already: nothing to replace", code="confirmed")

        record, wallet = wallet_of(db, original.wallet)
        _network_of(settings, record)
        result = build_replacement(wallet, Psbt.parse(original.psbt), fee_rate, wallet_name=record.name)
        sha = _write(out, result.psbt) if out is not None else None
        psbt_id = db.add_psbt(record.name, result.psbt.serialize(), result.txid)
    doc = {"psbt_id": psbt_id, "wallet": record.name, **result.to_json(), "out": str(out) if out else None,
           "sha256": sha, "replaces": {"psbt_id": original.id, "txid": original.txid}}
    emit(settings, doc, lambda: _render_withdrawal(result, doc, f"Replacement of PSBT {original.id} stored as"))


# ---------------------------------------------------------------- collect

@app.command("collect")
def collect_cmd(
    ctx: typer.Context,
    name: NameArg,
    psbt_id: PsbtIdArg,
    files: Annotated[Optional[list[Path]], typer.Argument(help="signed PSBT files from the custodians")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="scan one signed PSBT as animated QR (with --camera, "
                                       "--video, --images or --text)")] = False,
    camera: CameraOpt = None,
    video: VideoOpt = None,
    images: ImagesOpt = None,
    text: TextOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Merge the custodians' signed PSBTs into a withdrawal and show who signed.

    Any order; duplicates are harmless. Shows per input which cosigners signed and how many signatures
    are missing; with enough signatures, finalizes, checks every input with libbitcoinkernel and stores
    the final transaction.

    Example: coldsign watch collect vault 7 signed-alice.psbt signed-bob.psbt --json

    Example: coldsign watch collect vault 7 --scan --camera 0
    """
    from coldsign.psbt.codec import Psbt
    from coldsign.watch.collect import finalize_checked, merge, signers

    settings = settings_of(ctx, json_flag)
    if bool(files) == scan:
        raise UsageProblem("give the signed PSBT files, or --scan", hint="e.g. coldsign watch collect vault "
                           f"{psbt_id} signed-alice.psbt signed-bob.psbt")
    incoming = _scanned(camera, video, images, text) if scan else [(str(f), _read(f)) for f in files]
    with open_db(settings) as db:
        record, wallet = wallet_of(db, name)
        _network_of(settings, record)
        stored = _own_psbt(db, name, psbt_id)
        merged = merge(Psbt.parse(stored.psbt), incoming)
        collection = signers(merged, wallet)
        doc = {"psbt_id": psbt_id, "txid": stored.txid, "signers": collection.signers,
               "inputs": [i.to_json() for i in collection.inputs], "missing": collection.missing,
               "final": collection.complete}
        if collection.complete:
            final = finalize_checked(merged)
            if final.txid != stored.txid:
                raise Refused(f"the finalized transaction has txid {final.txid}, not the withdrawal's "
                              f"{stored.txid}", code="txid-changed")
            with db.transaction():
                db.put_transaction(final.txid, final.tx, None)
            stored = _advance(db, stored, "final", merged.serialize())
            doc.update({"tx_hex": final.tx.hex(), "consensus_checked": True})
        else:
            anything = any(i.signed_by for i in collection.inputs)
            stored = _advance(db, stored, "partially_signed" if anything else stored.status, merged.serialize())
        doc["status"] = stored.status
    emit(settings, doc, lambda: _render_collection(name, doc))


def _read(path: Path):
    from coldsign.cli.psbt import read_psbt

    return read_psbt(path)[0]


def _scanned(camera, video, images, text):
    from coldsign.cli.qr_receive import frame_source, receive_message
    from coldsign.psbt.codec import decode_psbt

    source = frame_source(images, video, text, camera, None, False,
                          example="coldsign watch collect vault 7 --scan --camera 0")
    receipt = receive_message(source)
    return [(source.description, decode_psbt(receipt.message.data))]


def _own_psbt(db, name: str, psbt_id: int):
    stored = db.psbt(psbt_id)
    if stored.wallet != name:
        raise NotFound(f"PSBT {psbt_id} is not a withdrawal of wallet {name} (it is {stored.wallet}'s)",
                       hint=f"see them with `coldsign watch psbts {name}`")
    return stored


def _render_collection(name: str, doc: dict) -> None:
    typer.echo(f"Withdrawal {doc['psbt_id']} ({doc['txid']}): status {doc['status']}")
    for item in doc["inputs"]:
        who = ", ".join(item["signed_by"]) or "nobody yet"
        typer.echo(f"  input {item['index']}: signed by {who}; {len(item['signed_by'])} of {item['required']}"
                   + (f", {item['missing']} missing" if item["missing"] else ""))
    if doc["final"]:
        typer.echo("Every input accepted by libbitcoinkernel. Next: "
                   f"`coldsign watch broadcast {name} {doc['psbt_id']}`")
    else:
        typer.echo(f"{doc['missing']} signature(s) missing.")


# ---------------------------------------------------------------- broadcast

@app.command("broadcast")
def broadcast_cmd(
    ctx: typer.Context,
    name: NameArg,
    psbt_id: PsbtIdArg,
    source_url: SourceOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Send a final withdrawal through the chain source.

    The mempool acceptance test first (refused: exit 4 with the node's reason), then the broadcast.
    After the next `watch sync` the coins move.

    Example: coldsign watch broadcast vault 7 --source bitcoind://127.0.0.1:8332?cookie=/var/lib/bitcoind/.cookie --json
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        record, _wallet = wallet_of(db, name)
        network = _network_of(settings, record)
        stored = _own_psbt(db, name, psbt_id)
        if stored.status not in ("final", "broadcast"):
            raise Refused(f"withdrawal {psbt_id} is {stored.status}, not final", code="not-final",
                          hint=f"collect the signatures first: `coldsign watch collect {name} {psbt_id} FILES...`")
        tx = db.transaction_raw(stored.txid)
        if tx is None:
            raise NotFound(f"the final transaction of withdrawal {psbt_id} is not stored",
                           hint=f"run `coldsign watch collect {name} {psbt_id} FILES...` again")
        from coldsign.chain.source import send_accepted

        source = open_source(settings, network, source_url)
        try:
            sent = send_accepted(source, tx)
            described = source.description
        finally:
            source.close()
        stored = _advance(db, stored, "broadcast")
    doc = {"psbt_id": psbt_id, "txid": sent, "status": stored.status, "source": described}
    emit(settings, doc, lambda: typer.echo(f"Broadcast {sent} through {described}. "
                                           f"`coldsign watch sync {name}` shows the coins move."))


# ---------------------------------------------------------------- psbts

@app.command("psbts")
def psbts_cmd(ctx: typer.Context, name: NameArg, json_flag: JsonFlag = False) -> None:
    """The wallet's withdrawals and their status.

    Broadcast ones whose change the last sync saw in a block, or that the last `watch sync`'s
    chain source placed in a block, are confirmed.

    Example: coldsign watch psbts vault --json
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        wallet_of(db, name)
        settle(db, name)
        doc = {"wallet": name, "psbts": [p.to_json() for p in db.psbts(name)]}
    emit(settings, doc, lambda: [typer.echo(f"PSBT {p['id']}: {p['status']:<16} txid {p['txid']} ({p['updated']})")
                                 for p in doc["psbts"]] or typer.echo("no withdrawals yet"))
