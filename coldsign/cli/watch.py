"""`coldsign watch ...`: the watch-only coordinator (public keys only).

This module holds the group and the wallet commands: import, list, show, receive, label, sync,
balance, utxos. Withdrawals (send, bump, collect, broadcast) live in `watch_send.py`, registered on
the same app. State is the home folder's SQLite database (coldsign.watch.db); the chain is asked
through `--source URL` (coldsign.chain.sources), by default the embedded regtest chain on regtest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from coldsign.amounts import format_btc
from coldsign.cli.app import JsonFlag, Settings, emit, rich_console, settings_of
from coldsign.errors import UsageProblem

app = typer.Typer(no_args_is_help=True, help="The watch-only coordinator: track a wallet, build withdrawals, "
                  "collect signatures, broadcast.")

NameArg = Annotated[str, typer.Argument(help="the watch wallet's name")]
SourceOpt = Annotated[Optional[str], typer.Option(
    "--source", help="chain source: regtest (the default on regtest), bitcoind://HOST:PORT?cookie=PATH, "
    "bitcoind://USER@HOST:PORT\\[/wallet/NAME]?password-file=PATH or esplora\\[s]://HOST\\[:PORT]\\[/PATH] "
    "(env COLDSIGN_SOURCE)")]

# where `--scan` reads QR codes from (import here, collect in watch_send.py)
CameraOpt = Annotated[Optional[int], typer.Option("--camera", help="with --scan: camera number")]
VideoOpt = Annotated[Optional[Path], typer.Option("--video", help="with --scan: a video file")]
ImagesOpt = Annotated[Optional[str], typer.Option("--images", help="with --scan: image files (a glob)")]
TextOpt = Annotated[Optional[Path], typer.Option("--text", help="with --scan: one QR payload a line")]


def open_db(settings: Settings):
    from coldsign.watch.db import WatchDB

    return WatchDB.open(settings.home)


def open_source(settings: Settings, network, url: str | None):
    """The chain source for `network`: --source, else $COLDSIGN_SOURCE, else the embedded chain on regtest."""
    from coldsign.chain import sources
    from coldsign.network import Network

    url = url or os.environ.get("COLDSIGN_SOURCE") or None
    if url is None:
        if network is not Network.REGTEST:
            raise UsageProblem(f"no chain source for --network {network.value}",
                               hint="pass --source bitcoind://HOST:PORT?cookie=PATH or esploras://HOST/api "
                                    "(or set COLDSIGN_SOURCE)")
        url = "regtest"
    return sources.open_source(url, network, settings.home)


def wallet_of(db, name: str):
    """(record, WalletDescriptor) of a watch wallet; NotFound names the wallets there are."""
    record = db.wallet(name)
    return record, record.parse()


# ---------------------------------------------------------------- import

@app.command("import")
def import_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="name for the wallet here")],
    descriptor: Annotated[Optional[str], typer.Option("--descriptor", help="descriptor with /<0;1>/* keys, or "
                                                      "the receive one with --change-descriptor")] = None,
    change_descriptor: Annotated[Optional[str], typer.Option("--change-descriptor", help="the change "
                                                             "(/1/*) descriptor")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="a wallet export: BSMS record, Coldcard/"
                    "Sparrow/Specter multisig file, Specter/Sparrow JSON, Coldcard generic JSON, descriptor")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="the BSMS TOKEN of an encrypted "
                          "record (with --file)")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="scan a UR crypto-output or crypto-account from the "
                                       "signer's screen (with --camera, --video, --images or --text)")] = False,
    images: ImagesOpt = None,
    video: VideoOpt = None,
    text: TextOpt = None,
    camera: CameraOpt = None,
    script_type: Annotated[str, typer.Option("--script-type", help="which account of a Coldcard JSON export "
                                             "or a crypto-account: wpkh, sh-wpkh or tr")] = "wpkh",
    gap_limit: Annotated[int, typer.Option("--gap-limit", min=1, max=1000, help="unused addresses looked at "
                                           "past the last used one when syncing")] = 20,
    json_flag: JsonFlag = False,
) -> None:
    """Import a wallet to watch: a descriptor, a wallet export file, or a UR scanned from a signer.

    Example: coldsign --network regtest watch import --name vault --file vault.bsms

    Example: coldsign --network regtest watch import --name alice --scan --camera 0
    """
    from coldsign.wallet.descriptor import WalletDescriptor

    settings = settings_of(ctx, json_flag)
    network = settings.require_network()
    given = [flag for flag, value in (("--descriptor", descriptor), ("--file", file), ("--scan", scan or None))
             if value is not None]
    if len(given) != 1:
        raise UsageProblem("give the wallet one way: --descriptor, --file or --scan",
                           hint="e.g. coldsign --network regtest watch import --name vault --file vault.bsms")
    if change_descriptor is not None and descriptor is None:
        raise UsageProblem("--change-descriptor goes with --descriptor")
    source = "descriptor"
    if file is not None:
        from coldsign.cli.wallet import read_setup_file

        setup = read_setup_file(file, token_file, network, script_type)
        source, descriptor = setup.source, setup.descriptor
    elif scan:
        setup = _scan_setup(images, video, text, camera, network, script_type)
        source, descriptor = setup.source, setup.descriptor
    wallet = WalletDescriptor.parse(descriptor, network, change_descriptor)
    with open_db(settings) as db:
        record = db.add_wallet(name, wallet, gap_limit=gap_limit)
    doc = {**record.to_json(), "source": source, "policy": wallet.policy, "kind": wallet.kind,
           "first_address": wallet.address(0, 0),
           "keys": [{"fingerprint": k.origin.fingerprint.hex(), "path": k.origin.path_str()} for k in wallet.keys]}
    emit(settings, doc, lambda: _render_wallet(doc, title="Watching"))


def _scan_setup(images, video, text, camera, network, script_type: str):
    from coldsign.cli.qr_receive import frame_source, receive_message
    from coldsign.qr import ur
    from coldsign.wallet.setupfile import from_ur

    source = frame_source(images, video, text, camera, None, False,
                          example="coldsign watch import --name alice --scan --camera 0")
    receipt = receive_message(source, ur_types=ur.SUPPORTED_TYPES + ur.REGISTRY_TYPES)
    return from_ur(receipt.message.type, receipt.message.data, network, script_type=script_type)


# ---------------------------------------------------------------- list, show

@app.command("list")
def list_cmd(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """List the watched wallets with their balances.

    Example: coldsign watch list --json
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        wallets = [{**r.to_json(), **db.balance(r.name).to_json()} for r in db.list_wallets()]
    doc = {"wallets": wallets}
    emit(settings, doc, lambda: _render_list(doc))


@app.command("show")
def show_cmd(ctx: typer.Context, name: NameArg, json_flag: JsonFlag = False) -> None:
    """Show a watched wallet: descriptor, keys, balance, last sync, next receive address, PSBTs.

    Example: coldsign watch show vault
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        record, wallet = wallet_of(db, name)
        index, address = db.next_unused(name, 0)
        doc = {**record.to_json(), "policy": wallet.policy, "kind": wallet.kind,
               "keys": [{"fingerprint": k.origin.fingerprint.hex(), "path": k.origin.path_str()}
                        for k in wallet.keys],
               "balance": db.balance(name).to_json(), "next_receive": {"index": index, "address": address},
               "coins": len(db.coins(name)), "psbts": [p.to_json() for p in db.psbts(name)]}
    emit(settings, doc, lambda: _render_wallet(doc, title="Wallet"))


# ---------------------------------------------------------------- receive, label

@app.command("receive")
def receive_cmd(
    ctx: typer.Context,
    name: NameArg,
    label: Annotated[Optional[str], typer.Option("--label", help="label the address (BIP-329 style)")] = None,
    qr: Annotated[bool, typer.Option("--qr", help="also draw the address as a QR code, for a second-screen "
                                     "check")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """The next unused receive address (the same until coins arrive there and a sync sees them).

    Compare it with the signer's `coldsign wallet address NAME INDEX` before sharing it.

    Example: coldsign watch receive vault --label "exchange withdrawal" --qr
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        record, wallet = wallet_of(db, name)
        index, address = db.next_unused(name, 0)
        if label is not None:
            db.set_label(name, address, label)
        doc = {"wallet": name, "index": index, "address": address, "path": f"0/{index}",
               "label": db.label(name, address)}
    emit(settings, doc, lambda: _render_receive(doc, qr))


@app.command("label")
def label_cmd(
    ctx: typer.Context,
    name: NameArg,
    ref: Annotated[str, typer.Argument(help="an address of the wallet or a coin's TXID:VOUT")],
    text: Annotated[str, typer.Argument(help="the label; empty removes it")],
    json_flag: JsonFlag = False,
) -> None:
    """Label an address or a coin (coins without a label of their own show their address's).

    Example: coldsign watch label vault 3f2a...c1:0 "cold storage top-up"
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        db.set_label(name, ref, text)
        doc = {"wallet": name, "ref": ref, "label": db.label(name, ref)}
    emit(settings, doc, lambda: typer.echo(f"{ref}: {doc['label'] or '(no label)'}"))


# ---------------------------------------------------------------- sync, balance, utxos

@app.command("sync")
def sync_cmd(
    ctx: typer.Context,
    name: NameArg,
    source_url: SourceOpt = None,
    gap_limit: Annotated[Optional[int], typer.Option("--gap-limit", min=1, max=1000, help="override the "
                                                     "wallet's gap limit for this sync")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Ask the chain source for the wallet's coins (gap-limit scan of receive and change addresses).

    All or nothing: a failed or interrupted sync leaves the database as it was. Broadcast
    withdrawals the source finds in a block (with change or without) become confirmed; one the
    source cannot answer about stays broadcast, with a warning (the sync stands).

    Example: coldsign watch sync vault --source bitcoind://127.0.0.1:8332?cookie=/var/lib/bitcoind/.cookie
    """
    from coldsign.watch.sync import sync

    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        record, _wallet = wallet_of(db, name)
        source = open_source(settings, record.network, source_url)
        try:
            with _SyncProgress(source.description, quiet=settings.json) as progress:
                result = sync(db, name, source, gap_limit=gap_limit, progress=progress)
            from coldsign.cli.watch_send import settle

            # the source settles withdrawals without change (no coin of the wallet shows them); the
            # sync is committed already: a source that cannot answer now leaves them broadcast
            unanswered: list = []
            confirmed_psbts = settle(db, name, source, unanswered)
        finally:
            source.close()
        doc = {**result.to_json(), "confirmed_psbts": confirmed_psbts,
               "unsettled_psbts": [{"psbt_id": i, "error": err.message} for i, err in unanswered]}
    for item in doc["unsettled_psbts"]:
        typer.echo(f"warning: could not ask {source.description} whether withdrawal {item['psbt_id']} is confirmed "
                   f"({item['error']}); it stays broadcast until a later sync", err=True)
    emit(settings, doc, lambda: _render_sync(doc))


@app.command("balance")
def balance_cmd(ctx: typer.Context, name: NameArg, json_flag: JsonFlag = False) -> None:
    """The wallet's balance as of its last sync: confirmed, unconfirmed, total (sat).

    Example: coldsign watch balance vault --json
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        record, _wallet = wallet_of(db, name)
        doc = {"wallet": name, **db.balance(name).to_json(), "tip_height": record.tip_height}
    emit(settings, doc, lambda: typer.echo(
        f"{name}: {format_btc(doc['confirmed_sat'])} confirmed, {format_btc(doc['unconfirmed_sat'])} unconfirmed "
        f"(as of block {doc['tip_height']})"))


@app.command("utxos")
def utxos_cmd(
    ctx: typer.Context,
    name: NameArg,
    spent: Annotated[bool, typer.Option("--spent", help="include spent coins")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """The wallet's coins with outpoint, amount, address path, height and label.

    Example: coldsign watch utxos vault --json
    """
    settings = settings_of(ctx, json_flag)
    with open_db(settings) as db:
        wallet_of(db, name)
        coins = [c.to_json() for c in db.coins(name, include_spent=spent)]
    doc = {"wallet": name, "coins": coins, "total_sat": sum(c["amount_sat"] for c in coins if not c["spent_by"])}
    emit(settings, doc, lambda: _render_coins(doc))


# ---------------------------------------------------------------- rendering


def _render_wallet(doc: dict, *, title: str) -> None:
    from rich.table import Table
    from rich.text import Text

    console = rich_console()
    console.print(Text.assemble((title, "bold"), f"  {doc['name']}  ({doc['network']}, {doc['policy']}, "
                                                 f"{doc['kind']})"))
    console.print(Text(f"descriptor: {doc['descriptor']}"), soft_wrap=True)
    table = Table("#", "fingerprint", "path")
    for n, key in enumerate(doc["keys"], 1):
        table.add_row(str(n), key["fingerprint"], key["path"])
    console.print(table)
    if "first_address" in doc:
        console.print(Text.assemble("first receive address: ", (doc["first_address"], "bold"),
                                    "  (compare with each signer's `coldsign wallet address NAME 0`)"))
    if "balance" in doc:
        balance = doc["balance"]
        synced = f"block {doc['tip_height']}" if doc["tip_height"] is not None else "never synced"
        console.print(f"balance: {format_btc(balance['confirmed_sat'])} confirmed, "
                      f"{format_btc(balance['unconfirmed_sat'])} unconfirmed ({synced}); {doc['coins']} coin(s)")
        console.print(Text.assemble("next receive address: ", (doc["next_receive"]["address"], "bold"),
                                    f" (0/{doc['next_receive']['index']})"))
        for item in doc["psbts"]:
            console.print(f"  PSBT {item['id']}: {item['status']}  txid {item['txid']}  ({item['updated']})")


def _render_list(doc: dict) -> None:
    from rich.table import Table

    if not doc["wallets"]:
        rich_console().print("no watched wallets; add one with `coldsign watch import`")
        return
    table = Table("name", "network", "confirmed", "unconfirmed", "synced at")
    for item in doc["wallets"]:
        table.add_row(item["name"], item["network"], format_btc(item["confirmed_sat"]), format_btc(item["unconfirmed_sat"]),
                      str(item["tip_height"]) if item["tip_height"] is not None else "never")
    rich_console().print(table)


def _render_receive(doc: dict, qr: bool) -> None:
    from rich.text import Text

    console = rich_console()
    label = f"  [{doc['label']}]" if doc["label"] else ""
    console.print(Text.assemble(f"{doc['wallet']} receive #{doc['index']}: ", (doc["address"], "bold"), label))
    if qr:
        for line in address_qr_lines(doc["address"]):
            console.print(Text(line, style="black on white"))


def address_qr_lines(address: str) -> list[str]:
    """An address as terminal half-block lines (bech32 upper-cased: QR alphanumeric mode)."""
    import numpy as np
    import qrcode

    from coldsign.qr.render import half_blocks

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(address.upper() if address.lower().startswith(("bc1", "tb1", "bcrt1")) else address)
    code.make(fit=True)
    return half_blocks(np.array(code.get_matrix(), dtype=bool))


def _render_sync(doc: dict) -> None:
    console = rich_console()
    console.print(f"Synced {doc['wallet']} to block {doc['tip']['height']}: {len(doc['new_coins'])} new coin(s), "
                  f"{len(doc['spent_coins'])} spent; balance {format_btc(doc['balance']['confirmed_sat'])} confirmed, "
                  f"{format_btc(doc['balance']['unconfirmed_sat'])} unconfirmed")


def _render_coins(doc: dict) -> None:
    from rich.table import Table

    table = Table("outpoint", "amount", "path", "height", "label")
    table.columns[0].overflow = "fold"
    for coin in doc["coins"]:
        state = f" spent by {coin['spent_by'][:16]}…" if coin["spent_by"] else ""
        table.add_row(coin["outpoint"], format_btc(coin["amount_sat"]), f"{coin['change']}/{coin['index']}",
                      str(coin["height"]) if coin["height"] is not None else "mempool",
                      (coin["label"] or "") + state)
    console = rich_console()
    console.print(table)
    console.print(f"unspent total: {format_btc(doc['total_sat'])}")


class _SyncProgress:
    """A Rich progress bar on stderr while scripts are scanned (nothing with --json or off a terminal)."""

    def __init__(self, what: str, *, quiet: bool):
        import sys

        self.what, self.show = what, not quiet and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "_SyncProgress":
        if self.show:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(f"syncing from {self.what}", total=None)
        return self

    def __call__(self, done: int, total_guess: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=max(total_guess, done))

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


from coldsign.cli import watch_send  # noqa: E402,F401  (registers send, bump, collect, broadcast, psbts)
