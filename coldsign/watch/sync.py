"""Sync a watch-only wallet with a chain source: find its scripts' coins and write them down.

How, in three steps:
  1. Ask. For the receive and then the change branch, derive scripts in batches from index 0 and
     ask `source.scan` about them, until `gap_limit` consecutive scripts after the last used one
     (used by the source's answer, or already marked used in the database) were never paid. A
     script at index last_used + gap_limit is still asked about; one further is not, until a
     payment closer in moves the gap.
  2. Fetch. The previous transaction of every coin new to the database (a PSBT's
     `non_witness_utxo`; not for taproot wallets, which never need it), checked against the coin
     (its txid, and the output's script and amount); and, for every coin the database holds
     unspent that the source no longer lists, the transaction among its script's history that
     spends it (else among every transaction the sync saw, then the transactions stored here: a
     source such as Bitcoin Core lists only what paid a script). A coin whose creating
     transaction left the script's history was undone by a reorg and is forgotten; so is a coin
     gone by a spender that a source which does not list spends (`lists_spends` False) cannot show.
  3. Write, in ONE SQLite transaction: scripts derived and marked used, coins added, coins
     spent, coins forgotten, heights changed (a reorg, or a mempool coin confirmed), the
     previous transactions, and the tip. A failed, interrupted or killed sync changes nothing.

Everything the source says is checked for shape (one answer per script, in order, each coin
paying the script it was asked about); an answer that makes no sense is an EnvironmentProblem
naming the source. Sources raise their own EnvironmentProblem when unreachable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from coldsign.amounts import MAX_MONEY_SAT
from coldsign.chain.source import ChainSource, ScriptActivity, Tip
from coldsign.errors import EnvironmentProblem, UsageProblem
from coldsign.watch.db import MAX_GAP_LIMIT, Balance, CoinRecord, WatchDB

# Scripts asked about in one `scan` call: big enough to keep round trips few, small enough
# that one answer stays a modest document for an HTTP source.
SCAN_BATCH = 200
_TXID_RE = re.compile(r"[0-9a-f]{64}")
# A block height is below 500,000,000: consensus reads a larger locktime as a time, and the tip
# becomes the next withdrawal's anti-fee-sniping locktime (and SQLite stores at most 2**63 - 1).
MAX_HEIGHT = 500_000_000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SyncResult:
    wallet: str
    tip: Tip
    new_coins: list[str] = field(default_factory=list)        # outpoints first seen
    spent_coins: list[str] = field(default_factory=list)      # outpoints spent since the last sync
    forgotten_coins: list[str] = field(default_factory=list)  # outpoints a reorg undid
    moved_coins: list[str] = field(default_factory=list)      # outpoints whose height changed
    balance: Balance = Balance(0, 0)
    highest_used: dict[int, int | None] = field(default_factory=dict)  # branch -> index
    scripts_scanned: int = 0

    def to_json(self) -> dict:
        return {"wallet": self.wallet, "tip": {"height": self.tip.height, "block_hash": self.tip.block_hash},
                "new_coins": self.new_coins, "spent_coins": self.spent_coins,
                "forgotten_coins": self.forgotten_coins, "moved_coins": self.moved_coins,
                "balance": self.balance.to_json(),
                "highest_used": {"receive": self.highest_used.get(0), "change": self.highest_used.get(1)},
                "scripts_scanned": self.scripts_scanned}


@dataclass(frozen=True)
class _Found:
    """A coin the source lists now, at (change, index)."""

    outpoint: str
    txid: str
    vout: int
    amount_sat: int
    height: int | None
    change: int
    index: int
    script_pubkey: bytes


def sync(db: WatchDB, wallet_name: str, source: ChainSource, *, gap_limit: int | None = None,
         progress: Progress | None = None) -> SyncResult:
    """Bring the wallet's scripts, coins and transactions up to what `source` knows now.

    `gap_limit` defaults to the wallet's own (set at import, 20 unless chosen); `progress(done,
    total_guess)` is called after each batch of scripts (the guess grows as used scripts are found).
    """
    record = db.wallet(wallet_name)
    gap = record.gap_limit if gap_limit is None else gap_limit
    if not 1 <= gap <= MAX_GAP_LIMIT:
        raise UsageProblem(f"gap limit must be between 1 and {MAX_GAP_LIMIT}, got {gap}")
    descriptor = record.parse()
    before = {c.outpoint: c for c in db.coins(wallet_name, include_spent=True)}
    tip = source.tip()
    if not (isinstance(tip.height, int) and 0 <= tip.height < MAX_HEIGHT) or not _TXID_RE.fullmatch(tip.block_hash):
        raise _nonsense(source, f"the tip at height {str(tip.height)[:20]} with hash {str(tip.block_hash)[:70]!r}")

    # 1. ask
    asked: dict[tuple[int, int], tuple[bytes, ScriptActivity]] = {}
    highest: dict[int, int | None] = {}
    marked = {0: -1, 1: -1}
    for script in db.scripts(wallet_name):
        if script.used:
            marked[script.change] = max(marked[script.change], script.index)
    done = 0
    for change in (0, 1):
        last_used, scanned = marked[change], 0
        while scanned < last_used + 1 + gap:
            end = min(last_used + 1 + gap, scanned + SCAN_BATCH)
            scripts = [descriptor.script_pubkey(change, i) for i in range(scanned, end)]
            for i, (script, activity) in enumerate(zip(scripts, _scan(source, scripts)), scanned):
                asked[(change, i)] = (script, activity)
                if activity.used:
                    last_used = max(last_used, i)
            done += end - scanned
            scanned = end
            if progress is not None:
                to_go = (last_used + 1 + gap - scanned) + (marked[1] + 1 + gap if change == 0 else 0)
                progress(done, done + max(0, to_go))
        highest[change] = last_used if last_used >= 0 else None

    found: dict[str, _Found] = {}
    for (change, index), (script, activity) in asked.items():
        for coin in activity.unspent:
            if coin.outpoint in found:
                raise _nonsense(source, f"coin {coin.outpoint} listed for two scripts")
            found[coin.outpoint] = _Found(coin.outpoint, coin.txid, coin.vout, coin.amount_sat,
                                          coin.height, change, index, script)

    # 2. fetch
    needs_previous = descriptor.kind != "tr"
    known_txids = db.known_txids()
    previous: dict[str, tuple[bytes, int | None]] = {}
    for coin in found.values():
        if not needs_previous or coin.outpoint in before:
            continue
        # NOTE: every coin new to the database is checked against its transaction, also when that
        # transaction is already known (another of its outputs was checked, now or in an earlier
        # sync): else a source could add an output that does not exist, or another amount.
        if coin.txid in previous:
            raw = previous[coin.txid][0]
        elif coin.txid in known_txids and (stored := db.transaction_raw(coin.txid)) is not None:
            raw = stored
        else:
            raw = source.transaction(coin.txid)
            previous[coin.txid] = (raw, coin.height)
        _check_coin(source, raw, coin)
    spent: dict[str, str] = {}
    forgotten: list[str] = []
    fetched: dict[str, object] = {}
    seen: list[str] | None = None
    stored: dict[str, bytes] | None = None
    for outpoint, held in before.items():
        if held.spent_by is not None or outpoint in found:
            continue
        _, activity = asked[(held.change, held.index)]
        if held.txid not in activity.txids:
            forgotten.append(outpoint)
            continue
        spender = _find_spender(source, held, activity.txids, fetched)
        if spender is None:
            # The spender is often not in the script's own history as a source tells it (Bitcoin
            # Core's wallet lists only what paid an address): look among every transaction this
            # sync saw (a withdrawal pays its change to us), then the withdrawals stored here.
            # Both lists are gathered once, at the first coin that needs them.
            if seen is None:
                seen = list(dict.fromkeys(t for _, a in asked.values() for t in a.txids))
            spender = _find_spender(source, held, seen, fetched)
            if spender is None:
                if stored is None:
                    stored = {t: raw for t in known_txids if (raw := db.transaction_raw(t)) is not None}
                spender = _find_spender(source, held, list(stored), fetched, stored)
        if spender is None and getattr(source, "lists_spends", True):
            raise _nonsense(source, f"coin {outpoint} is no longer unspent, yet no transaction "
                                    f"in its script's history spends it")
        if spender is None:
            forgotten.append(outpoint)   # gone, by a transaction this source cannot show
            continue
        spent[outpoint] = spender

    # 3. write, all or nothing
    new, moved = [], []
    with db.transaction():
        now_unspent = {c.outpoint for c in db.coins(wallet_name)}
        if now_unspent != {o for o, c in before.items() if c.spent_by is None}:
            raise EnvironmentProblem("the wallet changed while it was syncing (another sync ran)",
                                     where=wallet_name, hint="run the sync again")
        for (change, index), (script, activity) in asked.items():
            db.record_script(record.id, change, index, script, descriptor.address(change, index),
                             activity.used)
        for txid, (raw, height) in previous.items():
            db.put_transaction(txid, raw, height)
        for outpoint, coin in found.items():
            held = before.get(outpoint)
            if held is None:
                new.append(outpoint)
            elif held.height != coin.height or held.spent_by is not None:
                moved.append(outpoint)   # a reorg moved it, confirmed it, or undid its spend
                db.put_transaction(coin.txid, None, coin.height)
            db.put_coin(record.id, outpoint, coin.change, coin.index, coin.amount_sat, coin.height)
        for outpoint, spender in spent.items():
            db.mark_spent(record.id, outpoint, spender)
        for outpoint in forgotten:
            db.forget_coin(record.id, outpoint)
        db.set_tip(record.id, tip.height, tip.block_hash)
    return SyncResult(wallet_name, tip, sorted(new), sorted(spent), sorted(forgotten), sorted(moved),
                      db.balance(wallet_name), highest, len(asked))


def _nonsense(source: ChainSource, what: str) -> EnvironmentProblem:
    return EnvironmentProblem(f"the chain source answered nonsense: {what}", where=source.description,
                              hint="check that the source follows the same network and is healthy")


def _scan(source: ChainSource, scripts: list[bytes]) -> list[ScriptActivity]:
    answers = list(source.scan(scripts))
    if len(answers) != len(scripts):
        raise _nonsense(source, f"{len(answers)} answers for {len(scripts)} scripts")
    for script, activity in zip(scripts, answers):
        if bytes(activity.script_pubkey) != script:
            raise _nonsense(source, f"an answer about script {bytes(activity.script_pubkey).hex()} "
                                    f"where {script.hex()} was asked")
        if activity.unspent and not activity.used:
            raise _nonsense(source, f"script {script.hex()} holds coins but is said unused")
        for txid in activity.txids:
            if not _TXID_RE.fullmatch(txid):
                raise _nonsense(source, f"{txid!r} is not a txid")
        for coin in activity.unspent:
            if (not _TXID_RE.fullmatch(coin.txid) or not 0 <= coin.vout < 2**32
                    or not 0 <= coin.amount_sat <= MAX_MONEY_SAT
                    or (coin.height is not None and not 0 <= coin.height < MAX_HEIGHT)):
                raise _nonsense(source, f"coin {coin.outpoint} of {coin.amount_sat} sat "
                                        f"at height {coin.height}")
            if bytes(coin.script_pubkey) != script:
                raise _nonsense(source, f"coin {coin.outpoint} does not pay the script it is listed for")
    return answers


def _parse(source: ChainSource, raw: bytes, txid: str):
    from embit.transaction import Transaction

    try:
        tx = Transaction.parse(bytes(raw))
    except Exception as e:  # embit raises several kinds on garbage
        raise _nonsense(source, f"transaction {txid} does not decode: {e or type(e).__name__}") from None
    if tx.txid().hex() != txid:
        raise _nonsense(source, f"asked for transaction {txid}, got {tx.txid().hex()}")
    return tx


def _check_coin(source: ChainSource, raw: bytes, coin: _Found) -> None:
    """`raw` is the transaction `coin` says it comes from, and its output pays what the coin says."""
    tx = _parse(source, raw, coin.txid)
    if coin.vout >= len(tx.vout):
        raise _nonsense(source, f"transaction {coin.txid} has no output {coin.vout}")
    out = tx.vout[coin.vout]
    if out.value != coin.amount_sat or out.script_pubkey.data != coin.script_pubkey:
        raise _nonsense(source, f"output {coin.outpoint} pays {out.value} sat to another script "
                                f"or amount than the coin listed ({coin.amount_sat} sat)")


def _find_spender(source: ChainSource, held: CoinRecord, txids, fetched: dict,
                  known: dict[str, bytes] | None = None) -> str | None:
    """The txid among `txids` whose inputs spend `held`, or None. Transactions are read from
    `known` (raw, by txid) when there, else fetched from the source; parsed ones are kept in `fetched`."""
    wanted = (bytes.fromhex(held.txid), held.vout)
    for txid in txids:
        if txid == held.txid:
            continue
        if txid not in fetched:
            raw = known[txid] if known is not None and txid in known else source.transaction(txid)
            fetched[txid] = _parse(source, raw, txid)
        if any((inp.txid, inp.vout) == wanted for inp in fetched[txid].vin):
            return txid
    return None
