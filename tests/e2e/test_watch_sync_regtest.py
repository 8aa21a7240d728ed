"""The watch half's sync against the embedded regtest chain (RegtestSource), end to end.

Setup in words: a home folder whose `regtest/` is a private copy of the 101-block session chain
(tests/e2e/conftest.py); the watch database `watch.sqlite` beside it. No wallet is registered
anywhere: the watch wallet is just a descriptor from tests/walletkit.py — the 2-of-3
wsh(sortedmulti) of alice, bob and carol, or alice's single-key wpkh when a test spends (it signs
with alice's key at m/84h/1h/0h/<change>/<index>, derived here from her test mnemonic).

* sync finds coins funded with RegtestChain.fund at receive 0 (twice), receive 2 and change 3,
  to the satoshi, with their heights, the previous transactions and the highest used indexes;
* a spend broadcast through the source (test_accept first, then mined) moves the coins on the
  next sync: the spent coin names its spender, the change coin appears at change 1/0;
* the source's test_accept refuses what Bitcoin Core's mempool would, each with its reason;
* a sync killed with SIGKILL at several points (while asking, inside the write transaction,
  just before and just after COMMIT) leaves the database exactly as before or exactly as after,
  and the next sync ends with every coin once.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import walletkit as W
from coldsign.chain.regtest import RegtestChain
from coldsign.chain.regtest_source import REGTEST_FEE_RATE, RegtestSource
from coldsign.errors import EnvironmentProblem, Refused
from coldsign.watch.db import Balance, WatchDB
from coldsign.watch.sync import sync

pytestmark = pytest.mark.e2e

BTC = 100_000_000


@pytest.fixture()
def home(session_chain_dir, tmp_path):
    folder = tmp_path / "home"
    shutil.copytree(session_chain_dir, folder / "regtest")
    return folder


def alice_key(change: int, index: int):
    from embit import bip32, bip39

    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(W.mnemonic("alice")))
    return root.derive(f"m/84h/1h/0h/{change}/{index}").key


def fund(home, payments: list[tuple[bytes, int]]) -> list[tuple[str, int, int]]:
    """Fund each (script, sat) in its own block; [(outpoint, sat, height)]."""
    with RegtestChain.open(home / "regtest") as chain:
        paid = [chain.fund(script, amount) for script, amount in payments]
    return [(f"{u.txid}:{u.vout}", u.amount_sat, u.height) for u in paid]


def dump(path) -> dict:
    with sqlite3.connect(path) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())
                for t in ("wallets", "scripts", "coins", "transactions", "labels", "psbts")}


def test_sync_finds_funded_coins_to_the_satoshi(home):
    vault = W.wallet("wsh-sortedmulti")
    funded = fund(home, [(vault.script_pubkey(0, 0), 150_000_000), (vault.script_pubkey(0, 0), 12_345),
                         (vault.script_pubkey(0, 2), 30_000_000), (vault.script_pubkey(1, 3), 7_000_001)])

    with WatchDB.open(home) as db, RegtestSource(home) as source:
        db.add_wallet("vault", vault)
        seen = []
        result = sync(db, "vault", source, progress=lambda done, total: seen.append((done, total)))
        tip = source.tip()

        assert sorted(result.new_coins) == sorted(o for o, _, _ in funded)
        assert {(c.outpoint, c.amount_sat, c.height, c.change, c.index) for c in db.coins("vault")} == {
            (funded[0][0], 150_000_000, funded[0][2], 0, 0), (funded[1][0], 12_345, funded[1][2], 0, 0),
            (funded[2][0], 30_000_000, funded[2][2], 0, 2), (funded[3][0], 7_000_001, funded[3][2], 1, 3)}
        assert result.balance == db.balance("vault") == Balance(confirmed=187_012_346, unconfirmed=0)
        assert result.highest_used == {0: 2, 1: 3}
        assert result.tip == tip and tip.height == 101 + 4
        assert db.wallet("vault").tip_height == tip.height
        assert result.scripts_scanned == (2 + 1 + 20) + (3 + 1 + 20)
        assert seen[-1] == (result.scripts_scanned, result.scripts_scanned)
        for coin in db.coins("vault"):
            assert db.transaction_raw(coin.txid) == source.transaction(coin.txid)
        assert db.next_unused("vault", 0) == (1, vault.address(0, 1))
        assert db.next_unused("vault", 1) == (0, vault.address(1, 0))


def test_a_broadcast_spend_moves_the_coins_on_the_next_sync(home, spend):
    hot = W.wallet("wpkh")
    [(first, _, _), (second, _, _)] = fund(home, [(hot.script_pubkey(0, 0), 1 * BTC),
                                                  (hot.script_pubkey(0, 1), 50_000_000)])
    with WatchDB.open(home) as db, RegtestSource(home) as source:
        db.add_wallet("hot", hot)
        sync(db, "hot", source)
        [coin] = [c for c in db.coins("hot") if c.outpoint == second]
        fee = 1_000
        tx = spend([coin], [(W.EXTERNAL_SCRIPT, 20_000_000),
                            (hot.script_pubkey(1, 0), 30_000_000 - fee)], key=alice_key(0, 1))

        assert source.test_accept(tx).allowed
        txid = source.broadcast(tx)
        result = sync(db, "hot", source)

        assert result.spent_coins == [second]
        assert result.new_coins == [f"{txid}:1"]
        assert result.balance == Balance(1 * BTC + 30_000_000 - fee, 0)
        [spent] = [c for c in db.coins("hot", include_spent=True) if c.outpoint == second]
        assert spent.spent_by == txid
        [change] = [c for c in db.coins("hot") if c.outpoint == f"{txid}:1"]
        assert (change.change, change.index, change.height) == (1, 0, source.tip().height)
        assert result.highest_used == {0: 1, 1: 0}
        # a spent-from script is still used, with both transactions in its history
        [activity] = source.scan([hot.script_pubkey(0, 1)])
        assert activity.used and activity.unspent == ()
        assert set(activity.txids) == {second.split(":")[0], txid}
        assert {c.outpoint for c in db.coins("hot")} == {first, f"{txid}:1"}


def test_test_accept_refuses_what_a_mempool_would(home, spend):
    hot = W.wallet("wpkh")
    [(outpoint, amount, _)] = fund(home, [(hot.script_pubkey(0, 0), 10_000_000)])
    with WatchDB.open(home) as db, RegtestSource(home) as source:
        db.add_wallet("hot", hot)
        sync(db, "hot", source)
        [coin] = db.coins("hot")
        key = alice_key(0, 0)

        def reason(outputs, **kw):
            acceptance = source.test_accept(spend([coin], outputs, **{"key": key, **kw}))
            assert not acceptance.allowed
            return acceptance.reason

        assert reason([(W.EXTERNAL_SCRIPT, amount + 1)]).startswith("bad-txns-in-belowout")
        assert reason([(W.EXTERNAL_SCRIPT, amount - 10)]).startswith("min relay fee not met: 10 sat")
        assert reason([(W.EXTERNAL_SCRIPT, amount - 1000)], sign_amounts=[amount + 1]).startswith(
            "mandatory-script-verify-flag-failed: input 0")
        assert reason([(W.EXTERNAL_SCRIPT, amount - 1000)], key=alice_key(0, 1)).startswith(
            "mandatory-script-verify-flag-failed: input 0")
        good = spend([coin], [(W.EXTERNAL_SCRIPT, amount - 1000)], key=key)
        source.broadcast(good)
        again = source.test_accept(good)
        assert again.reason == f"bad-txns-inputs-missingorspent: input 0 spends {outpoint}, which is already spent"
        with pytest.raises(Refused) as err:
            source.broadcast(good)
        assert err.value.message.startswith("the regtest chain refuses the transaction: bad-txns-inputs-missingorspent")
        assert source.fee_rate(1) == source.fee_rate(144) == REGTEST_FEE_RATE == 2.0


def test_an_immature_coinbase_coin_is_listed_but_not_spendable(home, spend):
    hot = W.wallet("wpkh")
    with RegtestChain.open(home / "regtest") as chain:
        [block] = chain.mine(1, to_script=hot.script_pubkey(0, 0))
    with WatchDB.open(home) as db, RegtestSource(home) as source:
        db.add_wallet("hot", hot)
        sync(db, "hot", source)
        [coin] = db.coins("hot")
        assert coin.height == block.height == 102
        acceptance = source.test_accept(spend([coin], [(W.EXTERNAL_SCRIPT, coin.amount_sat - 1000)],
                                              key=alice_key(0, 0)))
        assert acceptance.reason == "bad-txns-premature-spend-of-coinbase: input 0 spends a coinbase output of height 102"


def test_source_needs_an_initialized_chain_and_holds_it(home, tmp_path):
    with pytest.raises(EnvironmentProblem) as err:
        RegtestSource(tmp_path / "empty")
    assert err.value.message == "no regtest chain in this home folder"
    assert err.value.hint == "run `coldsign regtest init` first"
    with RegtestSource(home) as source:
        assert source.description == f"the embedded regtest chain at {home / 'regtest'}"
        with pytest.raises(EnvironmentProblem, match="in use by another process"):
            RegtestChain.open(home / "regtest")
    RegtestChain.open(home / "regtest").close()   # released on close


# -- killed syncs ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    from coldsign.chain.regtest_source import RegtestSource
    from coldsign.watch.db import WatchDB
    from coldsign.watch.sync import sync

    home, where, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    state = {"count": 0, "in_write": False, "committed": False}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def progress(done, total):
        if where == "progress":
            state["count"] += 1
            if state["count"] == n:
                die()

    def trace(sql):
        if state["committed"] and where == "after-commit":
            die()
        if sql == "COMMIT":
            if where == "commit":
                die()
            state["committed"] = True
        if state["in_write"] and where == "write":
            state["count"] += 1
            if state["count"] == n:
                die()
        if sql == "BEGIN IMMEDIATE":
            state["in_write"] = True

    db = WatchDB.open(home)
    db._conn.set_trace_callback(trace)
    with RegtestSource(home) as source:
        sync(db, "hot", source, progress=progress)
    print("finished")
""")

KILL_POINTS = [("progress", 1, "old"), ("write", 1, "old"), ("write", 20, "old"),
               ("write", 45, "old"), ("commit", 0, "old"), ("after-commit", 0, "new")]


def _scene(base, session_chain_dir, spend):
    hot = W.wallet("wpkh")
    home = base / "scene"
    shutil.copytree(session_chain_dir, home / "regtest")
    fund(home, [(hot.script_pubkey(0, 0), 1 * BTC), (hot.script_pubkey(0, 1), 50_000_000)])
    with WatchDB.open(home) as db, RegtestSource(home) as source:
        db.add_wallet("hot", hot)
        sync(db, "hot", source)
        [coin] = [c for c in db.coins("hot") if (c.change, c.index) == (0, 0)]
        source.broadcast(spend([coin], [(W.EXTERNAL_SCRIPT, coin.amount_sat - 2_000)], key=alice_key(0, 0)))
    fund(home, [(hot.script_pubkey(0, 2), 20_000_000), (hot.script_pubkey(1, 4), 3_000_000)])
    old = dump(home / "watch.sqlite")

    reference = base / "reference"
    shutil.copytree(home, reference)
    with WatchDB.open(reference) as db, RegtestSource(reference) as source:
        result = sync(db, "hot", source)
        assert len(result.new_coins) == 2 and len(result.spent_coins) == 1
        coins = {(c.outpoint, c.amount_sat) for c in db.coins("hot")}
    new = dump(reference / "watch.sqlite")
    assert new != old and len(new["coins"]) == 4
    return home, old, new, coins


@pytest.fixture(scope="module")
def scene(request, tmp_path_factory, session_chain_dir):
    """A synced wpkh wallet "hot" (receive 0: 1 BTC, receive 1: 0.5 BTC), then a chain that moved
    on: the receive-0 coin spent, receive 2 (0.2 BTC) and change 4 (0.03 BTC) funded. Returns
    (home, database dump before a sync, dump after a sync, the coins a sync ends with)."""
    # The e2e conftest's P2WPKH spend builder: its `spend` fixture is function-scoped, and this
    # scene is built once per module, so take the function from the loaded conftest itself.
    [e2e_conftest] = [p for p in request.config.pluginmanager.get_plugins()
                      if getattr(p, "__file__", "").endswith("e2e/conftest.py")]
    return _scene(tmp_path_factory.mktemp("crash"), session_chain_dir, e2e_conftest._spend)


@pytest.mark.parametrize("where, n, expected", KILL_POINTS)
def test_a_killed_sync_leaves_old_or_new_state_and_the_next_sync_completes(scene, tmp_path, where, n, expected):
    home, old, new, coins = scene
    victim = tmp_path / "home"
    shutil.copytree(home, victim)

    child = subprocess.run([sys.executable, "-c", CHILD, str(victim), where, str(n)],
                           capture_output=True, text=True, timeout=120)

    assert child.returncode == -signal.SIGKILL, (child.stdout, child.stderr)
    assert "finished" not in child.stdout
    after_kill = dump(victim / "watch.sqlite")
    assert after_kill == (old if expected == "old" else new)
    with WatchDB.open(victim) as db, RegtestSource(victim) as source:
        sync(db, "hot", source)
        assert {(c.outpoint, c.amount_sat) for c in db.coins("hot")} == coins
        assert db.balance("hot") == Balance(50_000_000 + 20_000_000 + 3_000_000, 0)
    assert dump(victim / "watch.sqlite") == new
