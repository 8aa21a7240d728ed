"""The watch-only coordinator's state: one SQLite database per home folder (`<home>/watch.sqlite`).

What it holds, in the domain's words: wallets (a name, the canonical descriptor, its network and
gap limit), the scripts derived from them (receive/change branch, index, address, whether the
chain ever paid them), the coins they hold or held (outpoint, amount, height or unconfirmed,
the txid that spent them), the raw transactions behind those coins (a PSBT's `non_witness_utxo`),
labels on addresses and coins, and the PSBTs built for withdrawals with their status.

How it stays whole:
  * stdlib `sqlite3` in WAL mode (readers never block the one writer), `synchronous=FULL`,
    foreign keys on; every change is one explicit `BEGIN IMMEDIATE ... COMMIT` (`transaction()`),
    so a killed process leaves the database as it was before or after a change, never between.
  * The schema is versioned in `PRAGMA user_version`; `MIGRATIONS[n]` takes version n to n+1,
    each applied inside its own transaction together with the version bump. A database written
    by a newer coldsign is refused rather than guessed at.
  * One truth per fact: a coin's label lives in `labels` (kind `output`, the outpoint), an
    address's in `labels` (kind `addr`); a coin shows its own label, else its address's. The
    kinds are BIP-329's names so an export needs no mapping.

An adapter at the edge (it does file I/O); the descriptor parser is imported only where a script
must be derived.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from coldsign.errors import BadInput, EnvironmentProblem, NotFound, UsageProblem
from coldsign.network import Network

DB_FILE = "watch.sqlite"
DEFAULT_GAP_LIMIT = 20
MAX_GAP_LIMIT = 1_000          # a typo like 200000 would derive scripts for minutes
MAX_LABEL_CHARS = 255          # BIP-329 suggests at most 255 characters
BUSY_TIMEOUT_S = 10            # how long a writer waits for another writer (a running sync)
PSBT_STATUSES = ("created", "sent", "partially_signed", "final", "broadcast", "confirmed")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OUTPOINT_RE = re.compile(r"[0-9a-f]{64}:[0-9]{1,10}")

# MIGRATIONS[n] takes the schema from version n to n+1. Append; never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: wallets, their scripts, coins, transactions, labels
    (
        """CREATE TABLE wallets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            descriptor TEXT NOT NULL,
            network TEXT NOT NULL CHECK (network IN ('main', 'test', 'signet', 'regtest')),
            gap_limit INTEGER NOT NULL CHECK (gap_limit BETWEEN 1 AND 1000),
            created TEXT NOT NULL)""",
        """CREATE TABLE scripts (
            wallet_id INTEGER NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
            change INTEGER NOT NULL CHECK (change IN (0, 1)),
            idx INTEGER NOT NULL CHECK (idx >= 0),
            script_pubkey BLOB NOT NULL,
            address TEXT NOT NULL,
            used INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
            PRIMARY KEY (wallet_id, change, idx),
            UNIQUE (wallet_id, script_pubkey))""",
        """CREATE TABLE transactions (
            txid TEXT PRIMARY KEY,
            raw BLOB NOT NULL,
            height INTEGER)""",
        """CREATE TABLE coins (
            wallet_id INTEGER NOT NULL,
            outpoint TEXT NOT NULL,
            change INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            amount_sat INTEGER NOT NULL CHECK (amount_sat >= 0),
            height INTEGER,
            spent_by TEXT,
            PRIMARY KEY (wallet_id, outpoint),
            FOREIGN KEY (wallet_id, change, idx) REFERENCES scripts (wallet_id, change, idx)
                ON DELETE CASCADE)""",
        "CREATE INDEX coins_unspent ON coins (wallet_id) WHERE spent_by IS NULL",
        """CREATE TABLE labels (
            wallet_id INTEGER NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('addr', 'output')),
            ref TEXT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (wallet_id, kind, ref))""",
    ),
    # v2: the PSBTs built for withdrawals, and the chain tip each wallet was last synced to
    (
        """CREATE TABLE psbts (
            id INTEGER PRIMARY KEY,
            wallet_id INTEGER NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('created', 'sent', 'partially_signed', 'final',
                                                   'broadcast', 'confirmed')),
            psbt BLOB NOT NULL,
            txid TEXT NOT NULL)""",
        "CREATE INDEX psbts_by_wallet ON psbts (wallet_id, id)",
        "ALTER TABLE wallets ADD COLUMN tip_height INTEGER",
        "ALTER TABLE wallets ADD COLUMN tip_hash TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class WalletRecord:
    id: int
    name: str
    descriptor: str          # canonical `/<0;1>/*` text with checksum
    network: Network
    gap_limit: int
    created: str             # ISO 8601, UTC
    tip_height: int | None   # the chain tip of the last completed sync, None before the first
    tip_hash: str | None

    def parse(self):
        """The wallet's `WalletDescriptor` (imports the descriptor parser)."""
        from coldsign.wallet.descriptor import WalletDescriptor

        return WalletDescriptor.parse(self.descriptor, self.network)

    def to_json(self) -> dict:
        return {"name": self.name, "descriptor": self.descriptor, "network": self.network.value,
                "gap_limit": self.gap_limit, "created": self.created,
                "tip_height": self.tip_height, "tip_hash": self.tip_hash}


@dataclass(frozen=True)
class ScriptRecord:
    change: int
    index: int
    script_pubkey: bytes
    address: str
    used: bool


@dataclass(frozen=True)
class CoinRecord:
    outpoint: str            # "txid:vout", txid in display hex
    amount_sat: int
    change: int
    index: int
    script_pubkey: bytes
    address: str
    height: int | None       # None while unconfirmed
    spent_by: str | None     # the spending txid, None while unspent
    label: str | None        # the coin's own label, else its address's

    @property
    def txid(self) -> str:
        return self.outpoint.split(":")[0]

    @property
    def vout(self) -> int:
        return int(self.outpoint.split(":")[1])

    def to_json(self) -> dict:
        return {"outpoint": self.outpoint, "amount_sat": self.amount_sat, "change": self.change,
                "index": self.index, "address": self.address, "height": self.height,
                "spent_by": self.spent_by, "label": self.label}


@dataclass(frozen=True)
class Balance:
    confirmed: int
    unconfirmed: int

    @property
    def total(self) -> int:
        return self.confirmed + self.unconfirmed

    def to_json(self) -> dict:
        return {"confirmed_sat": self.confirmed, "unconfirmed_sat": self.unconfirmed,
                "total_sat": self.total}


@dataclass(frozen=True)
class PsbtRecord:
    id: int
    wallet: str
    created: str
    updated: str
    status: str
    psbt: bytes
    txid: str

    def to_json(self) -> dict:
        return {"id": self.id, "wallet": self.wallet, "created": self.created,
                "updated": self.updated, "status": self.status, "txid": self.txid}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class WatchDB:
    """The watch database. Use as a context manager; not shared between threads."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            if not self.path.exists():
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # NOTE: the file holds xpubs and the wallet's whole history: owner-only (SQLite
                # gives its -wal and -shm files the same mode).
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as e:
            raise EnvironmentProblem(f"cannot open the watch database: {e}", where=str(self.path)) from None
        try:
            self._conn.execute("PRAGMA foreign_keys=ON")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise EnvironmentProblem(f"the watch database cannot use WAL mode (got {mode})",
                                         where=str(self.path))
            self._conn.execute("PRAGMA synchronous=FULL")
            self.migrate()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise EnvironmentProblem(f"the watch database is unreadable: {e}", where=str(self.path),
                                     hint="restore it from a backup, or move it away and import "
                                          "the wallets again (a sync rebuilds the coins)") from None
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, home: Path | str) -> "WatchDB":
        """The database of a home folder, created (and migrated) as needed."""
        return cls(Path(home) / DB_FILE)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "WatchDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WatchDB {self.path}>"

    # -- schema --------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the missing migrations up to `target`, each in its own transaction (with its
        version bump); returns the version reached."""
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise EnvironmentProblem(f"the watch database has schema version {current}; this "
                                     f"coldsign knows up to {SCHEMA_VERSION}", where=str(self.path),
                                     hint="upgrade coldsign")
        for version in range(current, target):
            with self.transaction():
                for statement in MIGRATIONS[version]:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {version + 1}")
        return self.schema_version

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: BEGIN IMMEDIATE (waits for another writer), COMMIT, or ROLLBACK
        on any exception."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        if not self._conn.in_transaction:
            raise RuntimeError("watch database writes belong inside db.transaction()")
        return self._conn.execute(sql, args)

    # -- wallets -------------------------------------------------------------------------

    def add_wallet(self, name: str, descriptor, *, gap_limit: int = DEFAULT_GAP_LIMIT) -> WalletRecord:
        """Add a watch-only wallet from a parsed `WalletDescriptor` (stored in canonical form);
        BadInput when the name is malformed or taken, UsageProblem for a gap limit out of range."""
        if not _NAME_RE.fullmatch(name or ""):
            raise BadInput(f"wallet name {name!r} is not allowed",
                           hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if not 1 <= gap_limit <= MAX_GAP_LIMIT:
            raise UsageProblem(f"gap limit must be between 1 and {MAX_GAP_LIMIT}, got {gap_limit}")
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM wallets WHERE name=?", (name,)).fetchone():
                raise BadInput(f"a wallet named {name!r} exists already",
                               hint="pick another name, or look at it with `coldsign watch show`")
            self._write("INSERT INTO wallets (name, descriptor, network, gap_limit, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (name, descriptor.canonical(), descriptor.network.value, gap_limit, _now()))
        return self.wallet(name)

    def wallet(self, name: str) -> WalletRecord:
        row = self._conn.execute(f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no watch wallet named {name!r}",
                           hint="list them with `coldsign watch list`, or add it with `coldsign watch import`")
        return _wallet(row)

    def list_wallets(self) -> list[WalletRecord]:
        rows = self._conn.execute(f"SELECT {_WALLET_COLUMNS} FROM wallets ORDER BY name").fetchall()
        return [_wallet(r) for r in rows]

    def set_tip(self, wallet_id: int, height: int, block_hash: str) -> None:
        self._write("UPDATE wallets SET tip_height=?, tip_hash=? WHERE id=?", (height, block_hash, wallet_id))

    # -- scripts -------------------------------------------------------------------------

    def scripts(self, wallet: str, change: int | None = None) -> list[ScriptRecord]:
        wallet_id = self.wallet(wallet).id
        sql = "SELECT change, idx, script_pubkey, address, used FROM scripts WHERE wallet_id=?"
        args: tuple = (wallet_id,)
        if change is not None:
            sql, args = sql + " AND change=?", (wallet_id, change)
        rows = self._conn.execute(sql + " ORDER BY change, idx", args).fetchall()
        return [ScriptRecord(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def record_script(self, wallet_id: int, change: int, index: int, script_pubkey: bytes,
                      address: str, used: bool) -> None:
        """Insert a derived script, or mark a known one used (never back to unused: an address
        once paid is not handed out again, even if a reorg took the payment away)."""
        self._write("INSERT INTO scripts (wallet_id, change, idx, script_pubkey, address, used) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (wallet_id, change, idx) "
                    "DO UPDATE SET used = max(used, excluded.used)",
                    (wallet_id, change, index, bytes(script_pubkey), address, int(used)))

    def next_unused(self, wallet: str, change: int = 0) -> tuple[int, str]:
        """(index, address) of the lowest never-used script of the branch, deriving and
        recording the next one when every known script was used."""
        if change not in (0, 1):
            raise BadInput(f"change must be 0 (receive) or 1 (change), got {change}")
        record = self.wallet(wallet)
        row = self._conn.execute("SELECT idx, address FROM scripts WHERE wallet_id=? AND change=? "
                                 "AND used=0 ORDER BY idx LIMIT 1", (record.id, change)).fetchone()
        if row:
            return row[0], row[1]
        (highest,) = self._conn.execute("SELECT max(idx) FROM scripts WHERE wallet_id=? AND change=?",
                                        (record.id, change)).fetchone()
        index = 0 if highest is None else highest + 1
        descriptor = record.parse()
        address = descriptor.address(change, index)
        with self.transaction():
            self.record_script(record.id, change, index, descriptor.script_pubkey(change, index),
                               address, False)
        return index, address

    # -- labels --------------------------------------------------------------------------

    def set_label(self, wallet: str, ref: str, text: str) -> None:
        """Label an address or a coin (`txid:vout`) of the wallet; empty text removes the label."""
        record = self.wallet(wallet)
        kind, ref = self._label_ref(record.id, ref)
        if len(text) > MAX_LABEL_CHARS or any(ord(c) < 32 for c in text):
            raise BadInput(f"a label is at most {MAX_LABEL_CHARS} printable characters")
        with self.transaction():
            if text:
                self._write("INSERT INTO labels VALUES (?, ?, ?, ?) ON CONFLICT (wallet_id, kind, ref) "
                            "DO UPDATE SET text=excluded.text", (record.id, kind, ref, text))
            else:
                self._write("DELETE FROM labels WHERE wallet_id=? AND kind=? AND ref=?",
                            (record.id, kind, ref))

    def label(self, wallet: str, ref: str) -> str | None:
        record = self.wallet(wallet)
        kind, ref = self._label_ref(record.id, ref)
        row = self._conn.execute("SELECT text FROM labels WHERE wallet_id=? AND kind=? AND ref=?",
                                 (record.id, kind, ref)).fetchone()
        return row[0] if row else None

    def _label_ref(self, wallet_id: int, ref: str) -> tuple[str, str]:
        if ":" in ref:
            ref = ref.lower()
            if not _OUTPOINT_RE.fullmatch(ref):
                raise BadInput(f"{ref!r} is not an outpoint (txid:vout)")
            found = self._conn.execute("SELECT 1 FROM coins WHERE wallet_id=? AND outpoint=?",
                                       (wallet_id, ref)).fetchone()
            kind = "output"
        else:
            found = self._conn.execute("SELECT 1 FROM scripts WHERE wallet_id=? AND address=?",
                                       (wallet_id, ref)).fetchone()
            kind = "addr"
        if not found:
            raise NotFound(f"{ref} is not a known {'coin' if kind == 'output' else 'address'} of "
                           f"this wallet", hint="sync the wallet first, or check the text")
        return kind, ref

    # -- coins and transactions ----------------------------------------------------------

    def coins(self, wallet: str, *, include_spent: bool = False,
              confirmed_only: bool = False) -> list[CoinRecord]:
        """The wallet's coins, oldest first (unconfirmed last)."""
        wallet_id = self.wallet(wallet).id
        sql = _COIN_QUERY
        if not include_spent:
            sql += " AND c.spent_by IS NULL"
        if confirmed_only:
            sql += " AND c.height IS NOT NULL"
        sql += " ORDER BY c.height IS NULL, c.height, c.outpoint"
        return [_coin(r) for r in self._conn.execute(sql, (wallet_id,)).fetchall()]

    def balance(self, wallet: str) -> Balance:
        """(confirmed, unconfirmed) sum of the unspent coins, in sat."""
        wallet_id = self.wallet(wallet).id
        confirmed, unconfirmed = self._conn.execute(
            "SELECT coalesce(sum(CASE WHEN height IS NOT NULL THEN amount_sat END), 0), "
            "coalesce(sum(CASE WHEN height IS NULL THEN amount_sat END), 0) "
            "FROM coins WHERE wallet_id=? AND spent_by IS NULL", (wallet_id,)).fetchone()
        return Balance(confirmed, unconfirmed)

    def put_coin(self, wallet_id: int, outpoint: str, change: int, index: int, amount_sat: int,
                 height: int | None) -> None:
        """Insert a coin the chain shows unspent, or bring a known one up to date (its height,
        and unspent again if a reorg undid its spend)."""
        self._write("INSERT INTO coins (wallet_id, outpoint, change, idx, amount_sat, height) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (wallet_id, outpoint) "
                    "DO UPDATE SET height=excluded.height, spent_by=NULL",
                    (wallet_id, outpoint, change, index, amount_sat, height))

    def mark_spent(self, wallet_id: int, outpoint: str, spent_by: str) -> None:
        self._write("UPDATE coins SET spent_by=? WHERE wallet_id=? AND outpoint=?",
                    (spent_by, wallet_id, outpoint))

    def forget_coin(self, wallet_id: int, outpoint: str) -> None:
        """Remove a coin whose creating transaction the chain no longer has (a reorg)."""
        self._write("DELETE FROM coins WHERE wallet_id=? AND outpoint=?", (wallet_id, outpoint))

    def put_transaction(self, txid: str, raw: bytes | None, height: int | None) -> None:
        """Record a raw transaction, or update a known one's height (raw None: height only)."""
        if raw is None:
            self._write("UPDATE transactions SET height=? WHERE txid=?", (height, txid))
        else:
            self._write("INSERT INTO transactions VALUES (?, ?, ?) ON CONFLICT (txid) "
                        "DO UPDATE SET height=excluded.height", (txid, bytes(raw), height))

    def transaction_raw(self, txid: str) -> bytes | None:
        row = self._conn.execute("SELECT raw FROM transactions WHERE txid=?", (txid,)).fetchone()
        return bytes(row[0]) if row else None

    def known_txids(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT txid FROM transactions")}

    # -- PSBTs ---------------------------------------------------------------------------

    def add_psbt(self, wallet: str, psbt: bytes, txid: str, *, status: str = "created") -> int:
        """Store a withdrawal PSBT (its serialized bytes) and return its id."""
        _check_status(status)
        wallet_id = self.wallet(wallet).id
        now = _now()
        with self.transaction():
            cursor = self._write("INSERT INTO psbts (wallet_id, created, updated, status, psbt, txid) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (wallet_id, now, now, status, bytes(psbt), txid))
        return int(cursor.lastrowid)

    def set_psbt_status(self, psbt_id: int, status: str, psbt: bytes | None = None) -> PsbtRecord:
        """Move a PSBT to `status`, replacing its bytes when given (signatures merged)."""
        _check_status(status)
        self.psbt(psbt_id)
        with self.transaction():
            if psbt is None:
                self._write("UPDATE psbts SET status=?, updated=? WHERE id=?", (status, _now(), psbt_id))
            else:
                self._write("UPDATE psbts SET status=?, updated=?, psbt=? WHERE id=?",
                            (status, _now(), bytes(psbt), psbt_id))
        return self.psbt(psbt_id)

    def psbt(self, psbt_id: int) -> PsbtRecord:
        row = self._conn.execute(_PSBT_QUERY + " WHERE p.id=?", (psbt_id,)).fetchone()
        if row is None:
            raise NotFound(f"no PSBT with id {psbt_id}", hint="list them with `coldsign watch show NAME`")
        return _psbt(row)

    def psbts(self, wallet: str) -> list[PsbtRecord]:
        wallet_id = self.wallet(wallet).id
        rows = self._conn.execute(_PSBT_QUERY + " WHERE p.wallet_id=? ORDER BY p.id", (wallet_id,)).fetchall()
        return [_psbt(r) for r in rows]


_WALLET_COLUMNS = "id, name, descriptor, network, gap_limit, created, tip_height, tip_hash"
_COIN_QUERY = (
    "SELECT c.outpoint, c.amount_sat, c.change, c.idx, s.script_pubkey, s.address, c.height, "
    "c.spent_by, coalesce(lo.text, la.text) FROM coins c "
    "JOIN scripts s ON s.wallet_id=c.wallet_id AND s.change=c.change AND s.idx=c.idx "
    "LEFT JOIN labels lo ON lo.wallet_id=c.wallet_id AND lo.kind='output' AND lo.ref=c.outpoint "
    "LEFT JOIN labels la ON la.wallet_id=c.wallet_id AND la.kind='addr' AND la.ref=s.address "
    "WHERE c.wallet_id=?")
_PSBT_QUERY = ("SELECT p.id, w.name, p.created, p.updated, p.status, p.psbt, p.txid "
               "FROM psbts p JOIN wallets w ON w.id=p.wallet_id")


def _check_status(status: str) -> None:
    if status not in PSBT_STATUSES:
        raise BadInput(f"unknown PSBT status {status!r}", hint=f"one of: {', '.join(PSBT_STATUSES)}")


def _wallet(row) -> WalletRecord:
    return WalletRecord(row[0], row[1], row[2], Network(row[3]), row[4], row[5], row[6], row[7])


def _coin(row) -> CoinRecord:
    return CoinRecord(row[0], row[1], row[2], row[3], bytes(row[4]), row[5], row[6], row[7], row[8])


def _psbt(row) -> PsbtRecord:
    return PsbtRecord(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), row[6])
