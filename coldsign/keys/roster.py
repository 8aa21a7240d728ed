"""The roster: who the custodians are, by name, role and identity public key.

Auditors verify approvals and ceremony-log signatures against this file, so it is strict: a JSON
document, exactly

    {"format": "coldsign-roster", "version": 1,
     "custodians": [{"name", "role", "identity", "fingerprint", "index"}, ...]}

with `identity` the 32-byte Ed25519 public key in lower-case hex, `fingerprint` its short form
(`coldsign.keys.identity.fingerprint_of`, checked against the key so a mistyped or edited key is
caught), and `index` the rotation index of the identity path. Names and roles are free text
(roles such as custodian, approver, admin, auditor), non-empty, without control characters.

A name is one person and a key is one person: adding a name that is already there with another
key, or a key that is already there under another name, is Refused (exit 4); adding an identical
entry again changes nothing. A damaged file (not JSON, a missing or unknown field, a bad key, a
duplicate) is BadInput (exit 3) naming the entry.

`Roster.parse`/`serialize` are pure; `load` and `save` are the thin file edges (bounded read,
atomic write).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from coldsign.errors import BadInput, Refused
from coldsign.keys.identity import (FINGERPRINT_PATTERN, MAX_INDEX, PUBLIC_KEY_BYTES, fingerprint_of)
from coldsign.limits import LIMITS

ROSTER_FORMAT = "coldsign-roster"
ROSTER_VERSION = 1
ROSTER_MAX_BYTES = LIMITS.roster_file_max_bytes
ROSTER_MAX_CUSTODIANS = 1_000
TEXT_MAX_CHARS = 100           # a name or a role
_FIELDS = ("format", "version", "custodians")
_ENTRY_FIELDS = ("name", "role", "identity", "fingerprint", "index")
_KEY_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Custodian:
    """One roster entry: a person, their role, and their identity public key (32 bytes)."""

    name: str
    role: str
    identity: bytes
    index: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.identity)

    def to_json(self) -> dict:
        return {"name": self.name, "role": self.role, "identity": self.identity.hex(),
                "fingerprint": self.fingerprint, "index": self.index}

    def __repr__(self) -> str:
        return (f"Custodian(name={self.name!r}, role={self.role!r}, identity={self.fingerprint}, "
                f"index={self.index})")

    def describe(self) -> str:
        return f'"{self.name}" ({self.role}, identity {self.fingerprint})'


def check_text(value: object, what: str) -> str:
    """A name or role: a non-empty string without control characters or edge spaces. BadInput otherwise."""
    if not isinstance(value, str):
        raise BadInput(f"the {what} must be text", code="roster-entry")
    if not value or value != value.strip():
        raise BadInput(f"the {what} must be non-empty, without leading or trailing spaces", code="roster-entry")
    if len(value) > TEXT_MAX_CHARS:
        raise BadInput(f"the {what} is longer than {TEXT_MAX_CHARS} characters", code="roster-entry")
    # NOTE: line and paragraph separators (Zl, Zp) break a line on screen like a newline would
    if any(unicodedata.category(ch).startswith("C") or unicodedata.category(ch) in ("Zl", "Zp") for ch in value):
        raise BadInput(f"the {what} contains a control or invisible character", code="roster-entry")
    return value


def _same_name(a: str, b: str) -> bool:
    """Names that people would read as the same ("Alice" and "alice", NFC and NFD forms) are the same."""
    def fold(s: str) -> str:
        return unicodedata.normalize("NFKC", s).casefold()
    return fold(a) == fold(b)


@dataclass(frozen=True)
class Roster:
    """The custodians in the order they were added."""

    custodians: tuple[Custodian, ...] = ()

    # ------------------------------------------------------------ reading

    @classmethod
    def parse(cls, data: bytes, *, where: str | None = None) -> "Roster":
        """The roster in `data` (JSON bytes), validated strictly; BadInput naming what is wrong."""
        def bad(message: str, hint: str = "restore the roster from its signed copy or fix that entry"):
            return BadInput(message, where=where, code="roster", hint=hint)

        if len(data) > ROSTER_MAX_BYTES:
            raise bad(f"the roster is larger than the limit of {ROSTER_MAX_BYTES} bytes",
                      hint="check that this is the roster file")
        try:
            doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except (UnicodeDecodeError, ValueError) as err:
            raise bad(f"the roster is not valid JSON ({_short(err)})", hint="check that this is the roster "
                      "file and that it was copied whole") from None
        except RecursionError:
            raise bad("the roster is not valid JSON (nested too deeply)",
                      hint="check that this is the roster file") from None
        if not isinstance(doc, dict):
            raise bad("the roster is not a JSON object")
        if doc.get("format") != ROSTER_FORMAT:
            raise bad(f'the roster\'s "format" is not "{ROSTER_FORMAT}"', hint="check that this is the roster file")
        if doc.get("version") != ROSTER_VERSION or isinstance(doc.get("version"), bool):
            raise bad(f"roster version {doc.get('version')!r} is not supported (this coldsign reads version "
                      f"{ROSTER_VERSION})", hint="use the coldsign version that wrote it")
        extra = sorted(set(doc) - set(_FIELDS))
        if extra or "custodians" not in doc:
            raise bad(f"the roster has unknown fields {extra}" if extra else 'the roster has no "custodians" list')
        entries = doc["custodians"]
        if not isinstance(entries, list):
            raise bad('the roster\'s "custodians" is not a list')
        if len(entries) > ROSTER_MAX_CUSTODIANS:
            raise bad(f"the roster lists more than {ROSTER_MAX_CUSTODIANS} custodians")
        roster = cls()
        for position, entry in enumerate(entries, 1):
            label = _entry_label(position, entry)
            try:
                custodian = _parse_entry(entry)
            except BadInput as err:
                raise bad(f"{label}: {err.message}") from None
            clash = roster._clash(custodian)
            if clash is not None:
                raise bad(f"{label}: {clash}")
            roster = cls(roster.custodians + (custodian,))
        return roster

    def serialize(self) -> bytes:
        doc = {"format": ROSTER_FORMAT, "version": ROSTER_VERSION,
               "custodians": [c.to_json() for c in self.custodians]}
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def to_json(self) -> dict:
        return {"format": ROSTER_FORMAT, "version": ROSTER_VERSION,
                "custodians": [c.to_json() for c in self.custodians]}

    # ------------------------------------------------------------ queries

    def find(self, key: bytes | str) -> Custodian | None:
        """The custodian with this identity: 32 public-key bytes, 64 hex digits, or a fingerprint
        ("xxxx-xxxx-xxxx-xxxx", dashes optional, any case). None when no one has it."""
        if isinstance(key, (bytes, bytearray)):
            return next((c for c in self.custodians if c.identity == bytes(key)), None)
        text = key.strip().lower()
        if _KEY_HEX.fullmatch(text):
            return self.find(bytes.fromhex(text))
        compact = text.replace("-", "")
        if re.fullmatch(r"[0-9a-f]{16}", compact):
            return next((c for c in self.custodians if c.fingerprint.replace("-", "") == compact), None)
        raise BadInput(f"{key!r} is neither an identity public key (64 hex digits) nor a fingerprint "
                       "(xxxx-xxxx-xxxx-xxxx)", code="roster-lookup")

    def by_name(self, name: str) -> Custodian | None:
        return next((c for c in self.custodians if _same_name(c.name, name)), None)

    # ------------------------------------------------------------ changes

    def add(self, custodian: Custodian) -> tuple["Roster", bool]:
        """(the roster with `custodian`, whether it was added). An identical entry already present
        gives (self, False); a name or key already taken by someone else is Refused."""
        _parse_entry(custodian.to_json())  # the same rules as a loaded entry
        clash = self._clash(custodian)
        if clash is None:
            return Roster(self.custodians + (custodian,)), True
        if custodian in self.custodians:
            return self, False
        raise Refused(clash + "; nothing was changed", code="roster-duplicate",
                      hint="one person, one name, one identity key: remove or fix the old entry first "
                           "(a rotated key is added under the person's name only after the old one is removed)")

    def _clash(self, new: Custodian) -> str | None:
        for old in self.custodians:
            if old == new:
                return f"{old.describe()} is already in the roster"
            if _same_name(old.name, new.name):
                if old.identity != new.identity:
                    return (f'the name "{new.name}" is already in the roster with another identity key '
                            f"({old.fingerprint}, not {new.fingerprint})")
                return (f'"{old.name}" is already in the roster with this identity key, as {old.role} '
                        f'(index {old.index}); not adding it again as "{new.name}", {new.role} (index {new.index})')
            if old.identity == new.identity:
                return (f"identity {new.fingerprint} is already in the roster under the name "
                        f'"{old.name}", not "{new.name}"')
        return None


def load(path: Path | str) -> Roster:
    """The roster file at `path` (bounded read, strict parse). NotFound when there is none."""
    from coldsign.store import read_limited

    return Roster.parse(read_limited(path, ROSTER_MAX_BYTES, what="roster"), where=str(path))


def load_or_new(path: Path | str) -> Roster:
    """The roster at `path`, or an empty one when the file does not exist yet."""
    return load(path) if Path(path).exists() else Roster()


def save(path: Path | str, roster: Roster) -> Path:
    """Write the roster atomically (temp file, fsync, rename): a crash leaves the old or the new one."""
    from coldsign.store import atomic_write

    return atomic_write(path, roster.serialize(), mode=0o644)


# ---------------------------------------------------------------- helpers

def _parse_entry(entry: object) -> Custodian:
    if not isinstance(entry, dict):
        raise BadInput("the entry is not a JSON object", code="roster-entry")
    missing = [f for f in _ENTRY_FIELDS if f not in entry]
    extra = sorted(set(entry) - set(_ENTRY_FIELDS))
    if missing:
        raise BadInput(f"missing field {missing[0]!r}", code="roster-entry")
    if extra:
        raise BadInput(f"unknown field {extra[0]!r}", code="roster-entry")
    name = check_text(entry["name"], "name")
    role = check_text(entry["role"], "role")
    identity = entry["identity"]
    if not isinstance(identity, str) or not _KEY_HEX.fullmatch(identity):
        raise BadInput(f"identity is not a {PUBLIC_KEY_BYTES}-byte public key in lower-case hex "
                       f"({2 * PUBLIC_KEY_BYTES} digits)", code="roster-entry")
    key = bytes.fromhex(identity)
    fingerprint = entry["fingerprint"]
    if not isinstance(fingerprint, str) or not FINGERPRINT_PATTERN.fullmatch(fingerprint):
        raise BadInput("fingerprint is not of the form xxxx-xxxx-xxxx-xxxx (lower-case hex)", code="roster-entry")
    if fingerprint != fingerprint_of(key):
        raise BadInput(f"fingerprint {fingerprint} does not match the identity key (whose fingerprint is "
                       f"{fingerprint_of(key)})", code="roster-entry")
    index = entry["index"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise BadInput(f"index must be a whole number from 0 to {MAX_INDEX}", code="roster-entry")
    return Custodian(name=name, role=role, identity=key, index=index)


def _entry_label(position: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and name and len(name) <= TEXT_MAX_CHARS and name.isprintable():
        return f'custodian {position} ("{name}")'
    return f"custodian {position}"


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"field {key!r} appears twice")
        doc[key] = value
    return doc


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) <= 120 else text[:117] + "..."
