"""The regtest chain's output index: every output of every accepted block, and who spent it.

libbitcoinkernel validates blocks but offers no UTXO lookup, so coldsign keeps this SQLite file
(WAL mode) beside the chain. It must never disagree with the chain: `RegtestChain` adds a block
here in the same step that sees the kernel accept it, and on open rolls this index back to the
last block both agree on and re-reads the rest from the kernel's block files. Each block is one
SQLite transaction, so the index only ever holds whole blocks.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from coldsign.chain.blocks import COINBASE_MATURITY, RegtestBlock

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS transactions (
    txid TEXT PRIMARY KEY, height INTEGER NOT NULL, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (
    txid TEXT NOT NULL, vout INTEGER NOT NULL, amount_sat INTEGER NOT NULL,
    script_pubkey BLOB NOT NULL, height INTEGER NOT NULL, coinbase INTEGER NOT NULL,
    spent_by TEXT, spent_height INTEGER, PRIMARY KEY (txid, vout));
CREATE INDEX IF NOT EXISTS outputs_by_script ON outputs (script_pubkey) WHERE spent_by IS NULL;
CREATE INDEX IF NOT EXISTS outputs_by_spent_height ON outputs (spent_height);
CREATE INDEX IF NOT EXISTS transactions_by_height ON transactions (height);
"""


@dataclass(frozen=True)
class Utxo:
    """An unspent, confirmed output. `txid` is hex in display order."""

    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes
    height: int
    coinbase: bool

    def mature_at(self, height: int) -> bool:
        """Whether a block at `height` may spend this coin (coinbase needs 100 confirmations)."""
        return not self.coinbase or height - self.height >= COINBASE_MATURITY

    def to_json(self) -> dict:
        return {"txid": self.txid, "vout": self.vout, "amount_sat": self.amount_sat,
                "script_pubkey": self.script_pubkey.hex(), "height": self.height,
                "coinbase": self.coinbase}


@dataclass(frozen=True)
class PaidOutput:
    """An output of an accepted block, spent or not: `spent_by` is the spending txid or None."""

    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes
    height: int
    coinbase: bool
    spent_by: str | None
    spent_height: int | None


class ChainIndex:
    """SQLite outputs index. Not thread-safe; owned by one `RegtestChain`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits but never tears one; the
        # reconcile on open re-reads whatever the kernel kept.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise ValueError(f"index schema {row[0]} is not the supported {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # -- reading -------------------------------------------------------------------------

    def tip(self) -> tuple[int, str] | None:
        row = self._db.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1"
                               ).fetchone()
        return (row[0], row[1]) if row else None

    def block_hash_at(self, height: int) -> str | None:
        row = self._db.execute("SELECT hash FROM blocks WHERE height=?", (height,)).fetchone()
        return row[0] if row else None

    def unspent_output(self, txid: str, vout: int) -> Utxo | None:
        row = self._db.execute(
            "SELECT txid, vout, amount_sat, script_pubkey, height, coinbase FROM outputs "
            "WHERE txid=? AND vout=? AND spent_by IS NULL", (txid, vout)).fetchone()
        return _utxo(row) if row else None

    def utxos(self, scripts: Iterable[bytes]) -> list[Utxo]:
        found: list[Utxo] = []
        for script in dict.fromkeys(bytes(s) for s in scripts):
            rows = self._db.execute(
                "SELECT txid, vout, amount_sat, script_pubkey, height, coinbase FROM outputs "
                "WHERE script_pubkey=? AND spent_by IS NULL", (script,)).fetchall()
            found.extend(_utxo(r) for r in rows)
        return sorted(found, key=lambda u: (u.height, u.txid, u.vout))

    def transaction(self, txid: str) -> bytes | None:
        row = self._db.execute("SELECT raw FROM transactions WHERE txid=?", (txid,)).fetchone()
        return bytes(row[0]) if row else None

    def outputs_paid_to(self, scripts: Iterable[bytes]) -> list["PaidOutput"]:
        """Every output any of `scripts` ever received, spent or not, ordered by height (the
        watch half's gap limit counts a script as used once it received anything)."""
        # NOTE: `outputs_by_script` covers unspent rows only, so a full index on the script is
        # created on first use (idempotent; one autocommit statement).
        self._db.execute("CREATE INDEX IF NOT EXISTS outputs_by_any_script ON outputs (script_pubkey)")
        found: list[PaidOutput] = []
        for script in dict.fromkeys(bytes(s) for s in scripts):
            rows = self._db.execute(
                "SELECT txid, vout, amount_sat, script_pubkey, height, coinbase, spent_by, "
                "spent_height FROM outputs INDEXED BY outputs_by_any_script WHERE script_pubkey=?",
                (script,)).fetchall()
            found.extend(PaidOutput(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6], r[7])
                         for r in rows)
        return sorted(found, key=lambda o: (o.height, o.txid, o.vout))

    # -- writing -------------------------------------------------------------------------

    def add_block(self, height: int, block_hash: str, block: RegtestBlock) -> None:
        """Record an accepted block: its outputs, and its inputs as spends. One transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO blocks VALUES (?, ?)", (height, block_hash))
            # NOTE: the genesis coinbase is not in Core's UTXO set (it can never be spent).
            for position, tx in enumerate(block.transactions if height > 0 else ()):
                txid = tx.txid().hex()
                db.execute("INSERT OR REPLACE INTO transactions VALUES (?, ?, ?)",
                           (txid, height, tx.serialize()))
                coinbase = position == 0
                if not coinbase:
                    for inp in tx.vin:
                        db.execute("UPDATE outputs SET spent_by=?, spent_height=? "
                                   "WHERE txid=? AND vout=?",
                                   (txid, height, inp.txid.hex(), inp.vout))
                for vout, out in enumerate(tx.vout):
                    db.execute("INSERT OR REPLACE INTO outputs VALUES (?,?,?,?,?,?,NULL,NULL)",
                               (txid, vout, out.value, out.script_pubkey.data, height,
                                int(coinbase)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def rollback_to(self, height: int) -> int:
        """Forget every block above `height` (and what they created and spent).

        Returns how many blocks were forgotten.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute("DELETE FROM blocks WHERE height > ?", (height,)).rowcount
            db.execute("DELETE FROM outputs WHERE height > ?", (height,))
            db.execute("DELETE FROM transactions WHERE height > ?", (height,))
            db.execute("UPDATE outputs SET spent_by=NULL, spent_height=NULL "
                       "WHERE spent_height > ?", (height,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone


def _utxo(row) -> Utxo:
    return Utxo(txid=row[0], vout=row[1], amount_sat=row[2], script_pubkey=bytes(row[3]),
                height=row[4], coinbase=bool(row[5]))
