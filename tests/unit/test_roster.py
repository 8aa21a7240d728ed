"""The roster (coldsign.keys.roster): strict parsing, adding without duplicates, lookups, atomic saves.

Custodians are the walletkit cosigners' identity keys at index 0 (tests/walletkit.py: alice, bob,
carol = BIP-39 words of entropy 0x01/0x02/0x03 * 16, no passphrase): "Alice" the admin, "Bob" an
approver, "Carol" a custodian.
"""

from __future__ import annotations

import json

import pytest

import walletkit as W
from coldsign.errors import BadInput, NotFound, Refused
from coldsign.keys import roster as R
from coldsign.keys.identity import IdentityKey, fingerprint_of

KEYS = {name: IdentityKey.from_seed(W.seed(name)).public_key for name in W.COSIGNERS}
ALICE = R.Custodian("Alice", "admin", KEYS["alice"])
BOB = R.Custodian("Bob", "approver", KEYS["bob"])
CAROL = R.Custodian("Carol", "custodian", KEYS["carol"], index=0)


def roster_of(*custodians: R.Custodian) -> R.Roster:
    roster = R.Roster()
    for c in custodians:
        roster, added = roster.add(c)
        assert added
    return roster


def entry(custodian: R.Custodian, **changes) -> dict:
    doc = custodian.to_json()
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not DROP}


DROP = object()


def document(*entries: dict, **top) -> bytes:
    doc = {"format": "coldsign-roster", "version": 1, "custodians": list(entries)}
    doc.update(top)
    return json.dumps({k: v for k, v in doc.items() if v is not DROP}).encode()


# ---------------------------------------------------------------- the format

def test_serialize_is_the_documented_format_and_parses_back():
    roster = roster_of(ALICE, BOB)
    doc = json.loads(roster.serialize())
    assert doc == {"format": "coldsign-roster", "version": 1, "custodians": [
        {"name": "Alice", "role": "admin", "identity": KEYS["alice"].hex(),
         "fingerprint": fingerprint_of(KEYS["alice"]), "index": 0},
        {"name": "Bob", "role": "approver", "identity": KEYS["bob"].hex(),
         "fingerprint": fingerprint_of(KEYS["bob"]), "index": 0}]}
    assert R.Roster.parse(roster.serialize()) == roster
    assert roster.to_json() == doc


def test_names_and_roles_are_free_text():
    ana = R.Custodian("Ana María Lima-O'Brien", "treasury approver (EU)", KEYS["carol"], index=4)
    assert R.Roster.parse(roster_of(ana).serialize()).custodians == (ana,)


def key_hex(name: str) -> str:
    return KEYS[name].hex()


INVALID = [
    ("not JSON", b"{", "the roster is not valid JSON (Expecting property name enclosed in double quotes: "
                        "line 1 column 2 (char 1))"),
    ("not UTF-8", b"\xff\xfe", "the roster is not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: "
                               "invalid start byte)"),
    ("a list", b"[]", "the roster is not a JSON object"),
    ("wrong format", document(format="coldsign-wallet"), 'the roster\'s "format" is not "coldsign-roster"'),
    ("version 2", document(version=2), "roster version 2 is not supported (this coldsign reads version 1)"),
    ("version true", document(version=True), "roster version True is not supported (this coldsign reads version 1)"),
    ("no custodians", document(custodians=DROP), 'the roster has no "custodians" list'),
    ("extra field", document(signed_by="x"), "the roster has unknown fields ['signed_by']"),
    ("custodians not a list", document(custodians={}), 'the roster\'s "custodians" is not a list'),
    ("duplicate JSON field", b'{"format": "coldsign-roster", "format": "x", "version": 1, "custodians": []}',
     "the roster is not valid JSON (field 'format' appears twice)"),
    ("entry not an object", document("Alice"), "custodian 1: the entry is not a JSON object"),
    ("missing key", document(entry(ALICE), entry(BOB, identity=DROP)),
     "custodian 2 (\"Bob\"): missing field 'identity'"),
    ("unknown entry field", document(entry(ALICE, email="a@example.com")),
     "custodian 1 (\"Alice\"): unknown field 'email'"),
    ("empty name", document(entry(ALICE, name="")), "custodian 1: the name must be non-empty, without leading "
                                                   "or trailing spaces"),
    ("padded role", document(entry(ALICE, role=" admin")), "custodian 1 (\"Alice\"): the role must be non-empty, "
                                                          "without leading or trailing spaces"),
    ("control character", document(entry(ALICE, name="Ali\u200bce")),
     "custodian 1: the name contains a control or invisible character"),
    ("line separator", document(entry(ALICE, name="Alice\u2028Bob")),   # shown as two lines on a screen
     "custodian 1: the name contains a control or invisible character"),
    ("paragraph separator", document(entry(ALICE, role="admin\u2029auditor")),
     "custodian 1 (\"Alice\"): the role contains a control or invisible character"),
    ("name not text", document(entry(ALICE, name=7)), "custodian 1: the name must be text"),
    ("long role", document(entry(ALICE, role="r" * 101)),
     "custodian 1 (\"Alice\"): the role is longer than 100 characters"),
    ("short key", document(entry(ALICE, identity=key_hex("alice")[:62])),
     "custodian 1 (\"Alice\"): identity is not a 32-byte public key in lower-case hex (64 digits)"),
    ("upper-case key", document(entry(ALICE, identity=key_hex("alice").upper())),
     "custodian 1 (\"Alice\"): identity is not a 32-byte public key in lower-case hex (64 digits)"),
    ("fingerprint of another key", document(entry(ALICE, fingerprint=fingerprint_of(KEYS["bob"]))),
     f"custodian 1 (\"Alice\"): fingerprint {fingerprint_of(KEYS['bob'])} does not match the identity key "
     f"(whose fingerprint is {fingerprint_of(KEYS['alice'])})"),
    ("key replaced, fingerprint kept", document(entry(ALICE, identity=key_hex("bob"))),
     f"custodian 1 (\"Alice\"): fingerprint {fingerprint_of(KEYS['alice'])} does not match the identity key "
     f"(whose fingerprint is {fingerprint_of(KEYS['bob'])})"),
    ("badly formed fingerprint", document(entry(ALICE, fingerprint="ABCD")),
     "custodian 1 (\"Alice\"): fingerprint is not of the form xxxx-xxxx-xxxx-xxxx (lower-case hex)"),
    ("negative index", document(entry(ALICE, index=-1)),
     "custodian 1 (\"Alice\"): index must be a whole number from 0 to 2147483647"),
    ("index as text", document(entry(ALICE, index="0")),
     "custodian 1 (\"Alice\"): index must be a whole number from 0 to 2147483647"),
    ("index as bool", document(entry(ALICE, index=False)),
     "custodian 1 (\"Alice\"): index must be a whole number from 0 to 2147483647"),
    ("same entry twice", document(entry(ALICE), entry(BOB), entry(ALICE)),
     f"custodian 3 (\"Alice\"): \"Alice\" (admin, identity {fingerprint_of(KEYS['alice'])}) is already in the roster"),
    ("one key, two names", document(entry(ALICE), entry(ALICE, name="Mallory")),
     f"custodian 2 (\"Mallory\"): identity {fingerprint_of(KEYS['alice'])} is already in the roster under the "
     "name \"Alice\", not \"Mallory\""),
    ("one name, two keys", document(entry(ALICE), entry(BOB, name="alice")),
     f"custodian 2 (\"alice\"): the name \"alice\" is already in the roster with another identity key "
     f"({fingerprint_of(KEYS['alice'])}, not {fingerprint_of(KEYS['bob'])})"),
    ("deeply nested", b"[" * 100_000, "the roster is not valid JSON (nested too deeply)"),
]


@pytest.mark.parametrize("data,message", [(d, m) for _, d, m in INVALID], ids=[n for n, _, _ in INVALID])
def test_invalid_rosters_are_bad_input_naming_the_entry(data, message):
    with pytest.raises(BadInput) as info:
        R.Roster.parse(data, where="roster.json")
    assert info.value.message == message
    assert info.value.where == "roster.json" and info.value.code == "roster"
    assert info.value.exit_status == 3


def test_a_roster_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "roster.json"
    path.write_bytes(b" " * (R.ROSTER_MAX_BYTES + 1))
    with pytest.raises(BadInput) as info:
        R.load(path)
    assert info.value.message == f"roster is larger than the limit of {R.ROSTER_MAX_BYTES} bytes"
    with pytest.raises(BadInput) as info:
        R.Roster.parse(b" " * (R.ROSTER_MAX_BYTES + 1))
    assert info.value.message == f"the roster is larger than the limit of {R.ROSTER_MAX_BYTES} bytes"


# ---------------------------------------------------------------- adding

def test_adding_the_same_entry_again_changes_nothing():
    roster = roster_of(ALICE, BOB)
    again, added = roster.add(R.Custodian("Alice", "admin", KEYS["alice"]))
    assert added is False and again is roster


@pytest.mark.parametrize("newcomer,message", [
    (R.Custodian("Alice", "admin", KEYS["carol"]),
     f'the name "Alice" is already in the roster with another identity key ({fingerprint_of(KEYS["alice"])}, '
     f'not {fingerprint_of(KEYS["carol"])})'),
    (R.Custodian("ALICE", "admin", KEYS["carol"]),
     f'the name "ALICE" is already in the roster with another identity key ({fingerprint_of(KEYS["alice"])}, '
     f'not {fingerprint_of(KEYS["carol"])})'),
    (R.Custodian("Mallory", "admin", KEYS["bob"]),
     f'identity {fingerprint_of(KEYS["bob"])} is already in the roster under the name "Bob", not "Mallory"'),
    (R.Custodian("Bob", "admin", KEYS["bob"]),
     '"Bob" is already in the roster with this identity key, as approver (index 0); not adding it again as '
     '"Bob", admin (index 0)'),
])
def test_a_taken_name_or_key_is_refused(newcomer, message):
    roster = roster_of(ALICE, BOB)
    with pytest.raises(Refused) as info:
        roster.add(newcomer)
    assert info.value.message == message + "; nothing was changed"
    assert info.value.code == "roster-duplicate" and info.value.exit_status == 4
    assert roster.custodians == (ALICE, BOB)


def test_add_checks_the_entry_like_a_loaded_one():
    with pytest.raises(BadInput) as info:
        R.Roster().add(R.Custodian("", "admin", KEYS["alice"]))
    assert info.value.message == "the name must be non-empty, without leading or trailing spaces"
    with pytest.raises(BadInput) as info:
        R.Roster().add(R.Custodian("Alice", "admin\n", KEYS["alice"]))
    assert info.value.message == "the role must be non-empty, without leading or trailing spaces"


# ---------------------------------------------------------------- lookups

def test_find_by_key_hex_or_fingerprint():
    roster = roster_of(ALICE, BOB, CAROL)
    fp = fingerprint_of(KEYS["bob"])
    assert roster.find(KEYS["bob"]) == BOB
    assert roster.find(KEYS["bob"].hex()) == BOB
    assert roster.find(KEYS["bob"].hex().upper()) == BOB
    assert roster.find(fp) == BOB
    assert roster.find(fp.replace("-", "").upper()) == BOB
    assert roster.by_name("carol") == CAROL
    unknown = IdentityKey.from_seed(W.seed("alice"), 1).public_key
    assert roster.find(unknown) is None and roster.find(fingerprint_of(unknown)) is None
    assert roster.by_name("Dave") is None


def test_find_refuses_what_is_neither_a_key_nor_a_fingerprint():
    with pytest.raises(BadInput) as info:
        R.Roster().find("alice")
    assert info.value.message == ("'alice' is neither an identity public key (64 hex digits) nor a fingerprint "
                                  "(xxxx-xxxx-xxxx-xxxx)")


# ---------------------------------------------------------------- files

def test_save_and_load(tmp_path):
    path = tmp_path / "audit" / "roster.json"
    assert R.load_or_new(path) == R.Roster()
    with pytest.raises(NotFound) as info:
        R.load(path)
    assert info.value.message == "roster not found" and info.value.where == str(path)
    roster = roster_of(ALICE, BOB, CAROL)
    assert R.save(path, roster) == path
    assert R.load(path) == roster and R.load_or_new(path) == roster
    assert path.read_bytes() == roster.serialize()
    assert sorted(p.name for p in path.parent.iterdir()) == ["roster.json"]  # no temp file left behind


def test_a_failed_save_leaves_the_old_roster(tmp_path, monkeypatch):
    path = tmp_path / "roster.json"
    R.save(path, roster_of(ALICE))
    before = path.read_bytes()

    def torn_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", torn_fsync)
    with pytest.raises(OSError, match="disk full"):
        R.save(path, roster_of(ALICE, BOB))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roster.json"]
