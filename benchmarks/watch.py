"""The watch half's numbers (issue 5 §6): syncing a wallet of 5,000 coins from the embedded
regtest chain, and building a 500-input consolidation PSBT.

    .venv/bin/python benchmarks/watch.py [--coins 5000] [--inputs 500] [--kind wsh-sortedmulti]

The coins are paid to consecutive receive addresses 0..N-1 by faucet transactions of --per-tx
outputs each (one block each; each input of the consolidation carries its whole previous
transaction, as segwit v0 inputs must), so the sync must derive and scan N + gap-limit scripts.
Prints seconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import walletkit as W  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5_000)
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--per-tx", type=int, default=100, help="outputs per funding transaction")
    parser.add_argument("--kind", default="wsh-sortedmulti", choices=["wpkh", "sh-wpkh", "tr", "wsh-sortedmulti"])
    args = parser.parse_args()

    from coldsign.chain.regtest import RegtestChain
    from coldsign.chain.regtest_source import RegtestSource
    from coldsign.network import Network
    from coldsign.psbt.review import address_of
    from coldsign.watch.db import WatchDB
    from coldsign.watch.send import Payment, build_withdrawal
    from coldsign.watch.sync import sync

    wallet = W.wallet(args.kind)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        started = time.perf_counter()
        with RegtestChain.open(home / "regtest") as chain:
            chain.mine(101)
            for first in range(0, args.coins, args.per_tx):
                last = min(args.coins, first + args.per_tx)
                chain.fund_many([(wallet.script_pubkey(0, i), 100_000 + i) for i in range(first, last)])
        print(f"setup: {args.coins} coins to {args.kind} receive 0..{args.coins - 1} "
              f"in {time.perf_counter() - started:.1f} s")

        with WatchDB.open(home) as db:
            db.add_wallet("bench", wallet)
            with RegtestSource(home) as source:
                started = time.perf_counter()
                result = sync(db, "bench", source)
                first_sync = time.perf_counter() - started
                started = time.perf_counter()
                again = sync(db, "bench", source)
                second_sync = time.perf_counter() - started
            print(f"sync of {len(result.new_coins)} coins ({result.scripts_scanned} scripts): "
                  f"{first_sync:.2f} s first, {second_sync:.2f} s again ({len(again.new_coins)} new)")

            # The consolidation as `watch send` builds it: coin control over N outpoints, all of it
            # to the wallet's next receive address less the fee (--subtract-fee), the PSBT
            # assembled with every previous transaction and reviewed as the signer will review it.
            records = db.coins("bench")[: args.inputs]
            previous = {c.txid: db.transaction_raw(c.txid) for c in records}
            total = sum(c.amount_sat for c in records)
            destination = wallet.script_pubkey(0, args.coins + 1)
            payment = Payment(address_of(destination, Network.REGTEST), destination, total)
            started = time.perf_counter()
            built = build_withdrawal(wallet, db.coins("bench"), [payment], fee_rate=2, change_index=0,
                                     tip_height=db.wallet("bench").tip_height, previous_txs=previous,
                                     chosen=[c.outpoint for c in records], subtract_fee=True)
            raw = built.psbt.serialize()
            seconds = time.perf_counter() - started
            print(f"consolidation PSBT of {len(built.inputs)} inputs (watch send's build and review): "
                  f"{seconds:.2f} s, {len(raw) / 1e6:.1f} MB, fee {built.fee_sat} sat at 2 sat/vB ({built.vsize} vB)")

if __name__ == "__main__":
    main()
