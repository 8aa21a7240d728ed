"""Build a withdrawal for `watch send` and its RBF replacement for `watch bump` (pure).

A withdrawal, in the domain's words: the wallet pays some addresses; coin selection
(`coldsign.watch.coinselect`) picks the coins and says the fee and the change; the change goes to
the wallet's next change address that no pending withdrawal already uses; the unsigned PSBT
carries everything a signer checks (previous transactions for segwit v0 inputs, witness UTXOs,
derivations, scripts, global xpubs for multisig: `coldsign.psbt.create.assemble_psbt`), signals
RBF, and sets an anti-fee-sniping locktime. Before it is handed out, the PSBT is reviewed exactly
as a signer would review it (`coldsign.psbt.review.review`): a PSBT the signers would refuse is
refused here.

Anti-fee-sniping (as Bitcoin Core does it): the locktime is the chain height the wallet was last
synced to, so the transaction cannot be mined into a block that re-writes history below it; one
time in ten it is up to 99 blocks lower, so that transactions which really were delayed do not
stand out. The randomness is injectable (`rng`) for reproducible tests.

A replacement (BIP-125): the same inputs, the same payments, the change reduced by the extra fee.
Bitcoin Core relays it only when its absolute fee is at least the old fee plus its own virtual
size times the incremental relay fee (1 sat/vB by default). When the change cannot absorb that,
the replacement is refused with the amount missing (adding inputs is not done here).

Nothing here does I/O: the CLI reads the database and the chain and passes plain values in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from coldsign.errors import BadInput, NotFound, Refused
from coldsign.network import Network
from coldsign.psbt import scripts as S
from coldsign.wallet.address import address_script  # the one address check, shared with the policy

INCREMENTAL_RELAY_FEE_RATE = 1      # sat/vB: Bitcoin Core's -incrementalrelayfee default
ANTI_FEE_SNIPING_SHIFT_CHANCE = 10  # one time in ten the locktime is set lower ...
ANTI_FEE_SNIPING_MAX_SHIFT = 100    # ... by 0-99 blocks (Bitcoin Core's DiscourageFeeSniping)
PENDING_STATUSES = ("created", "sent", "partially_signed", "final", "broadcast")


@dataclass(frozen=True)
class Payment:
    address: str
    script_pubkey: bytes
    amount_sat: int

    def to_json(self) -> dict:
        return {"address": self.address, "amount_sat": self.amount_sat}


@dataclass(frozen=True)
class Change:
    index: int
    address: str
    amount_sat: int

    def to_json(self) -> dict:
        return {"index": self.index, "path": f"1/{self.index}", "address": self.address,
                "amount_sat": self.amount_sat}


@dataclass
class Withdrawal:
    """An unsigned withdrawal PSBT with what it does. `txid` is the txid it will have once signed."""

    psbt: object
    review: object
    payments: list[Payment]          # the amounts paid (after --subtract-fee)
    change: Change | None
    inputs: list[dict]               # {"outpoint", "amount_sat", "path"}
    fee_sat: int
    vsize: int                       # estimated, with worst-case signatures
    locktime: int
    algorithm: str
    warnings: list[str] = field(default_factory=list)

    @property
    def txid(self) -> str:
        return self.review.txid

    @property
    def fee_rate(self) -> float:
        return round(self.fee_sat / self.vsize, 2)

    def to_json(self) -> dict:
        return {"txid": self.txid, "fee_sat": self.fee_sat, "fee_rate_sat_vb": self.fee_rate,
                "vsize": self.vsize, "locktime": self.locktime, "inputs": self.inputs,
                "outputs": [p.to_json() for p in self.payments],
                "change": self.change.to_json() if self.change else None,
                "algorithm": self.algorithm, "warnings": self.warnings}


# ---------------------------------------------------------------- addresses

def payment(address: str, amount_sat: int, network: Network) -> Payment:
    """A payment to `address` on `network`, refused below the output's dust limit."""
    script = address_script(address, network)
    limit = S.dust_limit(script)
    if amount_sat < limit:
        raise BadInput(f"paying {amount_sat} sat to {address.strip()} is below the dust limit of {limit} sat",
                       hint="nodes do not relay outputs that cost more to spend than they hold")
    return Payment(address.strip(), script, amount_sat)


# ---------------------------------------------------------------- change index, locktime

def pending_change_indexes(wallet, psbts: Iterable) -> set[int]:
    """Change indexes (branch 1) that the outputs of these PSBTs pay: taken until they confirm."""
    taken = set()
    for psbt in psbts:
        for o in range(len(psbt.outputs)):
            view = psbt.output(o)
            derivations = [(fp, path) for fp, path in view.bip32_derivations.values()]
            derivations += [(fp, path) for _leaves, fp, path in view.tap_bip32_derivations.values()]
            for fp, path in derivations:
                located = wallet.locate(fp, path)
                if located and located[1] == 1 and wallet.script_pubkey(1, located[2]) == view.script:
                    taken.add(located[2])
    return taken


def choose_change_index(first_unused: int, used: set[int], pending: set[int]) -> int:
    """The lowest change index from `first_unused` that the chain never paid and no pending
    withdrawal pays."""
    index = first_unused
    while index in used or index in pending:
        index += 1
    return index


def anti_fee_sniping_locktime(tip_height: int, rng: random.Random | None = None) -> int:
    """Bitcoin Core's locktime for a new transaction: the tip height, sometimes up to 99 lower."""
    rng = rng if rng is not None else random.SystemRandom()
    locktime = tip_height
    if rng.randrange(ANTI_FEE_SNIPING_SHIFT_CHANCE) == 0:
        locktime = max(0, locktime - rng.randrange(ANTI_FEE_SNIPING_MAX_SHIFT))
    return locktime


# ---------------------------------------------------------------- the withdrawal

def build_withdrawal(wallet, coins: Sequence, payments: Sequence[Payment], *, fee_rate, change_index: int,
                     tip_height: int | None, previous_txs: Mapping[str, bytes],
                     chosen: Sequence[str] | None = None, label: str | None = None,
                     include_unconfirmed: bool = False, subtract_fee: bool = False,
                     reserved: Mapping[str, int] | None = None, wallet_name: str | None = None,
                     rng: random.Random | None = None) -> Withdrawal:
    """The unsigned withdrawal paying `payments` from the wallet's unspent `coins` (CoinRecords).

    `chosen` (outpoints) spends exactly those coins; `label` selects among the coins so labelled;
    otherwise every coin is a candidate. `previous_txs` maps txids to raw previous transactions
    (required for segwit v0 inputs). `reserved` maps outpoints to the id of a pending PSBT that
    already spends them (a warning). Refused when the wallet was never synced (`tip_height` None).
    """
    from coldsign.psbt.create import Coin, assemble_psbt
    from coldsign.psbt.review import review
    from coldsign.watch import coinselect as CS

    if tip_height is None:
        raise Refused("the wallet was never synced: its coins are unknown", code="never-synced",
                      hint="run `coldsign watch sync NAME` first")
    if not payments:
        raise BadInput("nothing to pay: give at least one --to ADDRESS:AMOUNT")
    if chosen is not None and label is not None:
        raise BadInput("choose coins by outpoint or by label, not both")
    rng = rng if rng is not None else random.SystemRandom()
    by_outpoint = {c.outpoint: c for c in coins}
    total = sum(p.amount_sat for p in payments)
    terms = CS.selection_terms(wallet, [p.script_pubkey for p in payments])

    def candidate(c):
        return CS.Candidate.for_wallet(wallet, c.outpoint, c.amount_sat, confirmed=c.height is not None,
                                       label=c.label)

    if chosen is not None:
        picked = []
        for outpoint in dict.fromkeys(o.strip().lower() for o in chosen):
            if outpoint not in by_outpoint:
                raise NotFound(f"coin {outpoint} is not an unspent coin of this wallet",
                               hint="list them with `coldsign watch utxos NAME` (after a sync)")
            if by_outpoint[outpoint].height is None and not include_unconfirmed:
                raise Refused(f"coin {outpoint} is unconfirmed", code="unconfirmed-coin",
                              hint="wait for it to confirm, or pass --include-unconfirmed")
            picked.append(candidate(by_outpoint[outpoint]))
        selection = CS.spend_coins(picked, total, fee_rate, subtract_fee=subtract_fee, **terms)
    else:
        pool = [c for c in coins if label is None or c.label == label]
        if label is not None and not pool:
            raise NotFound(f"no unspent coin of this wallet is labelled {label!r}",
                           hint="see the labels with `coldsign watch utxos NAME`")
        selection = CS.select_coins([candidate(c) for c in pool], total, fee_rate, subtract_fee=subtract_fee,
                                    include_unconfirmed=include_unconfirmed, rng=rng, **terms)

    paid = _subtract(payments, selection.fee_from_payments) if subtract_fee else list(payments)
    needs_previous = wallet.kind != "tr"   # BIP-371: taproot signatures commit to every spent amount
    spent, inputs, warnings = [], [], []
    for cand in selection.coins:
        record = by_outpoint[cand.outpoint]
        previous = previous_txs.get(record.txid)
        if needs_previous and previous is None:
            raise Refused(f"the previous transaction of coin {record.outpoint} is not in the database; "
                          "signers refuse segwit v0 inputs without it", code="missing-previous-tx",
                          hint="run `coldsign watch sync NAME` to fetch it")
        spent.append(Coin(record.txid, record.vout, record.amount_sat, record.script_pubkey, record.change,
                          record.index, previous_tx=previous if needs_previous else None))
        inputs.append({"outpoint": record.outpoint, "amount_sat": record.amount_sat,
                       "path": f"{record.change}/{record.index}", "confirmed": record.height is not None})
        if reserved and record.outpoint in reserved:
            warnings.append(f"coin {record.outpoint} is also spent by pending PSBT {reserved[record.outpoint]}; "
                            "only one of the two can confirm")
    change = None
    if selection.change_sat:
        change = Change(change_index, wallet.address(1, change_index), selection.change_sat)
    locktime = anti_fee_sniping_locktime(tip_height, rng)
    psbt = assemble_psbt(wallet, spent, [(p.script_pubkey, p.amount_sat) for p in paid],
                         (change.index, change.amount_sat) if change else None, locktime=locktime)
    result = review(psbt, wallet.network, wallet, wallet_name=wallet_name)
    _refuse_what_signers_refuse(result)
    fee = sum(c.amount_sat for c in spent) - sum(p.amount_sat for p in paid) - (change.amount_sat if change else 0)
    assert fee == selection.fee_sat, (fee, selection)  # the arithmetic of coinselect, carried exactly
    return Withdrawal(psbt, result, paid, change, inputs, fee, selection.vsize, locktime, selection.algorithm,
                      warnings)


def _subtract(payments: Sequence[Payment], fee: int) -> list[Payment]:
    """Split `fee` among the payments equally (the first pays the remainder, as Bitcoin Core does)."""
    share, rest = divmod(fee, len(payments))
    paid = []
    for n, p in enumerate(payments):
        amount = p.amount_sat - share - (rest if n == 0 else 0)
        limit = S.dust_limit(p.script_pubkey)
        if amount < limit:
            raise Refused(f"after subtracting its share of the {fee} sat fee, the payment to {p.address} "
                          f"would be {amount} sat, below the dust limit of {limit} sat",
                          code="payment-below-dust", hint="pay more, or do not subtract the fee")
        paid.append(Payment(p.address, p.script_pubkey, amount))
    return paid


def _refuse_what_signers_refuse(result) -> None:
    if result.refusals:
        raise Refused("the withdrawal would be refused by the signers: "
                      + "; ".join(f"[{f.code}] {f.message}" for f in result.refusals),
                      code="review-refused",
                      details=[{"code": f.code, "message": f.message} for f in result.refusals])


# ---------------------------------------------------------------- the replacement

def build_replacement(wallet, psbt, fee_rate, *, wallet_name: str | None = None) -> Withdrawal:
    """A BIP-125 replacement of the withdrawal `psbt` (unsigned or partly signed) at `fee_rate`
    sat/vB: same inputs, same payments, the change reduced; Refused (with the sat missing) when
    the change cannot pay the fee a replacement must pay."""
    from fractions import Fraction

    from coldsign.psbt import fields as C
    from coldsign.psbt.create import Coin, assemble_psbt
    from coldsign.psbt.review import review
    from coldsign.watch import coinselect as CS

    rate = Fraction(str(fee_rate)) if isinstance(fee_rate, float) else Fraction(fee_rate)
    if rate <= 0:
        raise BadInput(f"the fee rate must be above zero, got {fee_rate}")
    old = review(psbt, wallet.network, wallet, wallet_name=wallet_name)
    if old.fee_sat is None or any(not i.ours for i in old.inputs):
        raise Refused("only a withdrawal of this wallet whose every input is its own can be replaced",
                      code="not-ours")
    changes = [o for o in old.outputs if o.change]
    if len(changes) > 1:
        raise Refused("the withdrawal has more than one change output; coldsign replaces only its own "
                      "withdrawals (one change output)", code="not-ours")
    payments = [(o.script_pubkey, o.amount_sat) for o in old.outputs if not o.change]
    old_change = changes[0].amount_sat if changes else 0
    coins, candidates = [], []
    for item in old.inputs:
        previous = psbt.inputs[item.index].get(C.PSBT_IN_NON_WITNESS_UTXO)
        txid, vout = item.prevout.split(":")
        coins.append(Coin(txid, int(vout), item.amount_sat, item.script_pubkey, item.path[0], item.path[1],
                          previous_tx=previous))
        candidates.append(CS.Candidate.for_wallet(wallet, item.prevout, item.amount_sat))
    fixed = CS.fixed_weight([s for s, _ in payments])
    change_weight = CS.selection_terms(wallet, [])["change_output_weight"]
    available = old.fee_sat + old_change

    def needed(weight: int) -> tuple[int, int, int]:
        """(fee a replacement must pay, vsize, fee `rate` asks) for a transaction of `weight`."""
        vsize = S.vsize(weight)
        asked = math.ceil(rate * vsize)
        return max(asked, old.fee_sat + INCREMENTAL_RELAY_FEE_RATE * vsize), vsize, asked

    weight1 = CS.transaction_weight(candidates, fixed, change_weight if changes else 0)
    fee1, vsize1, asked1 = needed(weight1)
    if asked1 < fee1:
        minimum = Fraction(fee1, vsize1)
        raise Refused(f"at {fee_rate} sat/vB the replacement would pay {asked1} sat; BIP-125 needs at least "
                      f"{fee1} sat (the old fee of {old.fee_sat} sat plus {INCREMENTAL_RELAY_FEE_RATE} sat/vB "
                      f"on {vsize1} vB)", code="fee-too-low",
                      hint=f"use --fee-rate {math.ceil(minimum * 100) / 100} or more")
    change = None
    if changes and available - fee1 >= S.dust_limit(changes[0].script_pubkey):
        index = changes[0].path[1]
        change = Change(index, wallet.address(1, index), available - fee1)
        fee, vsize = fee1, vsize1
    else:
        weight0 = CS.transaction_weight(candidates, fixed)
        fee0, vsize0, _ = needed(weight0)
        if available < fee0:
            what = f"the change of {old_change} sat" if changes else "there is no change output to reduce and it"
            raise Refused(f"{what} cannot pay the replacement's fee: {fee0 - available} sat missing "
                          f"(fee needed {fee0} sat, old fee {old.fee_sat} sat)", code="change-too-small",
                          hint="pick a lower --fee-rate, or build a new withdrawal with more coins")
        fee, vsize = available, vsize0   # the change, now dust, goes to the miner
    new = assemble_psbt(wallet, coins, payments, (change.index, change.amount_sat) if change else None,
                        locktime=psbt.locktime)
    result = review(new, wallet.network, wallet, wallet_name=wallet_name)
    _refuse_what_signers_refuse(result)
    paid = [Payment(o.address or o.script_pubkey.hex(), o.script_pubkey, o.amount_sat)
            for o in old.outputs if not o.change]
    inputs = [{"outpoint": i.prevout, "amount_sat": i.amount_sat, "path": f"{i.path[0]}/{i.path[1]}"}
              for i in old.inputs]
    assert result.fee_sat == fee, (result.fee_sat, fee)
    return Withdrawal(new, result, paid, change, inputs, fee, vsize, psbt.locktime, "replacement")
