"""Coin selection for `watch send`: which coins to spend, the fee, and whether there is change (pure).

Sizes. Every candidate coin carries the weight of its input once signed, from the wallet kind
(`coldsign.psbt.scripts.input_weight`): P2WPKH 272 WU, P2SH-P2WPKH 364 WU, P2WSH multisig with M
worst-case 72-byte ECDSA signatures plus the witness script, taproot key path 230 WU (a 64-byte
SIGHASH_DEFAULT signature). A transaction weighs `fixed_weight` (version, locktime, output count,
the payment outputs, segwit marker and flag) + the input count's compact size + the inputs (+ the
change output); its virtual size is ceil(weight / 4) (BIP-141) and the fee needed at rate r is
ceil(r * vsize). With change the fee is exactly that, and a changeless set leaves the miner at most
1 sat/vB more, so the rate is honoured to within 1 sat/vB; only change below the dust limit,
dropped into the fee, can make it more.

Algorithms. Branch and bound first (Murch, "An Evaluation of Coin Selection Strategies", 2016, as
Bitcoin Core runs it): a depth-first search over the coins, largest effective value first, for a
set whose effective value lands in [target, target + cost of change], so that no change output is
needed, and whose leftover, given to the miner, keeps the fee within 1 sat/vB of the rate (Bitcoin
Core would give up to the whole cost of change); at most `max_tries` steps. When it finds none, fallbacks that make change — largest-first
and a few single random draws — and the one with the least waste wins.

Waste (Bitcoin Core's metric), in sat:
    sum over inputs of (fee_rate - long_term_fee_rate) * input_vsize
    + cost of change (fee_rate * change_output_vsize + long_term_fee_rate * change_spend_vsize)
      when there is change, else the excess given to the miner beyond the fee needed.
Spending many coins when fees are low (below the long-term rate) is negative waste, a
consolidation; when fees are high, fewer inputs win.

Effective value = amount - fee_rate * input_weight / 4. Coins whose effective value is not
positive cost more to spend than they hold and are left out of automatic selection (coin control
still spends them when asked). All arithmetic is exact: rates become fractions and values are
scaled to integers, so the search compares integers and the final fee is computed on the exact
vsize.

No selection makes a transaction heavier than Bitcoin Core's standard limit (400,000 WU): the
search prunes such sets and the refusal says so ("too-many-inputs").

`subtract_fee`: the coins need only cover the payments; the fee comes out of them and the
selection says how much (`fee_from_payments`); the caller splits it among the payments.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence

from coldsign.errors import BadInput, Refused
from coldsign.psbt import scripts as S

BNB_MAX_TRIES = 100_000
# Bitcoin Core's -consolidatefeerate default: the rate a coin is expected to cost to spend later.
DEFAULT_LONG_TERM_FEE_RATE = 10
SINGLE_RANDOM_DRAWS = 8
# Bitcoin Core relays no transaction heavier than this (MAX_STANDARD_TX_WEIGHT).
MAX_STANDARD_WEIGHT = 400_000

_WALLET_INPUT_KIND = {"wpkh": S.P2WPKH, "sh-wpkh": S.P2SH_P2WPKH, "tr": S.P2TR,
                      "wsh-multi": S.P2WSH, "wsh-sortedmulti": S.P2WSH}


@dataclass(frozen=True)
class Candidate:
    """A coin that may be spent: outpoint "txid:vout", amount, and the weight of its signed input."""

    outpoint: str
    amount_sat: int
    input_weight: int
    confirmed: bool = True
    label: str | None = None

    @classmethod
    def for_wallet(cls, wallet, outpoint: str, amount_sat: int, *, confirmed: bool = True,
                   label: str | None = None) -> "Candidate":
        return cls(outpoint, amount_sat, wallet_input_weight(wallet), confirmed, label)


@dataclass(frozen=True)
class Selection:
    """The coins to spend and what becomes of their value: inputs = payments - fee_from_payments
    + change_sat + fee_sat. `weight` is the estimated weight of the signed transaction."""

    coins: tuple[Candidate, ...]
    fee_sat: int
    change_sat: int           # 0: no change output
    waste: int                # sat, rounded; see the module docstring
    algorithm: str            # bnb | largest-first | single-random-draw | all-coins | manual
    weight: int
    fee_from_payments: int = 0

    @property
    def inputs_sat(self) -> int:
        return sum(c.amount_sat for c in self.coins)

    @property
    def vsize(self) -> int:
        return S.vsize(self.weight)

    def to_json(self) -> dict:
        return {"coins": [c.outpoint for c in self.coins], "inputs_sat": self.inputs_sat,
                "fee_sat": self.fee_sat, "change_sat": self.change_sat,
                "fee_from_payments": self.fee_from_payments, "vsize": self.vsize,
                "waste": self.waste, "algorithm": self.algorithm}


# ---------------------------------------------------------------- sizes of a wallet's transactions

def wallet_input_weight(wallet) -> int:
    """Weight of one signed input of `wallet` (worst-case ECDSA signatures; taproot key path)."""
    kind = _WALLET_INPUT_KIND.get(wallet.kind)
    if kind is None:
        raise BadInput(f"cannot size inputs of a {wallet.kind} wallet")
    if kind != S.P2WSH:
        return S.input_weight(kind)
    script = wallet.witness_script(0, 0)   # multisig of compressed keys: the same size at every index
    return S.input_weight(kind, threshold=wallet.threshold, witness_script_len=len(script))


def fixed_weight(payment_scripts: Sequence[bytes]) -> int:
    """Weight of a segwit transaction without its inputs, input count and change output: version,
    locktime, marker and flag, output count and the payment outputs. The output count counts a
    change output whether or not there will be one (at most 2 bytes too many, at 252 payments)."""
    return ((4 + 4 + S.compact_size_len(len(payment_scripts) + 1)) * 4 + 2
            + sum(S.output_weight(s) for s in payment_scripts))


def selection_terms(wallet, payment_scripts: Sequence[bytes]) -> dict:
    """The size arguments of `select_coins`/`spend_coins` for `wallet` paying `payment_scripts`,
    change going to the wallet's change branch."""
    change_script = wallet.script_pubkey(1, 0)   # every change script of a wallet has one size
    return {"fixed_weight": fixed_weight(payment_scripts),
            "change_output_weight": S.output_weight(change_script),
            "change_spend_weight": wallet_input_weight(wallet),
            "dust_limit": S.dust_limit(change_script)}


def transaction_weight(coins: Iterable[Candidate], fixed: int, change_output_weight: int = 0) -> int:
    """Estimated weight once signed: fixed part + input count + inputs (+ change output)."""
    weights = [c.input_weight for c in coins]
    return fixed + S.compact_size_len(len(weights)) * 4 + sum(weights) + change_output_weight


# ---------------------------------------------------------------- the public entry points

def select_coins(candidates: Sequence[Candidate], payments_total: int, fee_rate, *, fixed_weight: int,
                 change_output_weight: int, change_spend_weight: int, dust_limit: int,
                 subtract_fee: bool = False, long_term_fee_rate=None, include_unconfirmed: bool = False,
                 rng: random.Random | None = None, max_tries: int = BNB_MAX_TRIES) -> Selection:
    """Choose coins among `candidates` paying `payments_total` sat at `fee_rate` sat/vB.

    Unconfirmed candidates are eligible only with `include_unconfirmed`. `rng` drives the single
    random draws (a seeded `random.Random` makes the result reproducible; by default the system's
    randomness). Refused (exit 4) when the eligible coins cannot pay.
    """
    _refuse_duplicates(candidates, "offered")
    if payments_total <= 0:
        raise BadInput(f"nothing to pay (the payments total {payments_total} sat); to move coins without "
                       "a payment, choose them (coin control)")
    p = _Problem(payments_total, fee_rate, long_term_fee_rate, fixed_weight, change_output_weight,
                 change_spend_weight, dust_limit, subtract_fee)
    eligible = [c for c in candidates if c.confirmed or include_unconfirmed]
    pool = sorted((c for c in eligible if p.value(c) > 0), key=lambda c: (-p.value(c), c.outpoint))
    found = _branch_and_bound(p, pool, max_tries)
    if found is not None:
        return _in_given_order(p.settle(found, "bnb", allow_change=False), candidates)
    best = None
    rng = rng if rng is not None else random.SystemRandom()
    tries = [("largest-first", _largest_first(p, pool))]
    tries += [("single-random-draw", _single_random_draw(p, pool, rng)) for _ in range(SINGLE_RANDOM_DRAWS)]
    for name, coins in tries:
        if coins is None:
            continue
        chosen = p.settle(coins, name)
        if best is None or (chosen.waste, len(chosen.coins)) < (best.waste, len(best.coins)):
            best = chosen
    if best is not None:
        return _in_given_order(best, candidates)
    # Coins worth less than their own input fee can still tip an exact rounding; last, try them all.
    if eligible and p.affordable(eligible) and not _heavy(p, eligible):
        return _in_given_order(p.settle(eligible, "all-coins"), candidates)
    if eligible and p.affordable(eligible):
        raise Refused(f"the payments need more coins than fit in a standard transaction "
                      f"({MAX_STANDARD_WEIGHT:,} WU)", code="too-many-inputs",
                      hint="consolidate small coins first (coin control), or pay in several transactions")
    raise _insufficient(p, eligible, [c for c in candidates if not (c.confirmed or include_unconfirmed)])


def spend_coins(coins: Sequence[Candidate], payments_total: int, fee_rate, *, fixed_weight: int,
                change_output_weight: int, change_spend_weight: int, dust_limit: int,
                subtract_fee: bool = False, long_term_fee_rate=None) -> Selection:
    """Coin control: spend exactly `coins` (all of them), computing the fee and change.
    The caller has decided these coins are wanted, unconfirmed or not. Refused when they cannot pay."""
    if not coins:
        raise BadInput("no coins chosen to spend")
    _refuse_duplicates(coins, "chosen")
    p = _Problem(payments_total, fee_rate, long_term_fee_rate, fixed_weight, change_output_weight,
                 change_spend_weight, dust_limit, subtract_fee)
    if not p.affordable(coins):
        raise _insufficient(p, list(coins), [], chosen=True)
    if _heavy(p, coins):
        raise Refused(f"{len(coins)} inputs make a transaction heavier than the standard limit "
                      f"({MAX_STANDARD_WEIGHT:,} WU); nodes would not relay it", code="too-many-inputs",
                      hint="choose fewer coins")
    return p.settle(list(coins), "manual")


# ---------------------------------------------------------------- the arithmetic

def _rate(value, name: str) -> Fraction:
    """A fee rate in sat/vB as an exact fraction; floats are read as the decimal they print as."""
    try:
        rate = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise BadInput(f"{name} must be a number of sat/vB, got {value!r}") from None
    if rate < 0:
        raise BadInput(f"{name} must not be negative, got {value}")
    return rate


class _Problem:
    """One selection problem with every value scaled to integers of 1/scale sat."""

    def __init__(self, payments_total: int, fee_rate, long_term_fee_rate, fixed: int, change_output_weight: int,
                 change_spend_weight: int, dust_limit: int, subtract_fee: bool):
        if payments_total < 0:
            raise BadInput(f"the payments total must not be negative, got {payments_total}")
        for name, value in (("fixed_weight", fixed), ("change_output_weight", change_output_weight),
                            ("change_spend_weight", change_spend_weight), ("dust_limit", dust_limit)):
            if value < 0:
                raise BadInput(f"{name} must not be negative, got {value}")
        self.payments = payments_total
        self.rate = _rate(fee_rate, "fee rate")
        self.long_term = _rate(DEFAULT_LONG_TERM_FEE_RATE if long_term_fee_rate is None else long_term_fee_rate,
                               "long-term fee rate")
        self.fixed, self.change_out, self.change_spend = fixed, change_output_weight, change_spend_weight
        self.dust, self.subtract_fee = dust_limit, subtract_fee
        # 1 sat = scale units; a weight unit at rate r costs r / 4 sat = r * d units (integer).
        d = math.lcm(self.rate.denominator, self.long_term.denominator)
        self.scale = 4 * d
        self.rate_units = int(self.rate * d)
        self.long_term_units = int(self.long_term * d)

    # -- scaled values used by the search
    def value(self, c: Candidate) -> int:
        """What a coin brings towards the target: its amount less its input fee (its whole amount
        when the fee is subtracted from the payments)."""
        fee = 0 if self.subtract_fee else self.rate_units * c.input_weight
        return c.amount_sat * self.scale - fee

    def input_waste(self, c: Candidate) -> int:
        return (self.rate_units - self.long_term_units) * c.input_weight

    def target(self, inputs: int) -> int:
        """Lowest scaled value that can pay the payments and the no-change fee (exactness is checked
        by `affordable`)."""
        fee = 0 if self.subtract_fee else self.rate_units * (self.fixed + S.compact_size_len(inputs) * 4)
        return self.payments * self.scale + fee

    def cost_of_change(self) -> int:
        return self.rate_units * self.change_out + self.long_term_units * self.change_spend

    # -- exact sat amounts of a chosen set
    def fee_for(self, weight: int) -> int:
        return -(-self.rate.numerator * S.vsize(weight) // self.rate.denominator)

    def affordable(self, coins: Sequence[Candidate]) -> bool:
        return self.fits(sum(c.amount_sat for c in coins), sum(c.input_weight for c in coins), len(coins))

    def too_heavy(self, input_weights: int, count: int) -> bool:
        """Whether such inputs make a transaction (with change) heavier than the standard limit."""
        return self.fixed + S.compact_size_len(count) * 4 + input_weights + self.change_out > MAX_STANDARD_WEIGHT

    def fits(self, inputs: int, input_weights: int, count: int) -> bool:
        """Whether `count` coins holding `inputs` sat, weighing `input_weights`, pay without change."""
        fee = self.fee_for(self.fixed + S.compact_size_len(count) * 4 + input_weights)
        if self.subtract_fee:   # the payments carry what the leftover cannot: at most all of them
            return inputs >= self.payments and inputs >= fee
        return inputs >= self.payments + fee

    def near_rate(self, inputs: int, input_weights: int, count: int) -> bool:
        """Whether giving all that is left over to the miner (no change) keeps the fee within
        1 sat/vB of the rate: a changeless set that would overpay more is no solution."""
        weight = self.fixed + S.compact_size_len(count) * 4 + input_weights
        return inputs - self.payments <= self.fee_for(weight) + S.vsize(weight)

    def makes_change(self, inputs: int, input_weights: int, count: int) -> bool:
        """Whether such coins leave a change output above dust."""
        weight = self.fixed + S.compact_size_len(count) * 4 + input_weights + self.change_out
        if self.subtract_fee:
            return inputs - self.payments >= self.dust and self.fee_for(weight) <= self.payments
        return inputs - self.payments - self.fee_for(weight) >= self.dust

    def settle(self, coins: Sequence[Candidate], algorithm: str, *, allow_change: bool = True) -> Selection:
        """Fee and change of spending `coins` (which `affordable` accepted)."""
        coins = tuple(coins)
        inputs = sum(c.amount_sat for c in coins)
        weight0 = transaction_weight(coins, self.fixed)
        weight1 = weight0 + self.change_out
        fee0, fee1 = self.fee_for(weight0), self.fee_for(weight1)
        if self.subtract_fee:
            change = inputs - self.payments
            if allow_change and change >= self.dust and fee1 <= self.payments:
                fee, from_payments, weight = fee1, fee1, weight1
            elif allow_change and change >= self.dust:
                # NOTE: the leftover is the wallet's change, not the miner's: giving it away because
                # the payments cannot carry the change output's fee would overpay by all of it.
                raise Refused(f"the fee of {fee1} sat is more than the payments ({self.payments} sat) "
                              "it would be subtracted from", code="fee-exceeds-payments",
                              hint="pay more, lower the fee rate, or do not subtract the fee")
            else:
                change, fee, from_payments, weight = 0, max(fee0, change), max(0, fee0 - change), weight0
        else:
            change = inputs - self.payments - fee1
            if allow_change and change >= self.dust:
                fee, weight = fee1, weight1
            else:
                change, fee, weight = 0, inputs - self.payments, weight0
            from_payments = 0
        if from_payments > self.payments:
            raise Refused(f"the fee of {from_payments} sat is more than the payments ({self.payments} sat) "
                          "it would be subtracted from", code="fee-exceeds-payments")
        waste = sum(Fraction(self.input_waste(c), self.scale) for c in coins)
        if change:
            waste += Fraction(self.cost_of_change(), self.scale)
        else:
            waste += fee - self.rate * Fraction(weight0, 4)   # given to the miner beyond the rate
        return Selection(coins, fee, change, round(waste), algorithm, weight, from_payments)


def _refuse_duplicates(coins: Sequence[Candidate], how: str) -> None:
    seen = set()
    for c in coins:
        if c.outpoint in seen:
            raise BadInput(f"coin {c.outpoint} is {how} twice")
        seen.add(c.outpoint)


def _heavy(p: _Problem, coins: Sequence[Candidate]) -> bool:
    return p.too_heavy(sum(c.input_weight for c in coins), len(coins))


def _insufficient(p: _Problem, eligible: list[Candidate], unconfirmed: list[Candidate], *,
                  chosen: bool = False) -> Refused:
    holds = sum(c.amount_sat for c in eligible)
    fee = p.fee_for(transaction_weight(eligible, p.fixed))
    need = p.payments if p.subtract_fee else p.payments + fee
    if p.subtract_fee and holds >= p.payments:
        message = (f"insufficient funds: the fee of {fee} sat is more than the payments ({p.payments} sat) "
                   f"and the {holds - p.payments} sat left over")
    else:
        which = "the chosen coins" if chosen else "the eligible coins"
        message = f"insufficient funds: need {need} sat, {which} hold {holds} sat"
    hint = None
    if unconfirmed:
        held = sum(c.amount_sat for c in unconfirmed)
        message += (f"; {len(unconfirmed)} unconfirmed coin{'s' if len(unconfirmed) != 1 else ''} "
                    f"holding {held} sat not counted")
        hint = "wait for them to confirm, or allow unconfirmed coins explicitly"
    details = [{"code": "unconfirmed-not-counted", "message": c.outpoint} for c in unconfirmed]
    return Refused(message, hint=hint, code="insufficient-funds", details=details)


def _in_given_order(selection: Selection, candidates: Sequence[Candidate]) -> Selection:
    rank = {c.outpoint: i for i, c in enumerate(candidates)}
    ordered = tuple(sorted(selection.coins, key=lambda c: rank[c.outpoint]))
    return Selection(ordered, selection.fee_sat, selection.change_sat, selection.waste, selection.algorithm,
                     selection.weight, selection.fee_from_payments)


# ---------------------------------------------------------------- the algorithms

def _branch_and_bound(p: _Problem, pool: list[Candidate], max_tries: int) -> list[Candidate] | None:
    """Depth-first search for a changeless set; `pool` is sorted by value, largest first.

    At each step the next coin is included (first) or left out. A set that pays is recorded and
    not extended further (as in Bitcoin Core). A branch is abandoned when even
    all remaining coins cannot reach the target, when it overshoots target + cost of change, or,
    at fee rates above the long-term rate (where each input adds waste), when its waste already
    exceeds the best found. Leaving out a coin and then including an identical next one would
    only repeat the search, so that is skipped. The least-waste solution within `max_tries`
    steps wins (ties: the later one, which has fewer or smaller coins)."""
    n = len(pool)
    if n == 0:
        return None
    values = [p.value(c) for c in pool]
    wastes = [p.input_waste(c) for c in pool]
    after = [0] * (n + 1)                     # after[i]: the value of pool[i:]
    for i in range(n - 1, -1, -1):
        after[i] = after[i + 1] + values[i]
    # The target depends on the input count only through its compact size; search with the
    # largest it can be and check each solution exactly.
    target = p.target(n)
    upper = target + p.cost_of_change()
    if after[0] < target:
        return None
    waste_grows = p.rate_units > p.long_term_units
    path: list[tuple[int, bool]] = []         # (pool index, included)
    value = waste = amount = weight = count = 0   # of the included coins
    best: list[int] | None = None
    best_waste = None
    for _ in range(max_tries):
        i = len(path)
        back = False
        if value + after[i] < target or value > upper or p.too_heavy(weight, count) or \
                (waste_grows and best_waste is not None and waste > best_waste):
            back = True
        elif value >= target:
            if count and p.fits(amount, weight, count) and p.near_rate(amount, weight, count):
                total = waste + value - target
                if best_waste is None or total <= best_waste:
                    best, best_waste = [j for j, inc in path if inc], total
                back = True
        if back or i == n:
            while path and not path[-1][1]:
                path.pop()
            if not path:
                break
            j, _ = path.pop()
            value, waste = value - values[j], waste - wastes[j]
            amount, weight, count = amount - pool[j].amount_sat, weight - pool[j].input_weight, count - 1
            path.append((j, False))
            continue
        same_as_left_out = path and path[-1] == (i - 1, False) and values[i] == values[i - 1] and \
            wastes[i] == wastes[i - 1]
        if same_as_left_out:
            path.append((i, False))
        else:
            path.append((i, True))
            value, waste = value + values[i], waste + wastes[i]
            amount, weight, count = amount + pool[i].amount_sat, weight + pool[i].input_weight, count + 1
    return None if best is None else [pool[j] for j in best]


def _largest_first(p: _Problem, pool: list[Candidate]) -> list[Candidate] | None:
    """Coins by value, largest first, until they pay (with change if there is enough left)."""
    inputs = weights = 0
    for n, c in enumerate(pool, 1):
        inputs, weights = inputs + c.amount_sat, weights + c.input_weight
        if p.too_heavy(weights, n):
            return None
        if p.fits(inputs, weights, n):
            return pool[:n]
    return None


def _single_random_draw(p: _Problem, pool: list[Candidate], rng: random.Random) -> list[Candidate] | None:
    """Coins in random order until they pay the target, a change output and change above dust
    (Bitcoin Core's SRD); falls back to merely paying when the pool cannot make change."""
    order = list(pool)
    rng.shuffle(order)
    inputs = weights = 0
    first_affordable = None
    for n, c in enumerate(order, 1):
        inputs, weights = inputs + c.amount_sat, weights + c.input_weight
        if p.too_heavy(weights, n):
            break
        if not p.fits(inputs, weights, n):
            continue
        if first_affordable is None:
            first_affordable = n
        if p.makes_change(inputs, weights, n):
            return order[:n]
    return None if first_affordable is None else order[:first_affordable]
