"""The watch database (coldsign.watch.db): schema, migrations, wallets, scripts, coins, labels, PSBTs.

Fixtures in words: the wallet "vault" is walletkit's 2-of-3 wsh(sortedmulti) of alice, bob and
carol on regtest (gap limit 20); "hot" is alice's single-key wpkh. Coins are written the way a
sync writes them (record_script + put_coin inside one transaction): 100,000 sat confirmed at
receive 0/0 (height 101), 20,000 sat unconfirmed at change 1/3. The migration test builds a
version-1 database by hand (MIGRATIONS[0] only) with one wallet, one script and one coin, and
opens it with the current code.
"""

from __future__ import annotations

import sqlite3
import stat

import pytest

import walletkit as W
from coldsign.errors import BadInput, EnvironmentProblem, NotFound, UsageProblem
from coldsign.watch import db as watchdb
from coldsign.watch.db import SCHEMA_VERSION, Balance, WatchDB

TXID_A = "aa" * 32
TXID_B = "bb" * 32


@pytest.fixture()
def db(tmp_path):
    with WatchDB.open(tmp_path) as opened:
        yield opened


def put(db: WatchDB, wallet: str, change: int, index: int, outpoint: str, amount: int, height):
    record = db.wallet(wallet)
    descriptor = record.parse()
    with db.transaction():
        db.record_script(record.id, change, index, descriptor.script_pubkey(change, index),
                         descriptor.address(change, index), True)
        db.put_coin(record.id, outpoint, change, index, amount, height)


def table_names(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- the file and the schema -----------------------------------------------------------------

def test_new_database_is_private_wal_with_foreign_keys_at_current_version(tmp_path):
    with WatchDB.open(tmp_path) as db:
        assert db.path == tmp_path / "watch.sqlite"
        assert db.schema_version == SCHEMA_VERSION == 2
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert stat.S_IMODE((tmp_path / "watch.sqlite").stat().st_mode) == 0o600
    assert {"wallets", "scripts", "coins", "transactions", "labels", "psbts"} <= table_names(
        tmp_path / "watch.sqlite")


def test_version_1_database_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "watch.sqlite"
    wallet = W.wallet("wpkh")
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in watchdb.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO wallets (name, descriptor, network, gap_limit, created) VALUES "
                 "('hot', ?, 'regtest', 30, '2024-01-01T00:00:00+00:00')", (wallet.canonical(),))
    conn.execute("INSERT INTO scripts VALUES (1, 0, 0, ?, ?, 1)",
                 (wallet.script_pubkey(0, 0), wallet.address(0, 0)))
    conn.execute("INSERT INTO coins VALUES (1, ?, 0, 0, 5000, 7, NULL)", (f"{TXID_A}:0",))
    conn.close()
    assert "psbts" not in table_names(path)

    with WatchDB(path) as db:
        assert db.schema_version == 2
        record = db.wallet("hot")
        assert (record.gap_limit, record.tip_height, record.tip_hash) == (30, None, None)
        assert record.parse() == wallet
        [coin] = db.coins("hot")
        assert (coin.outpoint, coin.amount_sat, coin.height, coin.address) == (
            f"{TXID_A}:0", 5000, 7, wallet.address(0, 0))
        psbt_id = db.add_psbt("hot", b"psbt\xff", TXID_B)
        assert db.psbt(psbt_id).status == "created"


def test_failed_migration_rolls_back_to_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "watch.sqlite"
    with WatchDB(path) as db:
        db._conn.execute("PRAGMA user_version = 1")   # pretend v2 never ran...
        db._conn.execute("DROP TABLE psbts")            # ...and undo what it created
        db._conn.execute("ALTER TABLE wallets DROP COLUMN tip_height")
        db._conn.execute("ALTER TABLE wallets DROP COLUMN tip_hash")
    broken = (watchdb.MIGRATIONS[0], ("CREATE TABLE psbts (id INTEGER PRIMARY KEY)", "NOT SQL AT ALL"))
    monkeypatch.setattr(watchdb, "MIGRATIONS", broken)

    with pytest.raises(EnvironmentProblem) as err:
        WatchDB(path)
    assert "the watch database is unreadable" in err.value.message and "syntax error" in err.value.message
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "psbts" not in table_names(path)   # the step's first statement was rolled back too


def test_database_from_a_newer_coldsign_is_refused(tmp_path):
    path = tmp_path / "watch.sqlite"
    WatchDB(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 9")
    with pytest.raises(EnvironmentProblem) as err:
        WatchDB(path)
    assert err.value.message == "the watch database has schema version 9; this coldsign knows up to 2"
    assert err.value.hint == "upgrade coldsign"


def test_a_file_that_is_not_a_database_is_an_environment_problem(tmp_path):
    (tmp_path / "watch.sqlite").write_bytes(b"not a database, just text " * 200)
    with pytest.raises(EnvironmentProblem) as err:
        WatchDB.open(tmp_path)
    assert err.value.message == "the watch database is unreadable: file is not a database"


def test_writes_belong_inside_a_transaction_and_a_failed_one_rolls_back(db):
    db.add_wallet("hot", W.wallet("wpkh"))
    record = db.wallet("hot")
    with pytest.raises(RuntimeError, match="inside db.transaction"):
        db.set_tip(record.id, 5, "00" * 32)
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            db.set_tip(record.id, 5, "00" * 32)
            1 / 0
    assert db.wallet("hot").tip_height is None


# -- wallets ---------------------------------------------------------------------------------

def test_wallets_are_stored_canonically_and_listed_by_name(db):
    vault = W.wallet("wsh-sortedmulti")
    db.add_wallet("vault", vault)
    db.add_wallet("hot", W.wallet("wpkh"), gap_limit=50)
    assert [w.name for w in db.list_wallets()] == ["hot", "vault"]
    record = db.wallet("vault")
    assert record.descriptor == vault.canonical()
    assert record.network.value == "regtest" and record.gap_limit == 20
    assert record.parse() == vault
    assert db.wallet("hot").gap_limit == 50


def test_wallet_names_and_gap_limits_are_checked(db):
    db.add_wallet("vault", W.wallet("wpkh"))
    with pytest.raises(BadInput) as err:
        db.add_wallet("vault", W.wallet("tr"))
    assert err.value.message == "a wallet named 'vault' exists already"
    with pytest.raises(BadInput) as err:
        db.add_wallet("../etc", W.wallet("tr"))
    assert err.value.message == "wallet name '../etc' is not allowed"
    with pytest.raises(UsageProblem) as err:
        db.add_wallet("wide", W.wallet("tr"), gap_limit=0)
    assert err.value.message == "gap limit must be between 1 and 1000, got 0"
    with pytest.raises(NotFound) as err:
        db.wallet("nope")
    assert err.value.message == "no watch wallet named 'nope'"
    assert [w.name for w in db.list_wallets()] == ["vault"]


# -- scripts ---------------------------------------------------------------------------------

def test_next_unused_derives_then_skips_used_scripts(db):
    vault = W.wallet("wsh-sortedmulti")
    db.add_wallet("vault", vault)
    assert db.next_unused("vault", 0) == (0, vault.address(0, 0))
    assert db.next_unused("vault", 0) == (0, vault.address(0, 0))  # not used yet: same address
    assert db.next_unused("vault", 1) == (0, vault.address(1, 0))
    put(db, "vault", 0, 0, f"{TXID_A}:0", 1000, 101)
    assert db.next_unused("vault", 0) == (1, vault.address(0, 1))
    with pytest.raises(BadInput):
        db.next_unused("vault", 2)


def test_a_used_script_stays_used(db):
    wallet = W.wallet("wpkh")
    db.add_wallet("hot", wallet)
    record = db.wallet("hot")
    with db.transaction():
        db.record_script(record.id, 0, 0, wallet.script_pubkey(0, 0), wallet.address(0, 0), True)
    with db.transaction():
        db.record_script(record.id, 0, 0, wallet.script_pubkey(0, 0), wallet.address(0, 0), False)
    [script] = db.scripts("hot")
    assert script.used and script.script_pubkey == wallet.script_pubkey(0, 0)


# -- coins, balance, labels ------------------------------------------------------------------

def test_coins_filters_and_balance(db):
    db.add_wallet("vault", W.wallet("wsh-sortedmulti"))
    put(db, "vault", 0, 0, f"{TXID_A}:0", 100_000, 101)
    put(db, "vault", 1, 3, f"{TXID_B}:1", 20_000, None)
    put(db, "vault", 0, 1, f"{TXID_A}:1", 7_000, 102)
    record = db.wallet("vault")
    with db.transaction():
        db.mark_spent(record.id, f"{TXID_A}:1", "cc" * 32)

    assert [c.outpoint for c in db.coins("vault")] == [f"{TXID_A}:0", f"{TXID_B}:1"]
    assert [c.outpoint for c in db.coins("vault", confirmed_only=True)] == [f"{TXID_A}:0"]
    every = db.coins("vault", include_spent=True)
    assert [(c.outpoint, c.spent_by) for c in every] == [
        (f"{TXID_A}:0", None), (f"{TXID_A}:1", "cc" * 32), (f"{TXID_B}:1", None)]
    change_coin = db.coins("vault")[1]
    assert (change_coin.change, change_coin.index, change_coin.txid, change_coin.vout) == (1, 3, TXID_B, 1)
    assert db.balance("vault") == Balance(confirmed=100_000, unconfirmed=20_000)
    assert db.balance("vault").total == 120_000


def test_a_coin_needs_its_script(db):
    db.add_wallet("hot", W.wallet("wpkh"))
    record = db.wallet("hot")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with db.transaction():
            db.put_coin(record.id, f"{TXID_A}:0", 0, 9, 1000, 1)
    assert db.coins("hot") == []


def test_labels_on_addresses_and_coins(db):
    wallet = W.wallet("wpkh")
    db.add_wallet("hot", wallet)
    put(db, "hot", 0, 0, f"{TXID_A}:0", 100_000, 101)
    put(db, "hot", 0, 0, f"{TXID_A}:1", 5_000, 101)
    address = wallet.address(0, 0)

    db.set_label("hot", address, "donations")
    db.set_label("hot", f"{TXID_A.upper()}:1", "from Bob")
    assert db.label("hot", address) == "donations"
    assert [(c.outpoint, c.label) for c in db.coins("hot")] == [
        (f"{TXID_A}:0", "donations"), (f"{TXID_A}:1", "from Bob")]
    db.set_label("hot", f"{TXID_A}:1", "")
    assert db.label("hot", f"{TXID_A}:1") is None
    assert [c.label for c in db.coins("hot")] == ["donations", "donations"]

    with pytest.raises(NotFound) as err:
        db.set_label("hot", W.wallet("tr").address(0, 0), "x")
    assert err.value.message.endswith("is not a known address of this wallet")
    with pytest.raises(NotFound) as err:
        db.set_label("hot", f"{TXID_B}:0", "x")
    assert err.value.message == f"{TXID_B}:0 is not a known coin of this wallet"
    with pytest.raises(BadInput) as err:
        db.set_label("hot", address, "line\nbreak")
    assert err.value.message == "a label is at most 255 printable characters"


def test_transactions_are_stored_once_and_their_height_follows(db):
    with db.transaction():
        db.put_transaction(TXID_A, b"\x02raw", 101)
        db.put_transaction(TXID_A, b"\x02raw", 102)
        db.put_transaction(TXID_B, None, 5)   # unknown: height-only update does nothing
    assert db.transaction_raw(TXID_A) == b"\x02raw"
    assert db.known_txids() == {TXID_A}
    with db.transaction():
        db.put_transaction(TXID_A, None, None)
    assert db._conn.execute("SELECT height FROM transactions").fetchall() == [(None,)]


# -- PSBTs -----------------------------------------------------------------------------------

def test_psbt_life_cycle(db):
    db.add_wallet("vault", W.wallet("wsh-sortedmulti"))
    first = db.add_psbt("vault", b"unsigned", TXID_A)
    second = db.add_psbt("vault", b"other", TXID_B)
    assert [p.id for p in db.psbts("vault")] == [first, second]

    record = db.set_psbt_status(first, "partially_signed", b"one signature")
    assert (record.status, record.psbt, record.wallet, record.txid) == (
        "partially_signed", b"one signature", "vault", TXID_A)
    assert db.set_psbt_status(first, "final").psbt == b"one signature"
    with pytest.raises(BadInput) as err:
        db.set_psbt_status(first, "lost")
    assert err.value.message == "unknown PSBT status 'lost'"
    with pytest.raises(NotFound) as err:
        db.psbt(999)
    assert err.value.message == "no PSBT with id 999"
    assert db.psbt(first).status == "final"
