"""The embedded regtest chain (`<home>/regtest`) as a `ChainSource` for the watch half.

What each question is answered from:
  tip           the kernel's active chain
  scan          the chain's output index: a script is *used* once any output ever paid it
                (spent or not); its coins are the index's unspent outputs (immature coinbase
                outputs included: they are the wallet's, and consensus refuses to spend them early)
  transaction   the index's raw transactions (confirmed only: this chain has no mempool)
  tx_height     the index's height of the transaction's first output (every confirmed transaction
                has one, OP_RETURN included); None for a transaction the chain does not hold
  fee_rate      no estimator (blocks hold only what coldsign mines): `REGTEST_FEE_RATE` always
  test_accept   what Bitcoin Core's mempool would check first, without mining: the transaction
                decodes, is not a coinbase, spends no input twice, every input is an unspent
                output the chain has (a coinbase one mature in the next block), outputs do not
                exceed inputs, the fee meets `MIN_RELAY_FEE_RATE`, and every input's script
                passes libbitcoinkernel's interpreter with all consensus flags
  broadcast     test_accept, then a new block holding the transaction (mined at once)

The chain stays open (and locked, see `RegtestChain`) while the source is: use it as a context
manager. `chain` is the open `RegtestChain`, for rehearsals and tests that fund or mine between
syncs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from coldsign.amounts import MAX_MONEY_SAT
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.errors import EnvironmentProblem, Refused

REGTEST_FEE_RATE = 2.0        # sat/vB: what `fee_rate` answers for every target
MIN_RELAY_FEE_RATE = 1.0      # sat/vB: Bitcoin Core's default -minrelaytxfee, checked by test_accept


class RegtestSource:
    """`ChainSource` over the home folder's embedded regtest chain."""

    lists_spends = True     # a script's history includes the transactions spending from it

    def __init__(self, home: Path | str):
        from coldsign.chain.regtest import RegtestChain

        self.datadir = Path(home) / "regtest"
        self.description = f"the embedded regtest chain at {self.datadir}"
        if not (self.datadir / "blocks").is_dir():
            raise EnvironmentProblem("no regtest chain in this home folder", where=str(self.datadir),
                                     hint="run `coldsign regtest init` first")
        self.chain = RegtestChain.open(self.datadir)

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> "RegtestSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RegtestSource {self.datadir}>"

    # -- ChainSource ---------------------------------------------------------------------

    def tip(self) -> Tip:
        return Tip(self.chain.height, self.chain.tip_hash)

    def scan(self, scripts: Sequence[bytes]) -> list[ScriptActivity]:
        scripts = [bytes(s) for s in scripts]
        paid: dict[bytes, list] = {}
        for output in self.chain.outputs_paid_to(scripts):
            paid.setdefault(output.script_pubkey, []).append(output)
        activity = []
        for script in scripts:
            outputs = paid.get(script, [])
            touched = sorted({(o.height, o.txid) for o in outputs}
                             | {(o.spent_height, o.spent_by) for o in outputs if o.spent_by})
            unspent = tuple(Unspent(o.txid, o.vout, o.amount_sat, o.script_pubkey, o.height)
                            for o in outputs if o.spent_by is None)
            activity.append(ScriptActivity(script, bool(outputs),
                                           tuple(dict.fromkeys(t for _, t in touched)), unspent))
        return activity

    def transaction(self, txid: str) -> bytes:
        return self.chain.get_transaction(txid)

    def tx_height(self, txid: str) -> int | None:
        from coldsign.chain.regtest import parse_transaction
        from coldsign.errors import NotFound

        try:
            raw = self.chain.get_transaction(txid)     # BadInput when not 64 hex digits
        except NotFound:
            return None
        txid = txid.lower()
        first = parse_transaction(raw, 0).vout[0].script_pubkey.data
        # NOTE: read through the chain's public `outputs_paid_to` (the index keeps each output's
        # height), not its private index; the transaction's output 0 is in the same block as it.
        for output in self.chain.outputs_paid_to([first]):
            if (output.txid, output.vout) == (txid, 0):
                return output.height
        raise EnvironmentProblem(f"the chain index holds transaction {txid} but not its output 0",
                                 where=self.description, code="index-damaged",
                                 hint="delete index.sqlite in the regtest folder; it is rebuilt from "
                                      "the chain on the next open")

    def fee_rate(self, target_blocks: int) -> float:
        return REGTEST_FEE_RATE

    def test_accept(self, tx: bytes) -> Acceptance:
        from coldsign.chain.regtest import parse_transaction
        from coldsign.errors import NotFound
        from coldsign.psbt.consensus import verify_inputs

        parsed = parse_transaction(bytes(tx), 0)   # TransactionDecodeError when malformed
        if not parsed.vin or not parsed.vout:
            return Acceptance(False, "bad-txns-vin-empty or vout-empty: no inputs or no outputs")
        seen: set[tuple[str, int]] = set()
        spent: list[tuple[int, bytes]] = []
        next_height = self.chain.height + 1
        for i, inp in enumerate(parsed.vin):
            outpoint = (inp.txid.hex(), inp.vout)
            if inp.txid == bytes(32):
                return Acceptance(False, "coinbase: a coinbase transaction cannot be relayed")
            if outpoint in seen:
                return Acceptance(False, f"bad-txns-inputs-duplicate: input {i} spends "
                                         f"{outpoint[0]}:{outpoint[1]} twice")
            seen.add(outpoint)
            try:
                previous = parse_transaction(self.chain.get_transaction(outpoint[0]), i)
                out = previous.vout[outpoint[1]]
            except (NotFound, IndexError):
                return Acceptance(False, f"bad-txns-inputs-missingorspent: input {i} spends "
                                         f"{outpoint[0]}:{outpoint[1]}, which the chain does not have")
            script = out.script_pubkey.data
            coin = next((u for u in self.chain.utxos([script])
                         if (u.txid, u.vout) == outpoint), None)
            if coin is None:
                return Acceptance(False, f"bad-txns-inputs-missingorspent: input {i} spends "
                                         f"{outpoint[0]}:{outpoint[1]}, which is already spent")
            if not coin.mature_at(next_height):
                return Acceptance(False, f"bad-txns-premature-spend-of-coinbase: input {i} spends a "
                                         f"coinbase output of height {coin.height}")
            spent.append((coin.amount_sat, script))
        value_in = sum(amount for amount, _ in spent)
        value_out = sum(o.value for o in parsed.vout)
        if value_out > MAX_MONEY_SAT:
            return Acceptance(False, "bad-txns-txouttotal-toolarge: outputs exceed 21,000,000 BTC")
        if value_out > value_in:
            return Acceptance(False, f"bad-txns-in-belowout: outputs {value_out} sat exceed "
                                     f"inputs {value_in} sat")
        vsize = _vsize(parsed)
        if value_in - value_out < MIN_RELAY_FEE_RATE * vsize:
            return Acceptance(False, f"min relay fee not met: {value_in - value_out} sat < "
                                     f"{MIN_RELAY_FEE_RATE * vsize:.0f} sat for {vsize} vB")
        for verdict in verify_inputs(bytes(tx), spent, range(len(spent))):
            if not verdict.ok:
                return Acceptance(False, f"mandatory-script-verify-flag-failed: input "
                                         f"{verdict.index}: {verdict.message}")
        return Acceptance(True)

    def broadcast(self, tx: bytes) -> str:
        acceptance = self.test_accept(tx)
        if not acceptance.allowed:
            raise Refused(f"the regtest chain refuses the transaction: {acceptance.reason}",
                          where=self.description)
        result = self.chain.broadcast(bytes(tx))
        if not result.accepted:
            raise Refused(f"the regtest chain refused the block holding the transaction: "
                          f"{result.reason}", where=self.description)
        return result.txids[1]  # txids[0] is the coinbase


def _vsize(tx) -> int:
    """Virtual size: (stripped size * 3 + full size) / 4, rounded up (BIP-141)."""
    from embit.script import Witness
    from embit.transaction import Transaction

    full = len(tx.serialize())
    stripped = Transaction(version=tx.version, locktime=tx.locktime, vout=tx.vout,
                           vin=[type(i)(i.txid, i.vout, i.script_sig, i.sequence, Witness([]))
                                for i in tx.vin])
    return -(-(len(stripped.serialize()) * 3 + full) // 4)
