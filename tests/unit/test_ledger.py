"""The signer's ledger (coldsign.policy.ledger) on real SQLite files in a temporary home folder.

What is held to account: durability settings (WAL, synchronous=FULL), what survives a reopen and a
killed process, velocity sums per wallet and at the window's edge, the nonce claim (a second
signing of the same nonce is refused and writes nothing; a failed record leaves no claimed nonce),
append-only triggers, the refusal log, and the binding of the ledger to the installed policy
(missing or replaced ledger refused).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from coldsign.errors import BadInput, Refused
from coldsign.policy.ledger import (LEDGER_FILE, Ledger, ledger_id_for_install, open_for_policy)

NOW = datetime(2025, 3, 4, 14, 5, 0, tzinfo=timezone.utc)   # a Tuesday
NONCE_A = "a" * 32
NONCE_B = "b" * 32


def record(ledger: Ledger, nonce: str, amount: int, at: datetime, *, wallet: str = "vault", tip: int = 200,
           tip_hash: str | None = "00" * 32) -> None:
    ledger.record_signed(nonce=nonce, psbt_sha256="11" * 32, wallet=wallet, amount_sat=amount, signed_at=at,
                         tip_height=tip, tip_hash=tip_hash, rule="exchange")


def test_a_new_ledger_is_empty_durable_and_has_an_id(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        assert ledger.path == tmp_path / LEDGER_FILE
        assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2       # FULL
        assert len(ledger.ledger_id) == 32 and int(ledger.ledger_id, 16) >= 0
        assert ledger.newest_tip() is None
        assert not ledger.nonce_seen(NONCE_A)
        assert ledger.signed_since("vault", NOW - timedelta(days=365)) == 0
        first_id = ledger.ledger_id
    with Ledger.open(tmp_path) as again:
        assert again.ledger_id == first_id          # the id is written once, not redrawn


def test_signed_entries_survive_a_reopen_and_sum_per_wallet(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        record(ledger, NONCE_A, 120_000_000, NOW - timedelta(hours=3), tip=205)
        record(ledger, NONCE_B, 30_000_000, NOW - timedelta(hours=1), wallet="hot", tip=207)
    with Ledger.open(tmp_path) as ledger:       # a "reboot": nothing lives in memory only
        assert ledger.nonce_seen(NONCE_A) and ledger.nonce_seen(NONCE_B)
        assert not ledger.nonce_seen("c" * 32)
        assert ledger.signed_since("vault", NOW - timedelta(hours=24)) == 120_000_000
        assert ledger.signed_since("hot", NOW - timedelta(hours=24)) == 30_000_000
        assert ledger.newest_tip() == 207
        [entry, _] = ledger.signed()
        assert (entry.nonce, entry.wallet, entry.amount_sat, entry.tip_height, entry.rule) == \
               (NONCE_A, "vault", 120_000_000, 205, "exchange")
        assert entry.signed_at == NOW - timedelta(hours=3)


def test_the_window_edge_counts_and_a_second_earlier_does_not(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        record(ledger, NONCE_A, 70_000, NOW - timedelta(hours=24))
        record(ledger, NONCE_B, 5_000, NOW + timedelta(hours=2))    # dated after "now": a clock set back
        since = NOW - timedelta(hours=24)
        assert ledger.signed_since("vault", since) == 75_000
        assert ledger.signed_since("vault", since + timedelta(seconds=1)) == 5_000


def test_a_replayed_nonce_is_refused_and_writes_nothing(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        record(ledger, NONCE_A, 100_000, NOW, tip=200)
        with pytest.raises(Refused) as err:
            record(ledger, NONCE_A, 999_999, NOW, tip=300)
        assert err.value.code == "nonce-replayed"
        assert err.value.message == f"request nonce {NONCE_A} was already signed by this signer"
        assert ledger.signed_since("vault", NOW - timedelta(days=1)) == 100_000
        assert ledger.newest_tip() == 200           # the refused record's tip was not kept either
        assert len(ledger.signed()) == 1


def test_nonce_claim_and_tip_are_one_transaction(tmp_path):
    """A record whose second insert (the tip) fails leaves no claimed nonce behind."""
    with Ledger.open(tmp_path) as ledger:
        with pytest.raises(BadInput) as err:
            record(ledger, NONCE_A, 100_000, NOW, tip_hash=None)
        assert err.value.code == "ledger-entry"
        assert "NOT NULL constraint failed: tips.hash" in err.value.message
        assert not ledger.nonce_seen(NONCE_A)
        assert ledger.signed() == []


def test_a_killed_process_keeps_what_it_committed(tmp_path):
    script = (
        "import os, sys\n"
        "from datetime import datetime, timezone\n"
        "from coldsign.policy.ledger import Ledger\n"
        "ledger = Ledger.open(sys.argv[1])\n"
        "ledger.record_signed(nonce='c'*32, psbt_sha256='22'*32, wallet='vault', amount_sat=42, "
        "signed_at=datetime(2025, 3, 4, tzinfo=timezone.utc), tip_height=9, tip_hash='00'*32, rule='r')\n"
        "os._exit(9)   # no close, no checkpoint: as if the power went\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    with Ledger.open(tmp_path) as ledger:
        assert ledger.nonce_seen("c" * 32)
        assert ledger.newest_tip() == 9


@pytest.mark.parametrize("statement", [
    "UPDATE signed SET amount_sat = 0",
    "DELETE FROM signed",
    "UPDATE tips SET height = 0",
    "DELETE FROM tips",
    "DELETE FROM refusals",
    "UPDATE meta SET value = 'x'",
])
def test_the_ledger_is_append_only_even_to_raw_sql(tmp_path, statement):
    with Ledger.open(tmp_path) as ledger:
        record(ledger, NONCE_A, 100_000, NOW)
        ledger.record_refusal(time=NOW, nonce=NONCE_B, rule=None, reason="nonce: replay")
        before = (ledger.signed(), ledger.refusals(), ledger.ledger_id, ledger.newest_tip())
    raw = sqlite3.connect(tmp_path / LEDGER_FILE)
    with pytest.raises(sqlite3.IntegrityError, match="the ledger is append-only"):
        raw.execute(statement)
    raw.close()
    with Ledger.open(tmp_path) as ledger:
        assert (ledger.signed(), ledger.refusals(), ledger.ledger_id, ledger.newest_tip()) == before


def test_refusals_are_recorded(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.record_refusal(time=NOW, nonce=NONCE_A, rule="exchange",
                              reason="velocity 24h: 1.20000000 BTC signed + 0.50000000 BTC requested > "
                                     "1.50000000 BTC limit")
        ledger.record_refusal(time=NOW, nonce=None, rule=None, reason="requester signature: does not verify")
    with Ledger.open(tmp_path) as ledger:
        first, second = ledger.refusals()
        assert (first.time, first.nonce, first.rule) == (NOW, NONCE_A, "exchange")
        assert first.reason.startswith("velocity 24h: 1.20000000 BTC signed")
        assert (second.nonce, second.rule) == (None, None)
        assert not ledger.nonce_seen(NONCE_A)       # a refusal claims no nonce


def test_times_must_be_timezone_aware(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        with pytest.raises(ValueError, match="timezone-aware"):
            ledger.signed_since("vault", datetime(2025, 3, 4))


def test_a_file_that_is_not_a_ledger_is_bad_input(tmp_path):
    (tmp_path / LEDGER_FILE).write_bytes(b"this is not a database, " * 100)
    with pytest.raises(BadInput) as err:
        Ledger.open(tmp_path)
    assert err.value.code == "ledger-damaged"
    assert err.value.message.startswith("the signer's ledger is damaged or not a ledger")


def test_a_ledger_with_damaged_pages_is_bad_input_not_a_crash(tmp_path):
    """The header is intact, so SQLite opens the file; the damage shows on the first query. Every
    page after the second has 200 bytes of 0xff written over its start."""
    with Ledger.open(tmp_path) as ledger:
        for i in range(300):
            record(ledger, f"{i:032x}", 1_000, NOW)
    path = tmp_path / LEDGER_FILE
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096 and not (tmp_path / (LEDGER_FILE + "-wal")).exists()
    for offset in range(2 * 4096, len(data), 4096):
        data[offset:offset + 200] = b"\xff" * 200
    path.write_bytes(bytes(data))
    for use in (lambda: open_for_policy(tmp_path, None).signed_since("vault", NOW),
                lambda: Ledger.open(tmp_path).ledger_id):
        with pytest.raises(BadInput) as err:
            use()
        assert err.value.code == "ledger-damaged"
        assert err.value.message == "the signer's ledger is damaged or not a ledger: database disk image is malformed"
        assert err.value.where == str(path)


def test_a_newer_schema_is_refused(tmp_path):
    raw = sqlite3.connect(tmp_path / LEDGER_FILE)
    raw.execute("PRAGMA user_version = 7")
    raw.close()
    with pytest.raises(BadInput) as err:
        Ledger.open(tmp_path)
    assert err.value.code == "ledger-version"
    assert err.value.message == "ledger schema version 7 is newer than this coldsign knows (1)"


def test_open_without_create_refuses_a_missing_ledger(tmp_path):
    with pytest.raises(Refused) as err:
        Ledger.open(tmp_path, create=False)
    assert err.value.code == "ledger-missing"
    assert not (tmp_path / LEDGER_FILE).exists()


# --- the ledger bound to the installed policy -------------------------------------------------------


def test_install_binds_the_ledger_and_evaluation_finds_it(tmp_path):
    ledger_id = ledger_id_for_install(tmp_path)
    with open_for_policy(tmp_path, {"digest": "ab" * 32, "ledger_id": ledger_id}) as ledger:
        assert ledger.ledger_id == ledger_id


def test_a_lost_ledger_is_refused_until_a_new_policy_is_installed(tmp_path):
    meta = {"digest": "ab" * 32, "version": 3, "ledger_id": ledger_id_for_install(tmp_path)}
    (tmp_path / LEDGER_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / (LEDGER_FILE + suffix)).unlink(missing_ok=True)
    with pytest.raises(Refused) as err:
        open_for_policy(tmp_path, meta)
    assert err.value.code == "ledger-missing"
    assert err.value.message == (f"the policy was installed with ledger {meta['ledger_id']}, but "
                                 f"{tmp_path / LEDGER_FILE} is missing")
    assert not (tmp_path / LEDGER_FILE).exists()    # refusing does not quietly make a new one

    # A fresh ledger under the old binding: still refused (it is not the ledger the policy knew).
    fresh_id = ledger_id_for_install(tmp_path)
    with pytest.raises(Refused) as err:
        open_for_policy(tmp_path, meta)
    assert err.value.code == "ledger-mismatch"
    assert err.value.message == (f"the ledger is {fresh_id}, not the ledger {meta['ledger_id']} the installed "
                                 "policy was bound to")
    # The admin-signed reset: a new version installed with the new ledger's id.
    with open_for_policy(tmp_path, {**meta, "version": 4, "ledger_id": fresh_id}) as ledger:
        assert ledger.ledger_id == fresh_id


def test_no_binding_opens_or_creates_the_ledger(tmp_path):
    with open_for_policy(tmp_path, None) as ledger:
        assert ledger.newest_tip() is None
    assert (tmp_path / LEDGER_FILE).exists()
