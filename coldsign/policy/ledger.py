"""The signer's ledger: what it signed under a policy, the chain tips it saw, what it refused.

One SQLite file per home folder, `<home>/ledger.sqlite`. The policy engine asks it three things
(`coldsign.policy.evaluate` sees only these, the `LedgerView` protocol): how many sats a wallet
signed away since a moment (velocity), whether a request nonce was ever signed (replay), and the
newest chain tip height a signed request carried (a request built on an older tip is stale).

How it stays whole:
  * stdlib `sqlite3`, WAL journal, `synchronous=FULL`: a committed row survives a power cut, so a
    reboot never resets a velocity counter (unlike RAM counters in a hardware wallet's HSM mode).
  * Append-only: the API has no update or delete, and triggers abort any UPDATE or DELETE on the
    tables, so even a hand-edited query cannot quietly shrink what was signed.
  * `record_signed` claims the nonce (UNIQUE) and records the amount and the chain tip in ONE
    transaction. A second signing of the same nonce fails on the constraint, also when two signer
    processes race.

Order on the signer (`psbt sign --request`): evaluate -> read the seed -> sign -> check the new
signatures -> `record_signed` (evaluate again under the write lock, then commit) -> write the
signed PSBT. The second evaluation closes a race: two signings started together both saw the
ledger before either was recorded, and together could pass a velocity limit each passed alone. Recording comes *before* the
output exists on purpose: a crash between the two leaves a claimed nonce and counted amount with no
signed file (the coordinator asks again with a fresh request; velocity errs on the safe side), never
a signed file whose nonce could be signed a second time.

Velocity counts every entry signed at or after `since`, including entries dated after "now": a
signer whose clock was set back cannot free its limit that way (moving a clock forward still can;
the stale-tip check and request expiry narrow that, a policy window cannot close it alone).

When the ledger is lost. A new ledger draws a random 128-bit `ledger_id` (table `meta`, written
once). `policy install` (`coldsign.policy.installed.install`) records the current ledger's id in
`<home>/policy/installed.json` as "ledger_id" (`ledger_id_for_install`, which creates the ledger
when there is none), after every check of the install passed. Before evaluating a request,
`open_for_policy` checks that the ledger exists and carries exactly that id; otherwise the signer
refuses every request, `psbt sign --request` and the `policy evaluate` dry run alike (Refused
`ledger-missing` / `ledger-mismatch`, exit 4: nothing is signed, a missing ledger is not
re-created), because it can no longer tell which nonces it signed or how much left in the last
window. The way back is a fresh policy version signed by the admin quorum of the installed policy
and installed: the install creates a new, empty ledger and records its id, a deliberate, signed
reset (the admins decide whether to lower the limits for the first window). Until then nothing is
signed.
What the reset cannot know: a request signed before the loss and not yet expired could be signed
again, and velocity and the newest tip start from nothing; requests expire (hours), so admins who
wait out the longest request lifetime before installing close that gap. A damaged ledger
(`ledger-damaged`) is not replaced silently either: move it aside for the audit, then install the
new version. Restoring an old copy of the ledger keeps its id and so is not detected: keep the
ledger with the signer, not in backups.

An adapter at the edge (file I/O). Times are UTC, stored as whole Unix seconds.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

from coldsign.errors import BadInput, EnvironmentProblem, Refused

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10

_TABLES = ("meta", "signed", "tips", "refusals")
SCHEMA = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE signed (
        id INTEGER PRIMARY KEY,
        nonce TEXT NOT NULL UNIQUE,
        psbt_sha256 TEXT NOT NULL,
        wallet TEXT NOT NULL,
        amount_sat INTEGER NOT NULL CHECK (amount_sat >= 0),
        signed_at INTEGER NOT NULL,
        tip_height INTEGER NOT NULL CHECK (tip_height >= 0),
        rule TEXT NOT NULL)""",
    "CREATE INDEX signed_by_wallet ON signed (wallet, signed_at)",
    """CREATE TABLE tips (
        id INTEGER PRIMARY KEY,
        height INTEGER NOT NULL CHECK (height >= 0),
        hash TEXT NOT NULL,
        seen_at INTEGER NOT NULL)""",
    """CREATE TABLE refusals (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        nonce TEXT,
        rule TEXT,
        reason TEXT NOT NULL)""",
    *(f"""CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table}
          BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"""
      for table in _TABLES for verb in ("update", "delete")),
)


class LedgerView(Protocol):
    """What evaluation reads from the ledger (a `Ledger` is one)."""

    def signed_since(self, wallet: str, since: datetime) -> int: ...

    def nonce_seen(self, nonce: str) -> bool: ...

    def newest_tip(self) -> int | None: ...


@dataclass(frozen=True)
class SignedEntry:
    nonce: str
    psbt_sha256: str
    wallet: str
    amount_sat: int
    signed_at: datetime
    tip_height: int
    rule: str


@dataclass(frozen=True)
class RefusalEntry:
    time: datetime
    nonce: str | None
    rule: str | None
    reason: str


def ledger_path(home: Path | str) -> Path:
    return Path(home) / LEDGER_FILE


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware (UTC)")
    return int(moment.timestamp())


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


DAMAGED_HINT = "do not delete it: keep it for the audit and ask the admins for a reset"


class _Guarded:
    """The SQLite connection, its errors said in coldsign's words: a file whose pages are damaged
    opens fine and fails only on the first query ("database disk image is malformed"), which must
    be BadInput `ledger-damaged` (exit 3), not a crash. A constraint violation stays an
    IntegrityError for `record_signed`; a lock or a read-only file is EnvironmentProblem."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._connection, self._path = connection, path

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        try:
            return self._connection.execute(sql, params)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.OperationalError as e:
            if any(word in str(e) for word in ("locked", "busy", "readonly", "read-only")):
                raise EnvironmentProblem(f"the signer's ledger is busy or read-only: {e}", where=str(self._path),
                                         code="ledger-busy", hint="another coldsign process holds it; wait for "
                                         "it to finish") from None
            raise _damaged(self._path, e) from None
        except sqlite3.DatabaseError as e:
            raise _damaged(self._path, e) from None

    def close(self) -> None:
        self._connection.close()


def _damaged(path: Path, error: Exception) -> BadInput:
    return BadInput(f"the signer's ledger is damaged or not a ledger: {error}", where=str(path),
                    code="ledger-damaged", hint=DAMAGED_HINT)


class Ledger:
    """The ledger file, open. Use `Ledger.open(home)`; close it (or use `with`)."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._db = _Guarded(connection, path)
        self.path = path

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, home: Path | str, *, create: bool = True) -> "Ledger":
        """The ledger of `home`; a new one (fresh id) when none exists and `create` is set."""
        path = ledger_path(home)
        if not path.exists() and not create:
            raise Refused(f"the signer's ledger {path} does not exist", code="ledger-missing",
                          hint="a signer that lost its ledger needs a fresh admin-signed policy version")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            ledger = cls(db, path)
            ledger._migrate()
        except sqlite3.DatabaseError as e:
            raise _damaged(path, e) from None
        return ledger

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise BadInput(f"ledger schema version {version} is newer than this coldsign knows "
                           f"({SCHEMA_VERSION})", where=str(self.path), code="ledger-version",
                           hint="use the coldsign version that wrote it")
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('ledger_id', ?), ('created', ?)",
                             (secrets.token_hex(16), datetime.now(timezone.utc).isoformat()))
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self):
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def ledger_id(self) -> str:
        return self._db.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0]

    # --- what evaluation reads -------------------------------------------------------------------

    def signed_since(self, wallet: str, since: datetime) -> int:
        """Sats `wallet` signed away at or after `since` (entries dated later than now count too)."""
        row = self._db.execute("SELECT COALESCE(SUM(amount_sat), 0) FROM signed WHERE wallet = ? AND "
                               "signed_at >= ?", (wallet, _seconds(since))).fetchone()
        return int(row[0])

    def nonce_seen(self, nonce: str) -> bool:
        return self._db.execute("SELECT 1 FROM signed WHERE nonce = ?", (nonce,)).fetchone() is not None

    def newest_tip(self) -> int | None:
        """The highest chain tip height any signed request carried; None before the first."""
        return self._db.execute("SELECT MAX(height) FROM tips").fetchone()[0]

    # --- appending -------------------------------------------------------------------------------

    def record_signed(self, *, nonce: str, psbt_sha256: str, wallet: str, amount_sat: int,
                      signed_at: datetime, tip_height: int, tip_hash: str, rule: str,
                      recheck: Callable[["Ledger"], None] | None = None) -> None:
        """Claim `nonce` and record the signing and its chain tip, in one transaction.

        A nonce already recorded is Refused (`nonce-replayed`) and nothing is written. Call this
        after the signatures are made and checked, before the signed PSBT is written out.

        `recheck(ledger)` runs inside the transaction, holding the write lock, before anything is
        written; whatever it raises rolls back and propagates. The signer re-makes its decision
        there: another process may have recorded a signing since this one evaluated (while it
        waited at the password prompt), and velocity and the chain tip must count it.
        """
        try:
            with self._transaction():
                if recheck is not None:
                    recheck(self)
                self._db.execute("INSERT INTO signed (nonce, psbt_sha256, wallet, amount_sat, signed_at, "
                                 "tip_height, rule) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (nonce, psbt_sha256, wallet, amount_sat, _seconds(signed_at), tip_height, rule))
                self._db.execute("INSERT INTO tips (height, hash, seen_at) VALUES (?, ?, ?)",
                                 (tip_height, tip_hash, _seconds(signed_at)))
        except sqlite3.IntegrityError as e:
            if "signed.nonce" in str(e):
                raise Refused(f"request nonce {nonce} was already signed by this signer", code="nonce-replayed",
                              hint="the coordinator must create a new request") from None
            raise BadInput(f"ledger entry refused: {e}", where=str(self.path), code="ledger-entry") from None

    def record_refusal(self, *, time: datetime, nonce: str | None, rule: str | None, reason: str) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO refusals (time, nonce, rule, reason) VALUES (?, ?, ?, ?)",
                             (_seconds(time), nonce, rule, reason))

    # --- reading it back (audit, tests) ----------------------------------------------------------

    def signed(self) -> list[SignedEntry]:
        rows = self._db.execute("SELECT nonce, psbt_sha256, wallet, amount_sat, signed_at, tip_height, rule "
                                "FROM signed ORDER BY id").fetchall()
        return [SignedEntry(r[0], r[1], r[2], r[3], _moment(r[4]), r[5], r[6]) for r in rows]

    def refusals(self) -> list[RefusalEntry]:
        rows = self._db.execute("SELECT time, nonce, rule, reason FROM refusals ORDER BY id").fetchall()
        return [RefusalEntry(_moment(r[0]), r[1], r[2], r[3]) for r in rows]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: _Guarded):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")     # busy or read-only: EnvironmentProblem (see _Guarded)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


# --- the ledger and the installed policy ---------------------------------------------------------


def ledger_id_for_install(home: Path | str) -> str:
    """The id `policy install` records as "ledger_id" in installed.json (creating the ledger)."""
    with Ledger.open(home) as ledger:
        return ledger.ledger_id


def open_for_policy(home: Path | str, meta: dict | None) -> Ledger:
    """The ledger to evaluate and record under the installed policy whose record is `meta`.

    When `meta` names a "ledger_id", the ledger must exist and carry it (else Refused
    `ledger-missing` / `ledger-mismatch`). A record without one (or no installed policy) opens
    the ledger, creating it when needed.
    """
    expected = (meta or {}).get("ledger_id")
    path = ledger_path(home)
    hint = ("the signer's record of what it signed is gone: ask the admin quorum to sign and install a new "
            "policy version (that resets the ledger deliberately)")
    if expected is not None and not path.exists():
        raise Refused(f"the policy was installed with ledger {expected}, but {path} is missing",
                      code="ledger-missing", hint=hint)
    ledger = Ledger.open(home)
    if expected is not None and ledger.ledger_id != expected:
        found = ledger.ledger_id
        ledger.close()
        raise Refused(f"the ledger is {found}, not the ledger {expected} the installed policy was bound to",
                      code="ledger-mismatch", hint=hint)
    return ledger
