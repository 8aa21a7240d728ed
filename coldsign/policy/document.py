"""The policy document: TOML text -> `model.Policy`, its canonical digest, the admins' signatures
over it, and installing it on the signer (quorum, rollback, rotation).

## The file (format "coldsign-policy/1", read with the stdlib `tomllib`)

    format = "coldsign-policy/1"      # required: the file format and its version
    name = "treasury"                 # required
    version = 3                       # required, >= 1; every new version must be higher (rollback)
    network = "main"                  # required: main | test | signet | regtest
    expires = "2026-12-31T23:59:59Z"  # optional ISO date-time with offset (or a TOML date-time); UTC
    clock_skew = "5m"                 # optional (default 5m): allowance for the request's clock

    [admins]                          # required: who signs the next version
    threshold = 2                     # distinct approvers holding `role`
    role = "admin"                    # optional, default "admin"

    [[approvers]]                     # one or more
    name = "ana"
    key = "<64 hex digits>"           # the Ed25519 identity public key (`coldsign key identity`)
    roles = ["treasurer", "admin"]

    [[address_book]]                  # optional, any number
    name = "exchange"
    addresses = ["bc1q..."]           # valid on `network`
    descriptors = ["wpkh([..]xpub../<0;1>/*)"]   # our own other wallets; receive+change up to gap
    gap = 1000                        # optional

    [[rules]]                         # tried in order; the first whose conditions all hold decides
    name = "daily-to-exchange"
    wallets = ["treasury"]            # or "any"
    destinations = ["exchange"]       # address-book names, or "any"
    action = "allow"                  # optional: "allow" (default) | "deny"
    max_per_tx = "5 BTC"              # optional; amounts: "5 BTC", "0.5 BTC", "120000 sat"
    velocity = [{ window = "24h", max = "5 BTC" }]   # optional; durations "90m", "24h", "7d"
    fee = { max = "0.001 BTC", max_rate_sat_vb = 100, max_percent = 1.0 }   # optional, each optional
    days = ["mon", "tue", "wed", "thu", "fri"]        # optional (default every day), UTC
    hours = "08:00-18:00"             # optional (default all day), UTC, end excluded, "24:00" allowed
    [rules.approvals]                 # required for "allow", forbidden for "deny"
    threshold = 2
    group = "treasurer"               # a role: approvals from holders of it count
    require_roles = ["cfo"]           # optional: among the approvers, a holder of each
    initiator_may_approve = false     # optional, default false

Deny by default: anything no rule allows is refused. The reader is strict: an unknown key, a wrong
type, a duplicate name or key, an address of another network, a group or role no approver holds,
a threshold above the number of holders, a rule naming a missing address-book entry: BadInput
naming the field (array entries counted from 1, as they appear in the file) and, where it can be
found, the line. Amounts are never bare numbers: "5" could be BTC or sat, so a unit is required.

## Digest and signatures

`canonical_json(policy)` is the parsed, normalised policy (sets sorted, addresses and descriptors
in canonical form, times in UTC) as canonical JSON; `policy_digest` is SHA-256 over
b"coldsign/policy/v1\\0" + that, so comments and formatting do not change it and every change of
meaning does. An admin signs the 32-byte digest with the identity key under domain "policy/v1";
the signature file is {"format": "coldsign-policy-signature", "version": 1, "policy_digest",
"policy_version", "signer", "signature"} (hex).

## Installing

`<home>/policy/installed.toml` holds the exact text, `installed.json` the record {"digest",
"version", "name", "installed", "signatures", "previous", "archive"}. A new policy installs only
when `admins.threshold` distinct approvers holding `admins.role` *in the currently installed
policy* signed its digest, and its version is higher (else Refused "policy-rollback"). So keys
rotate by a new version naming the new keys, signed by the old quorum. The first install (nothing
installed) is the key ceremony: it needs `first=True` and a quorum named in the policy itself.
Writes go archive copy -> record -> text, each atomic; the record is the commit point, and a crash
between record and text is healed on reading from the archive copy the record names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Sequence

from coldsign.errors import BadInput, Refused, VerificationFailed
from coldsign.network import Network
from coldsign.policy.model import (ANY, AddressBookEntry, Admins, Approvals, Approver, FeeCaps, Policy, Rule,
                                   TimeWindow, Velocity)

FORMAT = "coldsign-policy/1"
SIGNATURE_FORMAT = "coldsign-policy-signature"
SIGNATURE_VERSION = 1
DOMAIN = "policy/v1"
DIGEST_TAG = b"coldsign/policy/v1\0"
# NOTE: module constants rather than limits.py fields (not this module's file): a policy is a few
# KiB; 64 KiB is room for hundreds of rules without letting a hostile file cost anything.
POLICY_MAX_BYTES = 64 * 1024
SIGNATURE_MAX_BYTES = 4 * 1024
RECORD_MAX_BYTES = 1024 * 1024
TEXT_MAX_CHARS = 200
MAX_GAP = 100_000
MAX_WINDOW_SECONDS = 400 * 86_400
MAX_SKEW_SECONDS = 86_400
MAX_SAT = 21_000_000 * 100_000_000
DEFAULT_SKEW_SECONDS = 300
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FIX_HINT = "fix that field of the policy file (see `coldsign policy init` for a commented example)"


class _Invalid(Exception):
    """A problem at a field path (e.g. "rules[2].max_per_tx"); becomes BadInput with the line."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


# ------------------------------------------------------------------ values

_AMOUNT = re.compile(r"(\d+(?:\.\d+)?) ?(BTC|btc|sat|sats)")
_DURATION = re.compile(r"(\d+)([smhd])")
_HOURS = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_amount(value: object, path: str = "amount") -> int:
    """Sats of "5 BTC", "0.5 BTC", "120000 sat" (> 0, at most 21 million BTC, whole sats)."""
    if not isinstance(value, str):
        raise _Invalid(path, f'{_show(value)} is not an amount: write it as text with a unit, e.g. "5 BTC", '
                             f'"0.5 BTC" or "120000 sat"')
    m = _AMOUNT.fullmatch(value.strip())
    if m is None:
        raise _Invalid(path, f'{_show(value)} is not an amount: write e.g. "5 BTC", "0.5 BTC" or "120000 sat"')
    number, unit = m.groups()
    try:
        sat = Decimal(number) * (100_000_000 if unit.lower() == "btc" else 1)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise _Invalid(path, f"{_show(value)} is not an amount") from None
    if sat != sat.to_integral_value():
        raise _Invalid(path, f"{_show(value)} is not a whole number of sats (at most 8 decimals of BTC)")
    if not 0 < sat <= MAX_SAT:
        raise _Invalid(path, f"{_show(value)} is not between 1 sat and 21 million BTC")
    return int(sat)


def parse_duration(value: object, path: str = "duration", *, allow_zero: bool = False,
                   maximum: int = MAX_WINDOW_SECONDS) -> int:
    """Seconds of "90m", "24h", "7d" (also "30s")."""
    m = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise _Invalid(path, f'{_show(value)} is not a duration: write e.g. "90m", "24h" or "7d"')
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds == 0 and not allow_zero or seconds > maximum:
        low = "0" if allow_zero else "1s"
        raise _Invalid(path, f"{_show(value)} is not between {low} and {format_duration(maximum)}")
    return seconds


def format_amount(sat: int) -> str:
    """"5 BTC", "0.5 BTC", "120000 sat": BTC from 0.01 BTC up, sats below."""
    if sat >= 1_000_000:
        text = f"{Decimal(sat) / 100_000_000:f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text) + " BTC"
    return f"{sat} sat"


def format_duration(seconds: int) -> str:
    """"90m", "24h", "7d": days from two days up (a day reads better as "24h")."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0 and (unit != "d" or seconds >= 2 * size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_hours(window: TimeWindow | None) -> str:
    if window is None:
        return "any time"
    days = "every day" if len(window.days) == 7 else ",".join(DAYS[d] for d in window.days)
    return f"{days} {window.start_minute // 60:02d}:{window.start_minute % 60:02d}-" \
           f"{window.end_minute // 60:02d}:{window.end_minute % 60:02d} UTC"


def _show(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 80 else value[:77] + "...", ensure_ascii=False)
    return f"{type(value).__name__} {value!r}"[:100]


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"must be text, not {_show(value)}")
    if not value or value != value.strip():
        raise _Invalid(path, "must be non-empty text without leading or trailing spaces")
    if len(value) > TEXT_MAX_CHARS:
        raise _Invalid(path, f"is longer than {TEXT_MAX_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise _Invalid(path, "contains a control or invisible character")
    return value


def _int(value: object, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"must be a whole number, not {_show(value)}")
    if not low <= value <= high:
        raise _Invalid(path, f"must be from {low} to {high}, not {value}")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"must be true or false, not {_show(value)}")
    return value


def _number(value: object, path: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(path, f"must be a number, not {_show(value)}")
    if not 0 < value <= high:
        raise _Invalid(path, f"must be above 0 and at most {high:g}, not {value:g}")
    return float(value)


def _table(value: object, path: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(path, f"must be a table, not {_show(value)}")
    for key in value:
        if key not in allowed:
            raise _Invalid(f"{path}.{key}" if path else key,
                           f"unknown key (allowed here: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in value:
            raise _Invalid(f"{path}.{key}" if path else key, "is missing")
    return value


def _list(value: object, path: str, *, nonempty: bool = True) -> list:
    if not isinstance(value, list):
        raise _Invalid(path, f"must be a list, not {_show(value)}")
    if nonempty and not value:
        raise _Invalid(path, "must not be empty")
    return value


def _names(value: object, path: str) -> tuple[str, ...]:
    """A non-empty list of distinct names, sorted (their order means nothing)."""
    items = [_text(v, f"{path}[{i}]") for i, v in enumerate(_list(value, path), 1)]
    _no_duplicates(items, path)
    return tuple(sorted(items))


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _no_duplicates(items: Sequence[str], path: str, what: str = "") -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items, 1):
        if _fold(item) in seen:
            raise _Invalid(f"{path}[{i}]", f"duplicate {what}{_show(item)} (also {path}[{seen[_fold(item)]}])")
        seen[_fold(item)] = i


def _expires(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Invalid("expires", f'{_show(value)} is not an ISO date-time such as "2026-12-31T23:59:59Z"') \
                from None
    if isinstance(value, (date, time)) and not isinstance(value, datetime) or not isinstance(value, datetime):
        raise _Invalid("expires", f'must be a date-time such as "2026-12-31T23:59:59Z", not {_show(value)}')
    if value.tzinfo is None:
        raise _Invalid("expires", "needs a time zone: end it with Z (UTC) or an offset such as +02:00")
    if value.microsecond:
        raise _Invalid("expires", "give whole seconds")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time written by this module ("...Z") as an aware datetime."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


# ------------------------------------------------------------------ addresses and descriptors

def normalize_address(text: str, network: Network) -> str | None:
    """`text` in canonical form (bech32 lower-case) if it is a valid address on `network`, else None."""
    from embit import base58, bech32

    params = network.embit
    hrp = params["bech32"]
    if text.lower().startswith(hrp + "1"):
        if text != text.lower() and text != text.upper():
            return None
        version, program = bech32.decode(hrp, text.lower())
        return text.lower() if version is not None and program is not None else None
    try:
        data = base58.decode_check(text)
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError on junk
        return None
    if len(data) == 21 and data[:1] in (params["p2pkh"], params["p2sh"]):
        return text
    return None


def _address(value: object, path: str, network: Network) -> str:
    text = _text(value, path)
    normal = normalize_address(text, network)
    if normal is not None:
        return normal
    others = [n.value for n in Network if n is not network and normalize_address(text, n) is not None]
    if others:
        return _raise(path, f"{_show(text)} is an address of another network ({' or '.join(others)}), "
                            f"not of this policy's network {network.value}")
    return _raise(path, f"{_show(text)} is not a valid {network.value} address")


def _descriptor(value: object, path: str, network: Network) -> str:
    from coldsign.wallet.descriptor import WalletDescriptor

    if not isinstance(value, str):
        raise _Invalid(path, f"must be text, not {_show(value)}")
    try:
        return WalletDescriptor.parse(value.strip(), network).canonical()
    except BadInput as err:
        raise _Invalid(path, f"not a wallet descriptor on {network.value}: {err.message}") from None


def _raise(path: str, message: str):
    raise _Invalid(path, message)


# ------------------------------------------------------------------ sections

def _approver(value: object, path: str) -> Approver:
    t = _table(value, path, {"name", "key", "roles"}, {"name", "key", "roles"})
    name = _text(t["name"], f"{path}.name")
    key = t["key"]
    if not isinstance(key, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", key):
        raise _Invalid(f"{path}.key", f"{_show(key)} is not 64 hex digits (an Ed25519 identity public key, "
                                      f"as `coldsign key identity` shows it)")
    return Approver(name=name, public_key=bytes.fromhex(key), roles=_names(t["roles"], f"{path}.roles"))


def _book_entry(value: object, path: str, network: Network) -> AddressBookEntry:
    t = _table(value, path, {"name", "addresses", "descriptors", "gap"}, {"name"})
    name = _text(t["name"], f"{path}.name")
    if name == ANY:
        raise _Invalid(f"{path}.name", f'"{ANY}" is reserved (a rule\'s destinations = "any")')
    addresses = [_address(a, f"{path}.addresses[{i}]", network)
                 for i, a in enumerate(_list(t.get("addresses", []), f"{path}.addresses", nonempty=False), 1)]
    descriptors = [_descriptor(d, f"{path}.descriptors[{i}]", network)
                   for i, d in enumerate(_list(t.get("descriptors", []), f"{path}.descriptors", nonempty=False), 1)]
    if not addresses and not descriptors:
        raise _Invalid(path, f"address-book entry {_show(name)} has no addresses and no descriptors")
    _no_duplicates(addresses, f"{path}.addresses", "address ")
    _no_duplicates(descriptors, f"{path}.descriptors", "descriptor ")
    gap = _int(t.get("gap", 1000), f"{path}.gap", 1, MAX_GAP)
    return AddressBookEntry(name=name, addresses=tuple(sorted(addresses)), descriptors=tuple(sorted(descriptors)),
                            gap=gap)


def _time_window(days: object, hours: object, path: str) -> TimeWindow | None:
    if days is None and hours is None:
        return None
    day_numbers: tuple[int, ...] = tuple(range(7))
    if days is not None:
        names = _names(days, f"{path}.days")
        for i, d in enumerate(names, 1):
            if d not in DAYS:
                raise _Invalid(f"{path}.days", f"{_show(d)} is not a day: use {', '.join(DAYS)}")
        day_numbers = tuple(sorted(DAYS.index(d) for d in names))
    start, end = 0, 24 * 60
    if hours is not None:
        m = _HOURS.fullmatch(hours.strip()) if isinstance(hours, str) else None
        if m is None:
            raise _Invalid(f"{path}.hours", f'{_show(hours)} is not a time range: write e.g. "08:00-18:00" (UTC)')
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start >= end:
            raise _Invalid(f"{path}.hours", f"{_show(hours)} is not a range within one day: start before end, "
                                            f'from "00:00" to "24:00"')
    return TimeWindow(days=day_numbers, start_minute=start, end_minute=end)


def _velocity(value: object, path: str) -> tuple[Velocity, ...]:
    items = []
    for i, v in enumerate(_list(value, path, nonempty=False), 1):
        t = _table(v, f"{path}[{i}]", {"window", "max"}, {"window", "max"})
        items.append(Velocity(window_seconds=parse_duration(t["window"], f"{path}[{i}].window"),
                              max_sat=parse_amount(t["max"], f"{path}[{i}].max")))
    _no_duplicates([str(v.window_seconds) for v in items], path, "window ")
    return tuple(sorted(items, key=lambda v: v.window_seconds))


def _fee(value: object, path: str) -> FeeCaps:
    t = _table(value, path, {"max", "max_rate_sat_vb", "max_percent"})
    return FeeCaps(max_sat=parse_amount(t["max"], f"{path}.max") if "max" in t else None,
                   max_rate_sat_vb=_number(t["max_rate_sat_vb"], f"{path}.max_rate_sat_vb", 1_000_000)
                   if "max_rate_sat_vb" in t else None,
                   max_percent=_number(t["max_percent"], f"{path}.max_percent", 100) if "max_percent" in t else None)


def _approvals(value: object, path: str) -> Approvals:
    t = _table(value, path, {"threshold", "group", "require_roles", "initiator_may_approve"}, {"threshold", "group"})
    return Approvals(threshold=_int(t["threshold"], f"{path}.threshold", 1, 1000),
                     group=_text(t["group"], f"{path}.group"),
                     require_roles=_names(t["require_roles"], f"{path}.require_roles") if "require_roles" in t
                     else (),
                     initiator_may_approve=_bool(t.get("initiator_may_approve", False),
                                                 f"{path}.initiator_may_approve"))


RULE_KEYS = {"name", "wallets", "destinations", "action", "max_per_tx", "velocity", "fee", "days", "hours",
             "approvals"}


def _rule(value: object, path: str) -> Rule:
    t = _table(value, path, RULE_KEYS, {"name", "wallets", "destinations"})
    name = _text(t["name"], f"{path}.name")
    action = t.get("action", "allow")
    if action not in ("allow", "deny"):
        raise _Invalid(f"{path}.action", f'must be "allow" or "deny", not {_show(action)}')
    wallets = (ANY,) if t["wallets"] == ANY else _names(t["wallets"], f"{path}.wallets")
    if ANY in wallets and len(wallets) > 1:
        raise _Invalid(f"{path}.wallets", f'"{ANY}" stands alone: wallets = "{ANY}"')
    destinations: tuple[str, ...] | str = ANY if t["destinations"] == ANY else \
        _names(t["destinations"], f"{path}.destinations")
    if action == "allow" and "approvals" not in t:
        raise _Invalid(f"{path}.approvals", 'is missing: an "allow" rule says who must approve ([rules.approvals])')
    if action == "deny" and "approvals" in t:
        raise _Invalid(f"{path}.approvals", 'a "deny" rule refuses what it matches: it takes no approvals')
    return Rule(name=name, wallets=wallets, destinations=destinations,
                approvals=_approvals(t["approvals"], f"{path}.approvals") if action == "allow" else None,
                action=action,
                max_per_tx_sat=parse_amount(t["max_per_tx"], f"{path}.max_per_tx") if "max_per_tx" in t else None,
                velocity=_velocity(t.get("velocity", []), f"{path}.velocity"),
                fee=_fee(t["fee"], f"{path}.fee") if "fee" in t else FeeCaps(),
                hours=_time_window(t.get("days"), t.get("hours"), path))


TOP_KEYS = {"format", "name", "version", "network", "expires", "clock_skew", "admins", "approvers",
            "address_book", "rules"}


def _policy(doc: dict) -> Policy:
    _table(doc, "", TOP_KEYS, {"format", "name", "version", "network", "admins", "approvers", "rules"})
    if doc["format"] != FORMAT:
        raise _Invalid("format", f'{_show(doc["format"])} is not a format this coldsign reads ("{FORMAT}")')
    network_text = doc["network"]
    if network_text not in [n.value for n in Network]:
        raise _Invalid("network", f"{_show(network_text)} is not one of main, test, signet, regtest")
    network = Network(network_text)
    approvers = tuple(_approver(a, f"approvers[{i}]") for i, a in enumerate(_list(doc["approvers"], "approvers"), 1))
    _no_duplicates([a.name for a in approvers], "approvers", "approver name ")
    _no_duplicates([a.public_key.hex() for a in approvers], "approvers", "key ")
    admins_t = _table(doc["admins"], "admins", {"threshold", "role"}, {"threshold"})
    admins = Admins(threshold=_int(admins_t["threshold"], "admins.threshold", 1, 1000),
                    role=_text(admins_t.get("role", "admin"), "admins.role"))
    book = tuple(_book_entry(e, f"address_book[{i}]", network)
                 for i, e in enumerate(_list(doc.get("address_book", []), "address_book", nonempty=False), 1))
    _no_duplicates([e.name for e in book], "address_book", "entry name ")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(_list(doc["rules"], "rules"), 1))
    _no_duplicates([r.name for r in rules], "rules", "rule name ")
    policy = Policy(name=_text(doc["name"], "name"), version=_int(doc["version"], "version", 1, 2**53),
                    expires=_expires(doc.get("expires")),
                    clock_skew_seconds=parse_duration(doc.get("clock_skew", "5m"), "clock_skew", allow_zero=True,
                                                      maximum=MAX_SKEW_SECONDS),
                    admins=admins, approvers=approvers, address_book=book, rules=rules, network=network.value)
    _check_references(policy)
    return policy


def _holders(policy: Policy, role: str) -> list[Approver]:
    return [a for a in policy.approvers if role in a.roles]


def _check_references(policy: Policy) -> None:
    """Roles that someone holds, thresholds that can be met, address-book names that exist."""
    admins = _holders(policy, policy.admins.role)
    if not admins:
        raise _Invalid("admins.role", f"no approver holds the role {_show(policy.admins.role)}")
    if policy.admins.threshold > len(admins):
        raise _Invalid("admins.threshold", f"{policy.admins.threshold} is more than the {len(admins)} approver(s) "
                                           f"holding {_show(policy.admins.role)}")
    book = {e.name for e in policy.address_book}
    for i, rule in enumerate(policy.rules, 1):
        path = f"rules[{i}]"
        if rule.destinations != ANY:
            for name in rule.destinations:
                if name not in book:
                    raise _Invalid(f"{path}.destinations", f"{_show(name)} is not an address_book entry")
        if rule.approvals is None:
            continue
        group = _holders(policy, rule.approvals.group)
        if not group:
            raise _Invalid(f"{path}.approvals.group", f"no approver holds the role {_show(rule.approvals.group)}")
        if rule.approvals.threshold > len(group):
            raise _Invalid(f"{path}.approvals.threshold", f"{rule.approvals.threshold} is more than the {len(group)} "
                                                          f"approver(s) holding {_show(rule.approvals.group)}")
        for role in rule.approvals.require_roles:
            if not any(role in a.roles for a in group):
                raise _Invalid(f"{path}.approvals.require_roles", f"no approver holds both {_show(role)} and the "
                                                                  f"group role {_show(rule.approvals.group)}")


# ------------------------------------------------------------------ parsing the file

def parse_policy(data: bytes | str, *, where: str | None = None) -> Policy:
    """The policy in `data` (TOML), validated strictly; BadInput naming the field and line."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > POLICY_MAX_BYTES:
        raise BadInput(f"the policy is larger than the limit of {POLICY_MAX_BYTES} bytes", where=where,
                       code="policy-document", hint="check that this is the policy file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"the policy is not UTF-8 text (byte {err.start})", where=where, code="policy-document",
                       hint="check that this is the policy file") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BadInput(f"the policy is not valid TOML: {err}", where=where, code="policy-document",
                       hint=FIX_HINT) from None
    try:
        return _policy(doc)
    except _Invalid as problem:
        line = _line_of(text, problem.path)
        place = f"{where or 'policy'}:{line}" if line else where
        raise BadInput(f"{problem.path}: {problem.message}" if problem.path else problem.message, where=place,
                       code="policy-document", hint=FIX_HINT) from None


_HEADER = re.compile(r"\s*\[(\[)?\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(#.*)?$")


def _line_of(text: str, path: str) -> int | None:
    """The line of field `path` ("rules[2].approvals.threshold"), found by walking the table headers:
    the key's own line, else its table's header line; None when neither can be seen."""
    parts = re.findall(r"(\w+)(?:\[(\d+)\])?", path)
    if not parts:
        return None
    head, entry = parts[0][0], int(parts[0][1]) if parts[0][1] else None
    rest = [name for name, _ in parts[1:]]
    if entry is None:
        candidates = [(head, None, rest[0]), (head, None, None)] if rest else [("", None, head)]
    else:
        candidates = [(f"{head}.{rest[0]}", entry, rest[1])] if len(rest) >= 2 else []
        candidates += [(head, entry, rest[0]), (f"{head}.{rest[0]}", entry, None)] if rest else []
        candidates.append((head, entry, None))
    lines = text.splitlines()
    for table, wanted, key in candidates:
        current, seen = "", 0
        for number, line in enumerate(lines, 1):
            h = _HEADER.match(line)
            if h:
                current = h.group(2).replace(" ", "")
                seen += bool(h.group(1)) and current == head
                if key is None and current == table and wanted in (None, seen):
                    return number
            elif key and current == table and wanted in (None, seen) and re.match(rf"\s*{key}\s*=", line):
                return number
    return None


# ------------------------------------------------------------------ canonical form and digest

def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def policy_to_json(policy: Policy) -> dict:
    """Every field of the parsed policy, bytes as lower-case hex (the canonical content)."""
    return _plain(policy)


def canonical_json(policy: Policy) -> bytes:
    return json.dumps(policy_to_json(policy), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def policy_digest(policy: Policy) -> bytes:
    """SHA-256 of b"coldsign/policy/v1\\0" + the canonical JSON: what admins sign."""
    return hashlib.sha256(DIGEST_TAG + canonical_json(policy)).digest()


def is_expired(policy: Policy, now: datetime) -> bool:
    return policy.expires is not None and now >= parse_time(policy.expires)


# ------------------------------------------------------------------ admin signatures

@dataclass(frozen=True)
class PolicySignature:
    """One admin's Ed25519 signature (domain "policy/v1") over a policy digest."""

    policy_digest: bytes
    policy_version: int
    signer: bytes
    signature: bytes

    def to_json(self) -> dict:
        return {"format": SIGNATURE_FORMAT, "version": SIGNATURE_VERSION, "policy_digest": self.policy_digest.hex(),
                "policy_version": self.policy_version, "signer": self.signer.hex(), "signature": self.signature.hex()}

    def serialize(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, *, where: str | None = None) -> "PolicySignature":
        """A signature file, strictly: BadInput naming the field."""
        def bad(message: str) -> BadInput:
            return BadInput(message, where=where, code="policy-signature",
                            hint="check that this is a file written by `coldsign policy approve-doc`")

        if len(data) > SIGNATURE_MAX_BYTES:
            raise bad(f"the signature file is larger than the limit of {SIGNATURE_MAX_BYTES} bytes")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("the signature file is not JSON") from None
        wanted = {"format", "version", "policy_digest", "policy_version", "signer", "signature"}
        if not isinstance(doc, dict) or set(doc) != wanted:
            raise bad(f"the signature file must hold exactly the fields {', '.join(sorted(wanted))}")
        if doc["format"] != SIGNATURE_FORMAT or doc["version"] != SIGNATURE_VERSION:
            raise bad(f'not a "{SIGNATURE_FORMAT}" version {SIGNATURE_VERSION} file')
        if isinstance(doc["policy_version"], bool) or not isinstance(doc["policy_version"], int):
            raise bad("policy_version must be a whole number")
        values = {}
        for name, size in (("policy_digest", 32), ("signer", 32), ("signature", 64)):
            v = doc[name]
            if not isinstance(v, str) or not re.fullmatch(rf"[0-9a-f]{{{2 * size}}}", v):
                raise bad(f"{name} must be {2 * size} lower-case hex digits")
            values[name] = bytes.fromhex(v)
        return cls(policy_version=doc["policy_version"], **values)


def sign_policy(policy: Policy, key) -> PolicySignature:
    """`key` (a coldsign.keys.identity.IdentityKey) signs the policy's digest."""
    digest = policy_digest(policy)
    return PolicySignature(policy_digest=digest, policy_version=policy.version, signer=key.public_key,
                           signature=key.sign(DOMAIN, digest))


@dataclass(frozen=True)
class SignatureCheck:
    """What one signature file is worth: `counts` toward the quorum, or `reason` why not."""

    source: str
    signer: bytes
    valid: bool                  # a good signature over this policy's digest
    counts: bool
    reason: str
    approver: Approver | None    # who the signer is in the authorizing policy

    def to_json(self) -> dict:
        from coldsign.keys.identity import fingerprint_of

        return {"file": self.source, "signer": self.signer.hex(), "fingerprint": fingerprint_of(self.signer),
                "name": self.approver.name if self.approver else None,
                "roles": list(self.approver.roles) if self.approver else [],
                "valid": self.valid, "counts": self.counts, "reason": self.reason}


@dataclass(frozen=True)
class QuorumReport:
    """Whether the authorizing policy's admin quorum signed `digest`."""

    digest: bytes
    version: int
    authority: Policy            # whose admins count: the installed policy, or the new one itself
    authority_source: str        # "installed" | "self"
    checks: tuple[SignatureCheck, ...]

    @property
    def signers(self) -> tuple[Approver, ...]:
        return tuple(c.approver for c in self.checks if c.counts and c.approver is not None)

    @property
    def met(self) -> bool:
        return len(self.signers) >= self.authority.admins.threshold

    def summary(self) -> str:
        who = f'{self.authority.admins.threshold} of the approvers holding "{self.authority.admins.role}"'
        whose = (f'the installed policy "{self.authority.name}" v{self.authority.version}'
                 if self.authority_source == "installed" else "this policy itself (first install)")
        got = ", ".join(a.name for a in self.signers) or "nobody"
        return f"{'quorum met' if self.met else 'quorum NOT met'}: {who} in {whose}; counted: {got}"

    def to_json(self) -> dict:
        return {"met": self.met, "threshold": self.authority.admins.threshold, "role": self.authority.admins.role,
                "authority": {"source": self.authority_source, "name": self.authority.name,
                              "version": self.authority.version},
                "signers": [a.name for a in self.signers], "summary": self.summary(),
                "signatures": [c.to_json() for c in self.checks]}


def check_quorum(policy: Policy, signatures: Sequence[tuple[str, PolicySignature]],
                 authority: Policy | None = None) -> QuorumReport:
    """Check each (source, signature) against `policy`'s digest and `authority`'s admins (default:
    the policy itself). Signatures over another digest, that do not verify, by keys the authority does
    not name, by non-admins, or repeated, are reported and do not count."""
    from coldsign.keys.identity import fingerprint_of, verify

    digest = policy_digest(policy)
    auth = authority or policy
    role = auth.admins.role
    checks: list[SignatureCheck] = []
    counted: set[bytes] = set()
    for source, sig in signatures:
        approver = auth.approver_by_key(sig.signer)
        valid, counts, reason = False, False, ""
        if sig.policy_digest != digest:
            reason = (f"signed another policy (digest {sig.policy_digest.hex()[:16]}…, "
                      f"version {sig.policy_version}), not this one (digest {digest.hex()[:16]}…, "
                      f"version {policy.version})")
        elif not verify(sig.signer, DOMAIN, digest, sig.signature):
            reason = "the signature does not verify (damaged or forged)"
        elif sig.policy_version != policy.version:
            reason = f"the file says version {sig.policy_version} but the policy is version {policy.version}"
        else:
            valid = True
            if approver is None:
                reason = (f"signed by key {fingerprint_of(sig.signer)}, which the "
                          f"{'installed' if authority is not None else 'new'} policy \"{auth.name}\" "
                          f"v{auth.version} does not name")
            elif role not in approver.roles:
                reason = f'{approver.name} does not hold the admin role "{role}"'
            elif sig.signer in counted:
                reason = f"a second signature by {approver.name}; each admin counts once"
            else:
                counts = True
                counted.add(sig.signer)
        checks.append(SignatureCheck(source=source, signer=sig.signer, valid=valid, counts=counts, reason=reason,
                                     approver=approver))
    return QuorumReport(digest=digest, version=policy.version, authority=auth,
                        authority_source="installed" if authority is not None else "self", checks=tuple(checks))


# ------------------------------------------------------------------ the installed policy (file edge)

@dataclass(frozen=True)
class InstalledPolicy:
    policy: Policy
    digest: bytes
    record: dict                 # installed.json


def policy_folder(home: Path) -> Path:
    return Path(home) / "policy"


def load_installed(home: Path) -> InstalledPolicy | None:
    """The installed policy and its record, or None when none is installed. VerificationFailed when
    the text does not match the digest its record names (and no archive copy does)."""
    from coldsign.store import read_limited

    folder = policy_folder(home)
    record_path = folder / "installed.json"
    if not record_path.exists():
        return None
    try:
        record = json.loads(read_limited(record_path, RECORD_MAX_BYTES, what="installed policy record"))
        digest = bytes.fromhex(record["digest"])
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed("the installed policy record is damaged", where=str(record_path),
                                 code="policy-installed",
                                 hint="reinstall the policy with its admin signatures") from None
    candidates = [folder / "installed.toml"]
    if isinstance(record.get("archive"), str) and re.fullmatch(r"archive/v\d+-[0-9a-f]{16}\.toml", record["archive"]):
        candidates.append(folder / record["archive"])
    for path in candidates:
        if not path.exists():
            continue
        text = read_limited(path, POLICY_MAX_BYTES, what="installed policy")
        policy = parse_policy(text, where=str(path))
        if policy_digest(policy) == digest:
            return InstalledPolicy(policy=policy, digest=digest, record=record)
    raise VerificationFailed("the installed policy does not match the digest its record names",
                             where=str(folder / "installed.toml"), code="policy-installed",
                             hint="someone edited it: reinstall the signed policy")


def installed_policy(home: Path) -> Policy | None:
    found = load_installed(home)
    return found.policy if found else None


@dataclass(frozen=True)
class InstallResult:
    policy: Policy
    digest: bytes
    previous: InstalledPolicy | None
    quorum: QuorumReport
    installed_at: str

    def to_json(self) -> dict:
        prev = None if self.previous is None else {"name": self.previous.policy.name,
                                                   "version": self.previous.policy.version,
                                                   "digest": self.previous.digest.hex()}
        return {"installed": True, "name": self.policy.name, "version": self.policy.version,
                "digest": self.digest.hex(), "network": self.policy.network, "expires": self.policy.expires,
                "first": self.previous is None, "previous": prev, "installed_at": self.installed_at,
                "quorum": self.quorum.to_json()}


def install(home: Path, text: bytes, signatures: Sequence[tuple[str, PolicySignature]], *, first: bool,
            now: datetime, where: str | None = None) -> InstallResult:
    """Install the policy in `text` if the quorum of the installed policy (or, with `first` and
    nothing installed, of the policy itself) signed it and its version is higher. Refused otherwise,
    with nothing written."""
    from coldsign.store import atomic_write

    policy = parse_policy(text, where=where)
    digest = policy_digest(policy)
    current = load_installed(home)
    if current is None and not first:
        raise Refused("no policy is installed on this signer; the first one is installed in the key ceremony",
                      code="policy-first-install", hint="pass --first, with the witnesses checking the digest")
    if current is not None and first:
        raise Refused(f'a policy is already installed ("{current.policy.name}" v{current.policy.version}); '
                      f"--first is only for the first one", code="policy-already-installed",
                      hint="drop --first: the installed policy's admins must sign the new version")
    if current is not None and policy.version <= current.policy.version:
        raise Refused(f"version {policy.version} is not above the installed version {current.policy.version}: "
                      f"a rollback", code="policy-rollback",
                      hint="a new policy needs a higher version, signed by the installed policy's admins")
    if current is not None and policy.network != current.policy.network:
        raise Refused(f"the policy is for {policy.network} but the installed one is for {current.policy.network}",
                      code="policy-network")
    if is_expired(policy, now):
        raise Refused(f"the policy expired at {policy.expires}", code="policy-expired",
                      hint="set a later expires, raise the version and have it signed again")
    report = check_quorum(policy, signatures, current.policy if current else None)
    if not report.met:
        raise Refused(f"the admin quorum did not sign this policy — {report.summary()}", code="policy-quorum",
                      hint="collect signatures (coldsign policy approve-doc) from enough admins",
                      details=[{"code": "signature-counts" if c.counts else "signature-ignored",
                                "message": f"{c.source}: {c.reason or 'counts'}"} for c in report.checks])
    installed_at = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    folder = policy_folder(home)
    archive = f"archive/v{policy.version}-{digest.hex()[:16]}.toml"
    record = {"digest": digest.hex(), "version": policy.version, "name": policy.name, "installed": installed_at,
              "signatures": [dict(sig.to_json(), file=source) for (source, sig), c
                             in zip(signatures, report.checks) if c.counts],
              "previous": None if current is None else {"digest": current.digest.hex(),
                                                        "version": current.policy.version},
              "archive": archive}
    atomic_write(folder / archive, text, mode=0o644)
    atomic_write(folder / "installed.json", json.dumps(record, indent=2) + "\n")   # the commit point
    atomic_write(folder / "installed.toml", text)
    return InstallResult(policy=policy, digest=digest, previous=current, quorum=report, installed_at=installed_at)


def format_digest(digest: bytes) -> str:
    """The digest in groups of 8 hex digits, for witnesses to read aloud."""
    h = digest.hex()
    return " ".join(h[i:i + 8] for i in range(0, len(h), 8))


def default_expiry(now: datetime, days: int = 365) -> str:
    return (now + timedelta(days=days)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
