"""`coldsign regtest ...`: the embedded regtest chain in <home>/regtest.

Thin: parse, open the chain, call `coldsign.chain.regtest`, render. The chain module is imported
inside each command (it loads libbitcoinkernel, ~0.2 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, settings_of
from coldsign.errors import NotFound, UsageProblem
from coldsign.network import Network

app = typer.Typer(no_args_is_help=True, help=(
    "The embedded regtest chain (blocks validated by Bitcoin Core's libbitcoinkernel) for "
    "rehearsals and demos.\n\nExample: coldsign regtest init && coldsign regtest fund "
    "bcrt1q... 0.5"))

# How many blocks one `regtest mine` may ask for (a typo like 1000000 would run for minutes).
MINE_MAX_BLOCKS = 10_000
INIT_HEIGHT = 101  # the first coinbase is spendable in block 101, so `fund` works at once


def _datadir(settings: Settings) -> Path:
    if settings.network not in (None, Network.REGTEST):
        raise UsageProblem(f"regtest commands run on regtest, not --network {settings.network.value}",
                           hint="drop --network or pass --network regtest")
    return settings.home / "regtest"


def open_chain(settings: Settings):
    """The home folder's regtest chain; NotFound (exit 3) with the fix when it was never initialized."""
    from coldsign.chain.regtest import RegtestChain

    datadir = _datadir(settings)
    if not (datadir / "blocks").is_dir():
        raise NotFound("no regtest chain here", where=str(datadir),
                       hint="run `coldsign regtest init` first")
    return RegtestChain.open(datadir)


def _address_script(address: str) -> bytes:
    from coldsign.chain.address import regtest_address_script

    return regtest_address_script(address)


def _echo(line: str) -> None:
    typer.echo(line)


@app.command()
def init(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """Create the regtest chain and mine 101 blocks to the miner so `fund` works. Idempotent.

    Example: coldsign --home ./demo regtest init --json
    """
    from coldsign.chain.address import regtest_address
    from coldsign.chain.regtest import RegtestChain

    settings = settings_of(ctx, json_flag)
    datadir = _datadir(settings)
    with RegtestChain.open(datadir) as chain:
        missing = max(0, INIT_HEIGHT - chain.height)
        if missing:
            _require_accepted(chain.mine(missing))
        doc = {"datadir": str(datadir), "height": chain.height, "tip": chain.tip_hash,
               "mined": missing, "miner_address": regtest_address(chain.miner_script)}
    emit(settings, doc, lambda: _echo(
        f"regtest chain at {doc['datadir']}: height {doc['height']} "
        f"({doc['mined']} blocks mined now), tip {doc['tip']}"))


@app.command()
def mine(ctx: typer.Context,
         to: Annotated[Optional[str], typer.Option("--to", help="regtest address for the "
                                                   "block rewards (default: the miner)")] = None,
         blocks: Annotated[int, typer.Option("--blocks", "-n", min=1, max=MINE_MAX_BLOCKS,
                                             help="how many blocks")] = 1,
         json_flag: JsonFlag = False) -> None:
    """Mine empty blocks on the regtest chain.

    Example: coldsign regtest mine --blocks 6 --to bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080
    """
    settings = settings_of(ctx, json_flag)
    script = _address_script(to) if to is not None else None
    with open_chain(settings) as chain:
        results = _require_accepted(chain.mine(blocks, to_script=script))
        doc = {"height": chain.height, "tip": chain.tip_hash,
               "blocks": [{"height": r.height, "hash": r.block_hash} for r in results]}
    emit(settings, doc, lambda: _echo(f"mined {len(results)} block(s); height {doc['height']}, "
                                      f"tip {doc['tip']}"))


@app.command()
def fund(ctx: typer.Context,
         address: Annotated[str, typer.Argument(help="a regtest address (bcrt1…, m…, n…, 2…)")],
         amount: Annotated[str, typer.Argument(help="BTC like 0.5, or satoshis like 50000sat")],
         json_flag: JsonFlag = False) -> None:
    """Pay AMOUNT to ADDRESS from the miner's coins, confirmed in one new block.

    Example: coldsign regtest fund bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080 0.5 --json
    """
    settings = settings_of(ctx, json_flag)
    script = _address_script(address)
    from coldsign.amounts import parse_amount

    amount_sat = parse_amount(amount)
    with open_chain(settings) as chain:
        coin = chain.fund(script, amount_sat)
    doc = {"txid": coin.txid, "vout": coin.vout, "amount_sat": coin.amount_sat,
           "address": address.strip(), "height": coin.height}
    emit(settings, doc, lambda: _echo(
        f"funded {address.strip()} with {coin.amount_sat} sat: {coin.txid}:{coin.vout} "
        f"(height {coin.height})"))


@app.command()
def status(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """Show the regtest chain's height, tip and the miner's balance.

    Example: coldsign regtest status --json
    """
    from coldsign.chain.address import regtest_address

    settings = settings_of(ctx, json_flag)
    with open_chain(settings) as chain:
        total, spendable = chain.miner_balance()
        doc = {"datadir": str(chain.datadir), "height": chain.height, "tip": chain.tip_hash,
               "miner_balance_sat": total, "miner_spendable_sat": spendable,
               "miner_address": regtest_address(chain.miner_script)}
    emit(settings, doc, lambda: _echo(
        f"regtest chain at {doc['datadir']}\n  height {doc['height']}, tip {doc['tip']}\n"
        f"  miner {doc['miner_address']}: {total} sat ({spendable} spendable)"))


def _require_accepted(results):
    from coldsign.errors import VerificationFailed

    refused = [r for r in results if not r.accepted]
    if refused:
        raise VerificationFailed(f"the kernel refused a block coldsign built: {refused[0].reason}",
                                 hint="this is a bug in coldsign; run with --debug and report it")
    return results
