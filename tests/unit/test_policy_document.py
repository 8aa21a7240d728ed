"""The policy document: parsing (every refusal by class and exact message), the canonical digest,
admin signatures and the quorum, and install with rollback and key rotation.

Policies: tests/data/policy (README there). Identity keys are derived for real (SLIP-10 Ed25519) from
seeds of entropy 0x01..0x06 * 16: alice, bob, carol, dave, erin, frank. Invalid documents are made by
one text replacement on treasury.toml, so each case differs from a valid file in one place.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import pytest

from coldsign.errors import BadInput, Refused, VerificationFailed
from coldsign.keys.identity import IdentityKey
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.policy import document as D
from coldsign.policy import installed as I
from coldsign.policy import signatures as S
from coldsign.policy.model import ANY, Approvals, FeeCaps, TimeWindow, Velocity

DATA = Path(__file__).parent.parent / "data" / "policy"
V1 = (DATA / "treasury.toml").read_text()
V2 = (DATA / "treasury-v2-rotated.toml").read_text()
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
# The digest of treasury.toml, pinned: a change to the canonical form shows up here first.
V1_DIGEST = "37e056d25d30fb19b150b4026255a5522fd2d36980da2b5ffdc9d62bd3199758"


@cache
def key(name: str) -> IdentityKey:
    from embit import bip39

    words = bip39.mnemonic_from_bytes(bytes([PEOPLE.index(name) + 1]) * 16)
    return IdentityKey.from_seed(SeedKey.from_mnemonic(Secret(words)), 0)


def sigs(text: str, *names: str) -> list[tuple[str, S.PolicySignature]]:
    policy = D.parse_policy(text)
    return [(f"{n}.sig.json", S.sign_policy(policy, key(n))) for n in names]


def changed(old: str, new: str, text: str = V1) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


# ------------------------------------------------------------------ parsing

def test_the_treasury_policy_says_what_the_issue_asks():
    p = D.parse_policy(V1, where="treasury.toml")
    assert (p.name, p.version, p.network, p.expires, p.clock_skew_seconds) == \
        ("treasury", 1, "regtest", "2099-12-31T23:59:59Z", 300)
    assert (p.admins.threshold, p.admins.role) == (2, "admin")
    assert [a.name for a in p.approvers] == ["alice", "bob", "carol", "dave"]
    assert p.approvers[0].public_key == key("alice").public_key
    assert p.approvers[3].roles == ("admin", "approver", "cfo")
    assert p.address_book[0].addresses == ("bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew",)
    assert p.address_book[1].descriptors[0].endswith("/<0;1>/*)#0x3qwcr8") and p.address_book[1].gap == 100
    daily, rest = p.rules
    assert (daily.name, daily.wallets, daily.destinations, daily.action) == \
        ("treasury-to-exchange", ("treasury",), ("exchange",), "allow")
    assert daily.max_per_tx_sat == 500_000_000
    assert daily.velocity == (Velocity(window_seconds=86_400, max_sat=500_000_000),)
    assert daily.fee == FeeCaps(max_sat=100_000, max_rate_sat_vb=200.0, max_percent=None)
    assert daily.approvals == Approvals(threshold=2, group="treasurer", require_roles=(), initiator_may_approve=False)
    assert daily.hours is None
    assert (rest.wallets, rest.destinations, rest.max_per_tx_sat, rest.velocity) == (("any",), ANY, None, ())
    assert rest.approvals == Approvals(threshold=3, group="approver", require_roles=("cfo",))
    assert len([a for a in p.approvers if "approver" in a.roles]) == 4


def test_days_hours_deny_rules_and_units():
    text = changed('max_per_tx = "5 BTC"', 'max_per_tx = "0.5 BTC"\ndays = ["fri", "mon"]\nhours = "08:00-18:30"')
    text = changed('wallets = "any"\ndestinations = "any"\n\n[rules.approvals]\nthreshold = 3\ngroup = "approver"\n'
                   'require_roles = ["cfo"]\ninitiator_may_approve = false\n',
                   'wallets = "any"\ndestinations = "any"\naction = "deny"\nvelocity = [{ window = "90m", '
                   'max = "120000 sat" }, { window = "7d", max = "1 BTC" }]\n', text)
    p = D.parse_policy(text)
    assert p.rules[0].max_per_tx_sat == 50_000_000
    assert p.rules[0].hours == TimeWindow(days=(0, 4), start_minute=480, end_minute=1110)
    assert p.rules[1].action == "deny" and p.rules[1].approvals is None
    assert p.rules[1].velocity == (Velocity(5400, 120_000), Velocity(604_800, 100_000_000))
    assert D.format_hours(p.rules[0].hours) == "mon,fri 08:00-18:30 UTC"
    assert [D.format_amount(s) for s in (500_000_000, 50_000_000, 120_000, 1)] == \
        ["5 BTC", "0.5 BTC", "120000 sat", "1 sat"]
    assert [D.format_duration(s) for s in (5400, 86_400, 604_800, 30)] == ["90m", "24h", "7d", "30s"]


def test_a_time_window_past_midnight_is_written_as_it_reads():
    p = D.parse_policy(changed('max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\nhours = "22:00-06:00"'))
    assert p.rules[0].hours == TimeWindow(days=tuple(range(7)), start_minute=22 * 60, end_minute=6 * 60)
    assert D.format_hours(p.rules[0].hours) == "every day 22:00-06:00 UTC"


E = "fix that field"  # every document error carries the same hint
PARSE_ERRORS = [
    # (what, old, new, message, line)
    ("unknown top-level key", 'clock_skew = "5m"', 'clock_skew = "5m"\ncolour = "red"',
     "colour: unknown key (allowed here: address_book, admins, approvers, clock_skew, expires, format, name, "
     "network, rules, version)", 18),
    ("unknown rule key", 'max_per_tx = "5 BTC"', 'max_per_txn = "5 BTC"',
     "rules[1].max_per_txn: unknown key (allowed here: action, approvals, days, destinations, fee, hours, "
     "max_per_tx, name, velocity, wallets)", 58),
    ("unknown approvals key", "initiator_may_approve = false\n\n[[rules]]", "initiator_may = false\n\n[[rules]]",
     "rules[1].approvals.initiator_may: unknown key (allowed here: group, initiator_may_approve, "
     "require_roles, threshold)", 65),
    ("version as text", "version = 1", 'version = "1"', 'version: must be a whole number, not "1"', 14),
    ("version as bool", "version = 1", "version = true", "version: must be a whole number, not bool True", 14),
    ("version zero", "version = 1", "version = 0", "version: must be from 1 to 9007199254740992, not 0", 14),
    ("missing network", 'network = "regtest"\n', "", "network: is missing", None),
    ("unknown network", 'network = "regtest"', 'network = "mainnet"',
     'network: "mainnet" is not one of main, test, signet, regtest', 15),
    ("other format", 'format = "coldsign-policy/1"', 'format = "coldsign-policy/2"',
     'format: "coldsign-policy/2" is not a format this coldsign reads ("coldsign-policy/1")', 12),
    ("expiry without zone", 'expires = "2099-12-31T23:59:59Z"', 'expires = "2099-12-31T23:59:59"',
     "expires: needs a time zone: end it with Z (UTC) or an offset such as +02:00", 16),
    ("expiry not a time", 'expires = "2099-12-31T23:59:59Z"', 'expires = "soon"',
     'expires: "soon" is not an ISO date-time such as "2026-12-31T23:59:59Z"', 16),
    ("duplicate approver name", 'name = "carol"', 'name = "Alice"',
     'approvers[3]: duplicate approver name "Alice" (also approvers[1])', 33),
    ("duplicate approver key", "a66f9c5e457fd96fdfdcadda666ffa93c2e134f63c0a3364f0c8728df3259a5c",
     "2a92b91e98ac47afc9759aeef5cc8eba01a7c2804b3bd12ae99505f52b2f6913",
     "approvers[3]: duplicate key \"2a92b91e98ac47afc9759aeef5cc8eba01a7c2804b3bd12ae99505f52b2f6913\" "
     "(also approvers[1])", 33),
    ("duplicate rule name", 'name = "anything-else"', 'name = "treasury-to-exchange"',
     'rules[2]: duplicate rule name "treasury-to-exchange" (also rules[1])', 67),
    ("duplicate address-book name", 'name = "hot-wallet"', 'name = "exchange"',
     'address_book[2]: duplicate entry name "exchange" (also address_book[1])', 49),
    ("key not hex", 'key = "2a92b91e98ac47afc9759aeef5cc8eba01a7c2804b3bd12ae99505f52b2f6913"', 'key = "2a92"',
     'approvers[1].key: "2a92" is not 64 hex digits (an Ed25519 identity public key, as `coldsign key identity` '
     'shows it)', 25),
    ("no roles", 'roles = ["treasurer", "approver"]', "roles = []", "approvers[3].roles: must not be empty", 36),
    ("address of another network", "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew",
     "tb1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnl25zw8",
     'address_book[1].addresses[1]: "tb1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnl25zw8" is an address of another '
     "network (test or signet), not of this policy's network regtest", 46),
    ("address with a bad checksum", "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew",
     "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ex",
     'address_book[1].addresses[1]: "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ex" is not a valid regtest '
     "address", 46),
    ("entry with no destinations", 'addresses = ["bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew"]', "addresses = []",
     'address_book[1]: address-book entry "exchange" has no addresses and no descriptors', 44),
    ("descriptor of another network", "tpubDCSYyor6", "xpubDCSYyor6", None, 51),
    ("missing address-book entry", 'destinations = ["exchange"]', 'destinations = ["exchnage"]',
     'rules[1].destinations: "exchnage" is not an address_book entry', 57),
    ("group nobody holds", 'group = "treasurer"', 'group = "trader"',
     'rules[1].approvals.group: no approver holds the role "trader"', 64),
    ("threshold above the group", "threshold = 2\ngroup", "threshold = 4\ngroup",
     'rules[1].approvals.threshold: 4 is more than the 3 approver(s) holding "treasurer"', 63),
    ("admin threshold above the admins", "threshold = 2\nrole", "threshold = 4\nrole",
     'admins.threshold: 4 is more than the 3 approver(s) holding "admin"', 20),
    ("admin role nobody holds", 'role = "admin"', 'role = "root"', 'admins.role: no approver holds the role "root"',
     21),
    ("required role outside the group", 'require_roles = ["cfo"]', 'require_roles = ["ceo"]',
     'rules[2].approvals.require_roles: no approver holds both "ceo" and the group role "approver"', 75),
    ("amount with a bad unit", 'max_per_tx = "5 BTC"', 'max_per_tx = "5 BTCC"',
     'rules[1].max_per_tx: "5 BTCC" is not an amount: write e.g. "5 BTC", "0.5 BTC" or "120000 sat"', 58),
    ("amount without a unit", 'max_per_tx = "5 BTC"', "max_per_tx = 5",
     'rules[1].max_per_tx: int 5 is not an amount: write it as text with a unit, e.g. "5 BTC", "0.5 BTC" or '
     '"120000 sat"', 58),
    ("amount below a sat", 'max_per_tx = "5 BTC"', 'max_per_tx = "0.123456789 BTC"',
     'rules[1].max_per_tx: "0.123456789 BTC" is not a whole number of sats (at most 8 decimals of BTC)', 58),
    ("amount above the supply", 'max_per_tx = "5 BTC"', 'max_per_tx = "21000001 BTC"',
     'rules[1].max_per_tx: "21000001 BTC" is not between 1 sat and 21 million BTC', 58),
    ("bad duration", 'window = "24h"', 'window = "24x"',
     'rules[1].velocity[1].window: "24x" is not a duration: write e.g. "90m", "24h" or "7d"', 59),
    ("bad day", 'max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\ndays = ["mon", "funday"]',
     'rules[1].days: "funday" is not a day: use mon, tue, wed, thu, fri, sat, sun', 59),
    ("hours empty", 'max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\nhours = "08:00-08:00"',
     'rules[1].hours: "08:00-08:00" is not a time range: "08:00-18:00", or one past midnight like "22:00-06:00", '
     'times from "00:00" to "24:00"', 59),
    ("hours past 24:00", 'max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\nhours = "22:00-24:30"',
     'rules[1].hours: "22:00-24:30" is not a time range: "08:00-18:00", or one past midnight like "22:00-06:00", '
     'times from "00:00" to "24:00"', 59),
    ("fee percent above 100", "max_rate_sat_vb = 200", "max_rate_sat_vb = 200, max_percent = 150",
     "rules[1].fee.max_percent: must be above 0 and at most 100, not 150", 60),
    ("infinite fee rate", "max_rate_sat_vb = 200", "max_rate_sat_vb = inf",
     "rules[1].fee.max_rate_sat_vb: must be a number, not float inf", 60),
    ("deny rule with approvals", 'destinations = "any"', 'destinations = "any"\naction = "deny"',
     'rules[2].approvals: a "deny" rule refuses what it matches: it takes no approvals', 73),
    ("allow rule without approvals", '[rules.approvals]\nthreshold = 3\ngroup = "approver"\nrequire_roles = ["cfo"]\n'
     'initiator_may_approve = false\n', "",
     'rules[2].approvals: is missing: an "allow" rule says who must approve ([rules.approvals])', 67),
    ("any among wallets", 'wallets = ["treasury"]', 'wallets = ["treasury", "any"]',
     'rules[1].wallets: "any" stands alone: wallets = "any"', 56),
    # numbers too long for int() (Python's 4300-digit limit), times that leave the calendar in UTC:
    # refused by field, not a crash (exit 70)
    ("amount of 5000 digits", 'max_per_tx = "5 BTC"', f'max_per_tx = "{"1" * 5000} sat"',
     f'rules[1].max_per_tx: "{"1" * 77}..." is not between 1 sat and 21 million BTC', 58),
    ("duration of 5000 digits", 'window = "24h"', f'window = "{"1" * 5000}h"',
     f'rules[1].velocity[1].window: "{"1" * 77}..." is not between 1s and 400d', 59),
    ("expiry before year 1 in UTC", 'expires = "2099-12-31T23:59:59Z"', "expires = 0001-01-01T00:00:00+01:00",
     "expires: 0001-01-01T00:00:00+01:00 is outside the years 1 to 9999 in UTC", 16),
    ("expiry after 9999 in UTC", 'expires = "2099-12-31T23:59:59Z"', 'expires = "9999-12-31T23:59:59-01:00"',
     "expires: 9999-12-31T23:59:59-01:00 is outside the years 1 to 9999 in UTC", 16),
]


@pytest.mark.parametrize("what, old, new, message, line", PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_errors_name_the_field_and_line(what, old, new, message, line):
    with pytest.raises(BadInput) as caught:
        D.parse_policy(changed(old, new), where="treasury.toml")
    err = caught.value
    assert type(err) is BadInput and err.code == "policy-document" and err.hint.startswith(E)
    if message is not None:
        assert err.message == message
    assert err.where == (f"treasury.toml:{line}" if line else "treasury.toml")


def test_a_descriptor_of_another_network_is_named():
    with pytest.raises(BadInput) as caught:
        D.parse_policy(changed("tpubDCSYyor6", "xpubDCSYyor6"))
    assert caught.value.message.startswith("address_book[2].descriptors[1]: not a wallet descriptor on regtest: ")


def test_a_rules_table_is_required_and_extra_tables_are_unknown():
    with pytest.raises(BadInput) as caught:
        D.parse_policy(V1.replace("[[rules]]", "[[rulez]]").replace("[rules.approvals]", "[rulez.approvals]"))
    assert caught.value.message.startswith("rulez: unknown key")


def test_toml_syntax_size_and_encoding_are_bad_input():
    with pytest.raises(BadInput) as caught:
        D.parse_policy(V1.replace('name = "treasury"', 'name "treasury"'), where="p.toml")
    assert caught.value.message == ("the policy is not valid TOML: Expected '=' after a key in a key/value pair "
                                    "(at line 13, column 6)")
    with pytest.raises(BadInput) as caught:
        D.parse_policy(V1 + "#" * (D.POLICY_MAX_BYTES - len(V1.encode()) + 1))
    assert caught.value.message == "the policy is larger than the limit of 65536 bytes"
    D.parse_policy(V1 + "#" * (D.POLICY_MAX_BYTES - len(V1.encode())))   # exactly at the limit: fine
    with pytest.raises(BadInput) as caught:
        D.parse_policy(b"\xff" + V1.encode())
    assert caught.value.message == "the policy is not UTF-8 text (byte 0)"


def test_a_number_too_long_for_int_is_bad_input():
    with pytest.raises(BadInput) as caught:
        D.parse_policy(changed("version = 1", "version = " + "1" * 5000), where="p.toml")
    assert (caught.value.message, caught.value.where, caught.value.code) == \
        ("the policy holds a number too long to read (more than 4300 digits)", "p.toml", "policy-document")


def test_finding_the_line_of_a_problem_takes_linear_time():
    """A long line inside a multi-line string before the faulty field: the header pattern took cubic
    time on it (4000 spaces: 40 s; 60,000 fit in the size limit: days)."""
    import time

    text = 'name = """\n[' + " " * 60_000 + 'x\n"""\nformat = "x"\n'
    started = time.monotonic()
    with pytest.raises(BadInput) as caught:
        D.parse_policy(text, where="p.toml")
    assert time.monotonic() - started < 5
    assert (caught.value.message, caught.value.where) == ("admins: is missing", "p.toml")


# ------------------------------------------------------------------ canonical form and digest

def test_digest_is_pinned_and_defined_over_the_canonical_json():
    p = D.parse_policy(V1)
    assert D.policy_digest(p).hex() == V1_DIGEST
    assert D.policy_digest(p) == hashlib.sha256(b"coldsign/policy/v1\0" + D.canonical_json(p)).digest()
    doc = json.loads(D.canonical_json(p))
    assert D.canonical_json(p) == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert doc["approvers"][0]["public_key"] == key("alice").public_hex
    assert doc["rules"][1]["destinations"] == "any" and doc["rules"][0]["fee"]["max_rate_sat_vb"] == 200.0


def test_digest_is_stable_under_reformatting_and_comments():
    reformatted = (DATA / "treasury-reformatted.toml").read_text()
    assert D.policy_digest(D.parse_policy(reformatted)).hex() == V1_DIGEST
    stripped = "\n".join(line.split(" #")[0] for line in V1.splitlines() if not line.startswith("#"))
    noisy = V1.replace("\n\n", "\n\n# a comment\n\n").replace(" = ", "   =   ")
    for text in (stripped, noisy):
        assert text != V1 and D.policy_digest(D.parse_policy(text)).hex() == V1_DIGEST


SEMANTIC_CHANGES = [
    ("version = 1", "version = 2"),
    ('name = "treasury"', 'name = "treasury-b"'),
    ('network = "regtest"\n', 'network = "regtest"\n# same\n'),   # control: no change (checked below)
    ('expires = "2099-12-31T23:59:59Z"', 'expires = "2099-12-31T23:59:58Z"'),
    ('clock_skew = "5m"', 'clock_skew = "6m"'),
    ("threshold = 2\nrole", "threshold = 3\nrole"),
    ('roles = ["treasurer", "approver"]', 'roles = ["treasurer", "approver", "auditor"]'),
    ('name = "carol"', 'name = "caroline"'),
    ("a66f9c5e457fd96fdfdcadda666ffa93c2e134f63c0a3364f0c8728df3259a5c",
     "e8a749d9f0dbd552dac971f2b535241a51423aff2bb01e96858ea8e660217dd6"),
    ("bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew", "bcrt1qzs23v9ccrydpk8qarc0jqgfzyvjz2f38p4klvh"),
    ("gap = 100", "gap = 101"),
    ('wallets = ["treasury"]', 'wallets = ["treasury-2"]'),
    ('max_per_tx = "5 BTC"', 'max_per_tx = "4.99999999 BTC"'),
    ('window = "24h"', 'window = "25h"'),
    ('max = "5 BTC" }', 'max = "6 BTC" }'),
    ('max = "0.001 BTC"', 'max = "0.002 BTC"'),
    ("max_rate_sat_vb = 200", "max_rate_sat_vb = 200.5"),
    ("max_rate_sat_vb = 200", "max_rate_sat_vb = 200, max_percent = 1"),
    ('max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\ndays = ["mon"]'),
    ('max_per_tx = "5 BTC"', 'max_per_tx = "5 BTC"\nhours = "00:00-23:59"'),
    ("initiator_may_approve = false", "initiator_may_approve = true"),
    ('group = "treasurer"', 'group = "approver"'),
    ('require_roles = ["cfo"]', 'require_roles = ["cfo", "admin"]'),
    ('destinations = ["exchange"]', 'destinations = ["exchange", "hot-wallet"]'),
    ('destinations = ["exchange"]', 'destinations = "any"'),
]


@pytest.mark.parametrize("old, new", SEMANTIC_CHANGES, ids=[n for _, n in SEMANTIC_CHANGES])
def test_every_change_of_meaning_changes_the_digest(old, new):
    digest = D.policy_digest(D.parse_policy(changed(old, new))).hex()
    assert (digest == V1_DIGEST) is new.endswith("# same\n")


def test_rule_order_is_meaning():
    first, second = V1.split("[[rules]]")[1:]
    swapped = V1.split("[[rules]]")[0] + "[[rules]]" + second + "\n[[rules]]" + first
    assert D.policy_digest(D.parse_policy(swapped)).hex() != V1_DIGEST


# ------------------------------------------------------------------ signatures and quorum

def test_signature_file_round_trip_and_strictness():
    (_, sig), = sigs(V1, "alice")
    assert S.PolicySignature.parse(sig.serialize()) == sig
    doc = sig.to_json()
    assert set(doc) == {"format", "version", "policy_digest", "policy_version", "signer", "signature"}
    assert doc["format"] == "coldsign-policy-signature" and doc["policy_digest"] == V1_DIGEST
    cases = [
        (b"{", "the signature file is not JSON"),
        (json.dumps({**doc, "extra": 1}).encode(), "the signature file must hold exactly the fields format, "
         "policy_digest, policy_version, signature, signer, version"),
        (json.dumps({**doc, "version": 2}).encode(), 'not a "coldsign-policy-signature" version 1 file'),
        (json.dumps({**doc, "signer": doc["signer"].upper()}).encode(), "signer must be 64 lower-case hex digits"),
        (json.dumps({**doc, "signature": doc["signature"][:-2]}).encode(),
         "signature must be 128 lower-case hex digits"),
        (json.dumps({**doc, "policy_version": "1"}).encode(), "policy_version must be a whole number"),
        (b" " * 5000, "the signature file is larger than the limit of 4096 bytes"),
    ]
    for data, message in cases:
        with pytest.raises(BadInput) as caught:
            S.PolicySignature.parse(data, where="x.sig.json")
        assert (caught.value.message, caught.value.where, caught.value.code) == (message, "x.sig.json",
                                                                                  "policy-signature")


def reasons(report) -> list[tuple[str | None, bool, str]]:
    return [(c.approver.name if c.approver else None, c.counts, c.reason) for c in report.checks]


def test_quorum_counts_distinct_admins_of_the_authority():
    p = D.parse_policy(V1)
    assert S.check_quorum(p, sigs(V1, "alice", "dave")).met
    report = S.check_quorum(p, sigs(V1, "alice", "alice", "carol"))
    assert not report.met and [a.name for a in report.signers] == ["alice"]
    assert reasons(report) == [("alice", True, ""), ("alice", False, "a second signature by alice; each admin counts "
                                                                       "once"),
                               ("carol", False, 'carol does not hold the admin role "admin"')]
    assert report.summary() == ('quorum NOT met: 2 of the approvers holding "admin" in this policy itself '
                                "(first install); counted: alice")


def test_signatures_that_do_not_count_say_why():
    p = D.parse_policy(V1)
    (_, alice), = sigs(V1, "alice")
    (_, other), = sigs(V2, "bob")
    (_, erin), = sigs(V1, "erin")
    forged = S.PolicySignature(alice.policy_digest, 1, key("bob").public_key, alice.signature)
    lying = S.PolicySignature(alice.policy_digest, 7, alice.signer, alice.signature)
    report = S.check_quorum(p, [("other", other), ("erin", erin), ("forged", forged), ("lying", lying)])
    assert not report.met and report.signers == ()
    got = {c.source: (c.valid, c.counts, c.reason) for c in report.checks}
    assert got["other"] == (False, False, f"signed another policy (digest {other.policy_digest.hex()[:16]}…, "
                                          f"version 2), not this one (digest {V1_DIGEST[:16]}…, version 1)")
    assert got["erin"] == (True, False, f'signed by key {key("erin").fingerprint}, which the new policy "treasury" '
                                        "v1 does not name")
    assert got["forged"] == (False, False, "the signature does not verify (damaged or forged)")
    assert got["lying"] == (False, False, "the file says version 7 but the policy is version 1")


# ------------------------------------------------------------------ install, rollback, rotation

def test_first_install_needs_first_and_the_policy_s_own_quorum(tmp_path):
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=False, now=NOW)
    assert caught.value.code == "policy-first-install"
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, V1.encode(), sigs(V1, "alice", "carol"), first=True, now=NOW)
    assert caught.value.code == "policy-quorum"
    assert caught.value.details == [{"code": "signature-counts", "message": "alice.sig.json: counts"},
                                    {"code": "signature-ignored", "message": 'carol.sig.json: carol does not hold '
                                                                             'the admin role "admin"'}]
    assert I.installed_policy(tmp_path) is None and not (tmp_path / "policy").exists()
    result = I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    assert result.digest.hex() == V1_DIGEST and result.previous is None
    assert (tmp_path / "policy" / "installed.toml").read_text() == V1
    record = json.loads((tmp_path / "policy" / "installed.json").read_text())
    assert (record["digest"], record["version"], record["name"], record["installed"], record["previous"]) == \
        (V1_DIGEST, 1, "treasury", "2030-06-01T12:00:00Z", None)
    assert [s["signer"] for s in record["signatures"]] == [key("alice").public_hex, key("bob").public_hex]
    assert I.installed_policy(tmp_path) == D.parse_policy(V1)
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, V2.encode(), sigs(V2, "alice", "bob"), first=True, now=NOW)
    assert caught.value.code == "policy-already-installed"


def test_rollback_is_refused(tmp_path):
    I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    for text in (V1, changed("# The test", "# Same version, other comment. The test")):
        with pytest.raises(Refused) as caught:
            I.install(tmp_path, text.encode(), sigs(text, "alice", "bob"), first=False, now=NOW)
        assert caught.value.code == "policy-rollback"
        assert caught.value.message == "version 1 is not above the installed version 1: a rollback"
    I.install(tmp_path, V2.encode(), sigs(V2, "alice", "bob"), first=False, now=NOW)
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=False, now=NOW)
    assert caught.value.message == "version 1 is not above the installed version 2: a rollback"
    assert I.installed_policy(tmp_path).version == 2


def test_rotation_installs_only_with_the_old_quorum(tmp_path):
    I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    # erin and frank are a quorum of v2 itself, but v1 does not name them: refused, nothing written
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, V2.encode(), sigs(V2, "erin", "frank"), first=False, now=NOW)
    assert caught.value.code == "policy-quorum"
    assert 'in the installed policy "treasury" v1; counted: nobody' in caught.value.message
    assert I.installed_policy(tmp_path).version == 1
    # the old quorum (bob and dave, who are leaving) signs the rotation: installed
    result = I.install(tmp_path, V2.encode(), sigs(V2, "bob", "dave"), first=False, now=NOW)
    assert result.previous.digest.hex() == V1_DIGEST and result.quorum.authority_source == "installed"
    assert [a.name for a in result.quorum.signers] == ["bob", "dave"]
    assert I.installed_policy(tmp_path).approver_by_key(key("erin").public_key).name == "erin"
    # now only the new keys count: v3 signed by the departed admins is refused, by the new ones installed
    v3 = changed("version = 2", "version = 3", V2)
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, v3.encode(), sigs(v3, "bob", "dave"), first=False, now=NOW)
    assert caught.value.code == "policy-quorum"
    assert I.install(tmp_path, v3.encode(), sigs(v3, "erin", "frank"), first=False, now=NOW).policy.version == 3


def test_an_expired_policy_is_not_installed(tmp_path):
    text = changed('expires = "2099-12-31T23:59:59Z"', 'expires = "2030-06-01T12:00:00Z"')
    with pytest.raises(Refused) as caught:
        I.install(tmp_path, text.encode(), sigs(text, "alice", "bob"), first=True, now=NOW)
    assert (caught.value.code, caught.value.message) == ("policy-expired",
                                                         "the policy expired at 2030-06-01T12:00:00Z")


def test_installed_policy_heals_a_torn_install_and_catches_edits(tmp_path):
    I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    I.install(tmp_path, V2.encode(), sigs(V2, "bob", "dave"), first=False, now=NOW)
    folder = tmp_path / "policy"
    # a crash after the record (commit point) but before the text: the archive copy is used
    (folder / "installed.toml").write_text(V1)
    assert I.installed_policy(tmp_path).version == 2
    # an edit of both copies: caught
    edited = changed('max_per_tx = "5 BTC"', 'max_per_tx = "50 BTC"', V2)
    (folder / "installed.toml").write_text(edited)
    record = json.loads((folder / "installed.json").read_text())
    (folder / record["archive"]).write_text(edited)
    with pytest.raises(VerificationFailed) as caught:
        I.installed_policy(tmp_path)
    assert caught.value.message == "the installed policy does not match the digest its record names"


def test_install_binds_the_signer_s_ledger_and_a_new_version_rebinds_a_lost_one(tmp_path):
    from coldsign.policy.ledger import LEDGER_FILE, Ledger

    def record_id() -> str:
        return json.loads((tmp_path / "policy" / "installed.json").read_text())["ledger_id"]

    with pytest.raises(Refused):
        I.install(tmp_path, V1.encode(), sigs(V1, "alice", "carol"), first=True, now=NOW)
    assert not (tmp_path / LEDGER_FILE).exists()                 # a refused install writes nothing at all
    result = I.install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    with Ledger.open(tmp_path, create=False) as ledger:
        first_id = ledger.ledger_id
    assert result.ledger_id == record_id() == first_id and result.to_json()["ledger_id"] == first_id
    I.install(tmp_path, V2.encode(), sigs(V2, "bob", "dave"), first=False, now=NOW)
    assert record_id() == first_id                               # the same ledger stays bound
    for part in tmp_path.glob(LEDGER_FILE + "*"):
        part.unlink()
    v3 = changed("version = 2", "version = 3", V2)
    I.install(tmp_path, v3.encode(), sigs(v3, "erin", "frank"), first=False, now=NOW)
    with Ledger.open(tmp_path, create=False) as ledger:
        assert record_id() == ledger.ledger_id != first_id       # the admins' new version: a fresh ledger


@pytest.mark.parametrize("text, sat", [("0.00000001 BTC", 1), ("1 sat", 1), ("120000 sats", 120_000),
                                       ("21000000 BTC", 21_000_000 * 100_000_000), ("5 btc", 500_000_000),
                                       ("0.10000000 BTC", 10_000_000)])
def test_amounts_with_a_unit_read_exactly_as_coldsign_amounts_reads_them(text, sat):
    from coldsign import amounts

    assert D.parse_amount(text) == amounts.parse_amount(text) == sat


@pytest.mark.parametrize("text, message", [
    ("0 BTC", '"0 BTC" is not between 1 sat and 21 million BTC'),
    ("0 sat", '"0 sat" is not between 1 sat and 21 million BTC'),
    ("21000000.00000001 BTC", '"21000000.00000001 BTC" is not between 1 sat and 21 million BTC'),
    ("1.5 sat", '"1.5 sat" is not a whole number of sats (at most 8 decimals of BTC)'),
    ("0.5", '"0.5" is not an amount: write e.g. "5 BTC", "0.5 BTC" or "120000 sat"'),
    ("0.5  BTC", '"0.5  BTC" is not an amount: write e.g. "5 BTC", "0.5 BTC" or "120000 sat"'),
])
def test_the_policy_s_amount_refusals(text, message):
    with pytest.raises(D._Invalid) as err:
        D.parse_amount(text, "rules[1].max_per_tx")
    assert (err.value.path, err.value.message) == ("rules[1].max_per_tx", message)


def test_a_trailing_zero_is_no_fraction_of_a_sat_and_the_space_is_optional():
    assert (D.parse_amount("0.000000010 BTC"), D.parse_amount("50000sat")) == (1, 50_000)


@pytest.mark.parametrize("sat", [1, 999_999, 1_000_000, 1_234_567, 50_000_000, 100_000_000, 2_100_000_000_000_000])
def test_format_amount_reads_back_as_the_same_amount(sat):
    assert D.parse_amount(D.format_amount(sat)) == sat
