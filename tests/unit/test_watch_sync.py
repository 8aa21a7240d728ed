"""The sync engine (coldsign.watch.sync) against an in-memory chain source.

`MemoryChain` is a test double of the ChainSource *interface* (not of any real source): it keeps
outputs in a dict and builds real, parseable transactions for them (walletkit.previous_tx), so
the engine's checks of previous transactions run on real bytes. Spends are real transactions
too (one input, paying walletkit.EXTERNAL_SCRIPT).

Fixtures in words: the wallet "hot" is alice's single-key wpkh on regtest; the chain tip starts
at height 200. Unless a test says otherwise the gap limit is 5, so a first sync with no coins
asks about receive 0..4 and change 0..4.
"""

from __future__ import annotations

import sqlite3

import pytest

import walletkit as W
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.errors import EnvironmentProblem
from coldsign.watch.db import Balance, WatchDB
from coldsign.watch.sync import sync


class MemoryChain:
    """An in-memory ChainSource: outputs by outpoint, the transactions that made and spent them."""

    description = "the in-memory test chain"

    def __init__(self):
        self.height = 200
        self.outputs: dict[tuple[str, int], dict] = {}   # (txid, vout) -> script, amount, height, spent_by
        self.raw: dict[str, bytes] = {}
        self.scans: list[int] = []                       # how many scripts each scan asked about
        self.fetches: list[str] = []
        self.mined: dict[str, int] = {}                  # spends placed in a block: txid -> height
        self.height_asks: list[str] = []                 # the txids tx_height was asked about
        self._salt = 1000

    # -- shaping the chain
    def pay(self, script: bytes, amount: int, height: int | None = 150) -> str:
        from embit.transaction import Transaction

        self._salt += 1
        raw = W.previous_tx(script, amount, self._salt)
        txid = Transaction.parse(raw).txid().hex()
        self.raw[txid] = raw
        self.outputs[(txid, 0)] = {"script": script, "amount": amount, "height": height, "spent_by": None}
        return f"{txid}:0"

    def spend(self, outpoint: str, height: int | None = None) -> str:
        """A withdrawal of the whole coin to EXTERNAL_SCRIPT (no change); in a block at `height`."""
        from embit.script import Script
        from embit.transaction import Transaction, TransactionInput, TransactionOutput

        txid, vout = outpoint.split(":")
        out = self.outputs[(txid, int(vout))]
        tx = Transaction(vin=[TransactionInput(bytes.fromhex(txid), int(vout))],
                         vout=[TransactionOutput(out["amount"] - 500, Script(W.EXTERNAL_SCRIPT))])
        spender = tx.txid().hex()
        self.raw[spender] = tx.serialize()
        out["spent_by"] = spender
        if height is not None:
            self.mined[spender] = height
        return spender

    def undo(self, outpoint: str) -> None:
        """A reorg took the transaction that created this output out of the chain."""
        txid, vout = outpoint.split(":")
        del self.outputs[(txid, int(vout))]
        del self.raw[txid]

    # -- ChainSource
    def tip(self) -> Tip:
        return Tip(self.height, f"{self.height:064x}")

    def scan(self, scripts):
        self.scans.append(len(scripts))
        answers = []
        for script in scripts:
            mine = [(k, o) for k, o in sorted(self.outputs.items()) if o["script"] == script]
            txids = [k[0] for k, _ in mine] + [o["spent_by"] for _, o in mine if o["spent_by"]]
            unspent = tuple(Unspent(k[0], k[1], o["amount"], script, o["height"])
                            for k, o in mine if o["spent_by"] is None)
            answers.append(ScriptActivity(script, bool(mine), tuple(txids), unspent))
        return answers

    def transaction(self, txid: str) -> bytes:
        self.fetches.append(txid)
        return self.raw[txid]

    def tx_height(self, txid: str) -> int | None:
        self.height_asks.append(txid)
        if txid in self.mined:
            return self.mined[txid]
        return next((o["height"] for (t, _), o in sorted(self.outputs.items()) if t == txid), None)

    def fee_rate(self, target_blocks: int) -> float:
        return 1.0

    def test_accept(self, tx: bytes) -> Acceptance:
        return Acceptance(True)

    def broadcast(self, tx: bytes) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BreaksAt(MemoryChain):
    """Raises EnvironmentProblem at the n-th call of `method` (a source going away mid-sync)."""

    def __init__(self, chain: MemoryChain, method: str, n: int):
        self.__dict__.update(chain.__dict__)
        self._method, self._left = method, n

    def _tick(self, method):
        if method == self._method:
            self._left -= 1
            if self._left == 0:
                raise EnvironmentProblem("connection reset", where=self.description)

    def scan(self, scripts):
        self._tick("scan")
        return super().scan(scripts)

    def transaction(self, txid):
        self._tick("transaction")
        return super().transaction(txid)

    def tx_height(self, txid):
        self._tick("tx_height")
        return super().tx_height(txid)


WALLET = W.wallet("wpkh")


def spk(change: int, index: int) -> bytes:
    return WALLET.script_pubkey(change, index)


@pytest.fixture()
def db(tmp_path):
    with WatchDB.open(tmp_path) as opened:
        opened.add_wallet("hot", WALLET, gap_limit=5)
        yield opened


@pytest.fixture()
def chain():
    return MemoryChain()


def dump(db: WatchDB) -> dict:
    """Every row of every table, from a separate connection (what another process would see)."""
    with sqlite3.connect(db.path) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())
                for t in ("wallets", "scripts", "coins", "transactions", "labels", "psbts")}


def outpoints(db: WatchDB, **kw) -> set[str]:
    return {c.outpoint for c in db.coins("hot", **kw)}


# -- finding coins ---------------------------------------------------------------------------

def test_first_sync_finds_receive_and_change_coins(db, chain):
    a = chain.pay(spk(0, 0), 100_000)
    b = chain.pay(spk(0, 3), 250_000, height=160)
    c = chain.pay(spk(1, 2), 40_000, height=None)      # change, unconfirmed

    result = sync(db, "hot", chain)

    assert sorted(result.new_coins) == sorted([a, b, c])
    assert result.spent_coins == result.forgotten_coins == result.moved_coins == []
    assert result.balance == Balance(confirmed=350_000, unconfirmed=40_000)
    assert result.highest_used == {0: 3, 1: 2}
    assert result.tip == Tip(200, f"{200:064x}")
    assert result.scripts_scanned == (3 + 1 + 5) + (2 + 1 + 5)
    coins = {x.outpoint: x for x in db.coins("hot")}
    assert (coins[b].change, coins[b].index, coins[b].amount_sat, coins[b].height) == (0, 3, 250_000, 160)
    assert coins[b].address == WALLET.address(0, 3)
    assert coins[c].height is None and (coins[c].change, coins[c].index) == (1, 2)
    # the previous transactions are kept for the PSBTs' non_witness_utxo
    for outpoint in (a, b, c):
        txid = outpoint.split(":")[0]
        assert db.transaction_raw(txid) == chain.raw[txid]
    used = {(s.change, s.index) for s in db.scripts("hot") if s.used}
    assert used == {(0, 0), (0, 3), (1, 2)}
    assert db.next_unused("hot", 0) == (1, WALLET.address(0, 1))
    record = db.wallet("hot")
    assert (record.tip_height, record.tip_hash) == (200, f"{200:064x}")


def test_a_second_sync_with_nothing_new_changes_nothing(db, chain):
    chain.pay(spk(0, 1), 5_000)
    sync(db, "hot", chain)
    before, fetched = dump(db), len(chain.fetches)

    result = sync(db, "hot", chain)

    assert result.new_coins == result.spent_coins == result.moved_coins == []
    assert dump(db) == before
    assert len(chain.fetches) == fetched   # known previous transactions are not fetched again


def test_taproot_wallets_fetch_no_previous_transactions(tmp_path, chain):
    tr = W.wallet("tr")
    chain.pay(tr.script_pubkey(0, 0), 9_000)
    with WatchDB.open(tmp_path) as db:
        db.add_wallet("taproot", tr)
        result = sync(db, "taproot", chain)
        assert len(result.new_coins) == 1 and result.balance.confirmed == 9_000
    assert chain.fetches == []


# -- the gap limit ---------------------------------------------------------------------------

def test_gap_limit_edges_with_nothing_used_yet(db, chain):
    edge = chain.pay(spk(0, 4), 1_000)        # index gap_limit - 1: the last one asked about
    beyond = chain.pay(spk(1, 5), 2_000)      # index gap_limit: one past the gap
    result = sync(db, "hot", chain)
    assert result.new_coins == [edge]
    assert beyond not in outpoints(db)
    assert result.highest_used == {0: 4, 1: None}
    assert max(s.index for s in db.scripts("hot", 1)) == 4


def test_a_coin_past_the_gap_is_found_once_the_gap_moves(db, chain):
    chain.pay(spk(0, 2), 1_000)                   # last used: 2, so 3..7 form the gap
    at_edge = chain.pay(spk(0, 7), 2_000)         # last used + gap_limit: found
    result = sync(db, "hot", chain)
    assert at_edge in result.new_coins and result.highest_used[0] == 7   # ...and extends the scan to 12

    far = chain.pay(spk(0, 14), 3_000)            # last used (7) + gap_limit + 2: not found
    assert far not in sync(db, "hot", chain).new_coins
    assert max(s.index for s in db.scripts("hot", 0)) == 12

    chain.pay(spk(0, 9), 4_000)                   # a payment closer in moves the gap to 10..14
    result = sync(db, "hot", chain)
    assert far in result.new_coins and result.highest_used[0] == 14


def test_scripts_are_asked_in_batches_no_larger_than_the_batch(db, chain, monkeypatch):
    from coldsign.watch import sync as sync_module

    monkeypatch.setattr(sync_module, "SCAN_BATCH", 3)
    chain.pay(spk(0, 4), 1_000)   # the last of the first gap: the scan goes on to 9
    done = []
    sync(db, "hot", chain, gap_limit=5, progress=lambda d, t: done.append((d, t)))
    assert max(chain.scans) == 3
    assert chain.scans == [3, 2, 3, 2, 3, 2]   # receive 0..9, change 0..4
    assert [d for d, _ in done] == sorted(d for d, _ in done)
    assert done[-1] == (15, 15)
    assert all(d <= t for d, t in done)


# -- coins that move -------------------------------------------------------------------------

def test_a_coin_spent_between_syncs(db, chain):
    kept = chain.pay(spk(0, 0), 100_000)
    gone = chain.pay(spk(0, 1), 60_000)
    sync(db, "hot", chain)
    spender = chain.spend(gone)

    result = sync(db, "hot", chain)

    assert result.spent_coins == [gone] and result.new_coins == []
    assert result.balance == Balance(100_000, 0)
    assert outpoints(db) == {kept}
    [spent] = [c for c in db.coins("hot", include_spent=True) if c.outpoint == gone]
    assert spent.spent_by == spender


def test_reorg_like_changes_move_confirm_and_forget_coins(db, chain):
    moved = chain.pay(spk(0, 0), 10_000, height=150)
    to_mempool = chain.pay(spk(0, 1), 20_000, height=151)
    undone = chain.pay(spk(0, 2), 30_000, height=152)
    confirmed_later = chain.pay(spk(1, 0), 40_000, height=None)
    sync(db, "hot", chain)
    assert db.balance("hot") == Balance(60_000, 40_000)

    chain.outputs[tuple_of(moved)]["height"] = 149
    chain.outputs[tuple_of(to_mempool)]["height"] = None
    chain.outputs[tuple_of(confirmed_later)]["height"] = 153
    chain.undo(undone)
    result = sync(db, "hot", chain)

    assert sorted(result.moved_coins) == sorted([moved, to_mempool, confirmed_later])
    assert result.forgotten_coins == [undone]
    assert result.balance == Balance(confirmed=50_000, unconfirmed=20_000)
    heights = {c.outpoint: c.height for c in db.coins("hot", include_spent=True)}
    assert heights == {moved: 149, to_mempool: None, confirmed_later: 153}
    assert db._conn.execute("SELECT height FROM transactions WHERE txid=?",
                            (moved.split(":")[0],)).fetchone() == (149,)
    # the address once paid stays used: it is not handed out again
    assert db.next_unused("hot", 0) == (3, WALLET.address(0, 3))


def test_a_spend_undone_by_a_reorg_makes_the_coin_unspent_again(db, chain):
    coin = chain.pay(spk(0, 0), 10_000)
    sync(db, "hot", chain)
    spender = chain.spend(coin)
    sync(db, "hot", chain)
    assert db.balance("hot").total == 0
    chain.outputs[tuple_of(coin)]["spent_by"] = None
    del chain.raw[spender]

    result = sync(db, "hot", chain)

    assert result.moved_coins == [coin]
    assert [(c.outpoint, c.spent_by) for c in db.coins("hot")] == [(coin, None)]


def tuple_of(outpoint: str) -> tuple[str, int]:
    txid, vout = outpoint.split(":")
    return txid, int(vout)


# -- failures change nothing -----------------------------------------------------------------

@pytest.mark.parametrize("method, n", [("scan", 1), ("scan", 2), ("transaction", 1), ("transaction", 3)])
def test_a_source_failing_mid_sync_leaves_the_database_unchanged(db, chain, method, n):
    chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    for i in range(3):
        chain.pay(spk(0, 1 + i), 1_000 * (i + 1))
    chain.pay(spk(1, 0), 7_000)
    before = dump(db)

    with pytest.raises(EnvironmentProblem) as err:
        sync(db, "hot", BreaksAt(chain, method, n))

    assert err.value.message == "connection reset"
    assert dump(db) == before
    result = sync(db, "hot", chain)   # the next sync finds everything, once
    assert len(result.new_coins) == 4 and result.balance.total == 100_000 + 6_000 + 7_000


def test_a_progress_callback_that_raises_aborts_without_writing(db, chain):
    chain.pay(spk(0, 0), 100_000)
    before = dump(db)

    def interrupted(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync(db, "hot", chain, progress=interrupted)
    assert dump(db) == before


# -- answers that make no sense --------------------------------------------------------------

class Lies(MemoryChain):
    def __init__(self, chain: MemoryChain, lie: str):
        self.__dict__.update(chain.__dict__)
        self.lie = lie

    def scan(self, scripts):
        answers = super().scan(scripts)
        if self.lie == "count":
            return answers[:-1]
        if self.lie == "other-script":
            first = answers[0]
            coin = first.unspent[0]
            wrong = Unspent(coin.txid, coin.vout, coin.amount_sat, spk(0, 99), coin.height)
            return [ScriptActivity(first.script_pubkey, True, first.txids, (wrong,))] + answers[1:]
        return answers

    def transaction(self, txid):
        raw = super().transaction(txid)
        if self.lie == "previous-amount":
            return W.previous_tx(spk(0, 0), 1, 1)
        return raw


@pytest.mark.parametrize("lie, message", [
    ("count", "the chain source answered nonsense: 4 answers for 5 scripts"),
    ("other-script", "does not pay the script it is listed for"),
    ("previous-amount", "the chain source answered nonsense: asked for transaction"),
])
def test_nonsense_from_the_source_is_an_environment_problem(db, chain, lie, message):
    chain.pay(spk(0, 0), 100_000)
    before = dump(db)
    with pytest.raises(EnvironmentProblem) as err:
        sync(db, "hot", Lies(chain, lie))
    assert message in err.value.message
    assert err.value.where == "the in-memory test chain"
    assert dump(db) == before


class ListsMore(MemoryChain):
    """A source that adds a coin of its own making to the answer about `script`."""

    def __init__(self, chain: MemoryChain, script: bytes, coin: Unspent):
        self.__dict__.update(chain.__dict__)
        self.extra_script, self.extra = script, coin

    def scan(self, scripts):
        return [ScriptActivity(a.script_pubkey, True, a.txids + (self.extra.txid,), a.unspent + (self.extra,))
                if a.script_pubkey == self.extra_script else a for a in super().scan(scripts)]


def pay_two(chain: MemoryChain) -> str:
    """A real transaction T paying 100,000 sat to receive 0 (output 0, listed by the chain) and
    400,000 sat to receive 1 (output 1, which the honest chain leaves out of its answers); T's txid."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    tx = Transaction(vin=[TransactionInput((77).to_bytes(32, "big"), 0)],
                     vout=[TransactionOutput(100_000, Script(spk(0, 0))), TransactionOutput(400_000, Script(spk(0, 1)))])
    txid = tx.txid().hex()
    chain.raw[txid] = tx.serialize()
    chain.outputs[(txid, 0)] = {"script": spk(0, 0), "amount": 100_000, "height": 150, "spent_by": None}
    return txid


@pytest.mark.parametrize("vout, amount, script, message", [
    (2, 400_000, (0, 1), "transaction {txid} has no output 2"),              # an output that does not exist
    (1, 500_000_000, (0, 1), "output {txid}:1 pays 400000 sat to another script or amount than the coin "
                             "listed (500000000 sat)"),                       # a real output, inflated
    (1, 400_000, (0, 2), "output {txid}:1 pays 400000 sat to another script"),  # ... for another script
])
@pytest.mark.parametrize("when", ["later sync", "same sync"])
def test_a_coin_of_a_known_transaction_is_checked_against_it_too(db, chain, vout, amount, script, message, when):
    """The transaction of a coin already held (or checked moments ago in the same sync) must not
    vouch for another coin the source lists from it: before the fix, such a coin went into the
    database unchecked (a balance of 5 BTC that is not there), because T's raw transaction was
    already known."""
    txid = pay_two(chain)
    if when == "later sync":
        sync(db, "hot", chain)
    before = dump(db)
    target = spk(*script)
    liar = ListsMore(chain, target, Unspent(txid, vout, amount, target, 150))

    with pytest.raises(EnvironmentProblem) as err:
        sync(db, "hot", liar)

    assert message.format(txid=txid) in err.value.message
    assert err.value.where == "the in-memory test chain"
    assert dump(db) == before


def test_the_true_second_output_of_a_known_transaction_is_taken(db, chain):
    txid = pay_two(chain)
    sync(db, "hot", chain)
    fetched = len(chain.fetches)
    chain.outputs[(txid, 1)] = {"script": spk(0, 1), "amount": 400_000, "height": 150, "spent_by": None}
    assert sync(db, "hot", chain).new_coins == [f"{txid}:1"]
    assert len(chain.fetches) == fetched         # checked against the stored transaction, not fetched again
    assert db.balance("hot") == Balance(500_000, 0)


class TipAt(MemoryChain):
    def __init__(self, chain: MemoryChain, height: int, coin_height: int | None = None):
        self.__dict__.update(chain.__dict__)
        self.tip_height, self.coin_height = height, coin_height

    def tip(self) -> Tip:
        return Tip(self.tip_height, f"{7:064x}")

    def scan(self, scripts):
        answers = super().scan(scripts)
        if self.coin_height is None:
            return answers
        return [ScriptActivity(a.script_pubkey, a.used, a.txids,
                               tuple(Unspent(u.txid, u.vout, u.amount_sat, u.script_pubkey, self.coin_height)
                                     for u in a.unspent)) for a in answers]


@pytest.mark.parametrize("tip_height, coin_height, message", [
    (2**64, None, f"the tip at height {str(2**64)[:20]}"),            # SQLite OverflowError (exit 70) before
    (500_000_000, None, "the tip at height 500000000"),                # a locktime read as a time
    (200, 2**70, "at height 1180591620717411303424"),                  # a coin's height: OverflowError before
])
def test_heights_no_chain_can_have_are_nonsense(db, chain, tip_height, coin_height, message):
    chain.pay(spk(0, 0), 100_000)
    before = dump(db)
    with pytest.raises(EnvironmentProblem) as err:
        sync(db, "hot", TipAt(chain, tip_height, coin_height))
    assert message in err.value.message and "answered nonsense" in err.value.message
    assert dump(db) == before
    assert sync(db, "hot", TipAt(chain, 499_999_999)).tip.height == 499_999_999   # the highest height there is


class ReceivesOnly(MemoryChain):
    """Like Bitcoin Core (either mode): a script's txids are only the transactions that paid it."""

    lists_spends = False

    def scan(self, scripts):
        def paid(script):
            return {k[0] for k, o in self.outputs.items() if o["script"] == script}

        return [ScriptActivity(a.script_pubkey, a.used, tuple(t for t in a.txids if t in paid(a.script_pubkey)),
                               a.unspent) for a in super().scan(scripts)]


def spend_with_change(chain: MemoryChain, outpoint: str, change: int) -> str:
    """A withdrawal spending `outpoint`: 20,000 sat to EXTERNAL_SCRIPT, `change` sat to change 0."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    txid, vout = tuple_of(outpoint)
    tx = Transaction(vin=[TransactionInput(bytes.fromhex(txid), vout)],
                     vout=[TransactionOutput(20_000, Script(W.EXTERNAL_SCRIPT)), TransactionOutput(change, Script(spk(1, 0)))])
    spender = tx.txid().hex()
    chain.raw[spender] = tx.serialize()
    chain.outputs[(txid, vout)]["spent_by"] = spender
    chain.outputs[(spender, 1)] = {"script": spk(1, 0), "amount": change, "height": 160, "spent_by": None}
    return spender


def test_a_source_listing_only_receives_still_sees_a_withdrawal_with_change(db, chain):
    """Bitcoin Core's watch-only wallet lists per address only the transactions that paid it: the
    withdrawal that spent receive 0 is seen through its change output. Before the fix every sync
    after a withdrawal failed: "no transaction in its script's history spends it" (exit 7)."""
    coin = chain.pay(spk(0, 0), 100_000)
    node = ReceivesOnly()
    node.__dict__.update(chain.__dict__)
    sync(db, "hot", node)
    spender = spend_with_change(node, coin, 79_000)

    result = sync(db, "hot", node)

    assert result.spent_coins == [coin] and result.new_coins == [f"{spender}:1"]
    assert [c.spent_by for c in db.coins("hot", include_spent=True) if c.outpoint == coin] == [spender]
    assert db.balance("hot") == Balance(79_000, 0)


def test_a_coin_swept_away_unseen_is_forgotten_only_by_a_source_that_cannot_list_spends(db, chain):
    coin = chain.pay(spk(0, 0), 100_000)
    kept = chain.pay(spk(0, 1), 5_000)
    node = ReceivesOnly()
    node.__dict__.update(chain.__dict__)
    sync(db, "hot", node)
    node.spend(coin)                         # everything to EXTERNAL_SCRIPT: nothing comes back to us

    result = sync(db, "hot", node)

    assert result.forgotten_coins == [coin] and result.spent_coins == []
    assert outpoints(db, include_spent=True) == {kept}
    # a source that says it lists spends, yet shows none, still answers nonsense
    other = chain.pay(spk(0, 2), 7_000)
    sync(db, "hot", chain)
    chain.spend(other)
    honest_looking = ReceivesOnly()
    honest_looking.__dict__.update(chain.__dict__)
    honest_looking.lists_spends = True
    before = dump(db)
    with pytest.raises(EnvironmentProblem) as err:
        sync(db, "hot", honest_looking)
    assert f"coin {other} is no longer unspent, yet no transaction in its script's history spends it" \
        in err.value.message
    assert dump(db) == before


# -- settling broadcast withdrawals (coldsign.cli.watch_send.settle, run by `watch sync`) -------------

def test_a_withdrawal_without_change_is_confirmed_only_by_asking_the_source(db, chain):
    """A sweep of the whole coin to an outside address leaves the wallet no coin of its own: before
    `tx_height` it stayed `broadcast` for ever."""
    from coldsign.cli.watch_send import settle

    coin = chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    sweep = chain.spend(coin)                              # broadcast, still in the mempool
    psbt_id = db.add_psbt("hot", b"psbt", sweep, status="broadcast")
    sync(db, "hot", chain)

    assert settle(db, "hot", chain) == [] and db.psbt(psbt_id).status == "broadcast"
    assert chain.height_asks == [sweep]

    chain.mined[sweep] = 201                               # mined
    chain.height = 201
    sync(db, "hot", chain)
    assert settle(db, "hot") == []                         # the coins alone cannot tell
    assert settle(db, "hot", chain) == [psbt_id]
    assert db.psbt(psbt_id).status == "confirmed"
    assert settle(db, "hot", chain) == [] and chain.height_asks == [sweep, sweep]   # confirmed: not asked again


def test_a_source_that_cannot_answer_leaves_the_withdrawal_broadcast_and_the_sync_standing(db, chain, monkeypatch):
    """`watch sync` commits the coins first; asking about a changeless withdrawal then fails (the
    node went away): it stays broadcast, the failure is handed back, nothing else changes."""
    from coldsign.cli.watch_send import settle

    coin = chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    sweep = chain.spend(coin, height=190)
    psbt_id = db.add_psbt("hot", b"psbt", sweep, status="broadcast")
    sync(db, "hot", chain)

    def unreachable(txid):
        raise EnvironmentProblem("cannot reach the chain source")

    monkeypatch.setattr(chain, "tx_height", unreachable)
    before = dump(db)
    unanswered = []
    assert settle(db, "hot", chain, unanswered) == []
    assert [(i, e.message) for i, e in unanswered] == [(psbt_id, "cannot reach the chain source")]
    assert dump(db) == before and db.psbt(psbt_id).status == "broadcast"
    with pytest.raises(EnvironmentProblem):                 # without a list to report to: the error itself
        settle(db, "hot", chain)


def test_a_withdrawal_whose_change_is_in_a_block_is_settled_without_asking_the_source(db, chain):
    from coldsign.cli.watch_send import settle

    coin = chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    spender = spend_with_change(chain, coin, 79_000)        # change 1/0 in block 160
    psbt_id = db.add_psbt("hot", b"psbt", spender, status="broadcast")
    sync(db, "hot", chain)

    assert settle(db, "hot", chain) == [psbt_id]
    assert chain.height_asks == []


def test_only_broadcast_withdrawals_are_settled(db, chain):
    """A final (never broadcast) PSBT of a transaction the chain holds stays final: status moves
    forward only through `watch broadcast`."""
    from coldsign.cli.watch_send import settle

    coin = chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    sweep = chain.spend(coin, height=190)
    final_id = db.add_psbt("hot", b"psbt", sweep, status="final")
    created_id = db.add_psbt("hot", b"psbt", sweep)

    assert settle(db, "hot", chain) == []
    assert [db.psbt(i).status for i in (final_id, created_id)] == ["final", "created"]
    assert chain.height_asks == []


def test_a_source_failing_while_settling_is_an_environment_problem_and_changes_no_status(db, chain):
    from coldsign.cli.watch_send import settle

    coin = chain.pay(spk(0, 0), 100_000)
    sync(db, "hot", chain)
    psbt_id = db.add_psbt("hot", b"psbt", chain.spend(coin, height=201), status="broadcast")
    broken = BreaksAt(chain, "tx_height", 1)
    with pytest.raises(EnvironmentProblem, match="connection reset"):
        settle(db, "hot", broken)
    assert db.psbt(psbt_id).status == "broadcast"
