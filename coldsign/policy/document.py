"""The policy document (pure): TOML text -> `model.Policy`, strictly validated and normalised, and
its canonical JSON and digest, what the admins sign.

The admins' signatures and the quorum live in `coldsign.policy.signatures`, the installed policy
(home-folder files, rollback, rotation, the ledger binding) in `coldsign.policy.installed`. Their
names stay importable from here too (see `__getattr__` at the end) for older callers.

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
    destinations = ["exchange"]       # address-book names, or "any"; an allow rule matches when every
                                      # payment goes there, a deny rule when any payment does
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
found, the line. Amounts are never bare numbers: "5" could be BTC or sat, so a unit is required
(the amount itself is read by `coldsign.amounts`, the one exact parser). An address is checked
against the policy's network by `coldsign.wallet.address`, the same check `watch send` makes.

## Digest

`canonical_json(policy)` is the parsed, normalised policy (sets sorted, addresses and descriptors
in canonical form, times in UTC) as canonical JSON; `policy_digest` is SHA-256 over
b"coldsign/policy/v1\\0" + that, so comments and formatting do not change it and every change of
meaning does. An admin signs the 32-byte digest with the identity key under domain "policy/v1"
(`coldsign.policy.signatures`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import unicodedata
from dataclasses import fields, is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Sequence

from coldsign import amounts
from coldsign.canonical import canonical_json as canonical
from coldsign.errors import BadInput
from coldsign.limits import LIMITS
from coldsign.network import Network
from coldsign.policy.model import (ANY, AddressBookEntry, Admins, Approvals, Approver, FeeCaps, Policy, Rule,
                                   TimeWindow, Velocity)

FORMAT = "coldsign-policy/1"
DIGEST_TAG = b"coldsign/policy/v1\0"
POLICY_MAX_BYTES = LIMITS.policy_file_max_bytes
TEXT_MAX_CHARS = 200
MAX_GAP = 10_000   # derivations per descriptor on every evaluation: two branches of this many
MAX_WINDOW_SECONDS = 400 * 86_400
MAX_SKEW_SECONDS = 86_400
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

_AMOUNT = re.compile(r"(\d+(?:\.\d+)?) ?(BTC|btc|sat|sats)", re.ASCII)
_DURATION = re.compile(r"(\d+)([smhd])")
# NOTE: Python refuses to turn more than 4300 digits into an int (ValueError, CVE-2020-10735); a
# duration this long is out of range, and is said so before any conversion.
MAX_DIGITS = 20
_HOURS = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_amount(value: object, path: str = "amount") -> int:
    """Sats of "5 BTC", "0.5 BTC", "120000 sat" (> 0, at most 21 million BTC, whole sats).

    The policy's own rule is the unit: a bare number is refused, "5" could be BTC or sat. The
    number itself is read by `coldsign.amounts.parse_amount`, the one exact parser."""
    if not isinstance(value, str):
        raise _Invalid(path, f'{_show(value)} is not an amount: write it as text with a unit, e.g. "5 BTC", '
                             f'"0.5 BTC" or "120000 sat"')
    m = _AMOUNT.fullmatch(value.strip())
    if m is None:
        raise _Invalid(path, f'{_show(value)} is not an amount: write e.g. "5 BTC", "0.5 BTC" or "120000 sat"')
    try:
        return amounts.parse_amount(value)
    except BadInput:
        # the pattern admits only "<digits>[.<digits>] <unit>": what amounts refuses is a fraction of a
        # sat, or a number outside 1 sat .. 21 million BTC; say which in the policy's words
        number, unit = m.groups()
        fraction = number.partition(".")[2].rstrip("0")
        if len(fraction) > (8 if unit.lower() == "btc" else 0):
            raise _Invalid(path, f"{_show(value)} is not a whole number of sats (at most 8 decimals of BTC)") \
                from None
        raise _Invalid(path, f"{_show(value)} is not between 1 sat and 21 million BTC") from None


def parse_duration(value: object, path: str = "duration", *, allow_zero: bool = False,
                   maximum: int = MAX_WINDOW_SECONDS) -> int:
    """Seconds of "90m", "24h", "7d" (also "30s")."""
    m = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise _Invalid(path, f'{_show(value)} is not a duration: write e.g. "90m", "24h" or "7d"')
    seconds = int(m.group(1)) * _UNITS[m.group(2)] if len(m.group(1)) <= MAX_DIGITS else maximum + 1
    if seconds == 0 and not allow_zero or seconds > maximum:
        low = "0" if allow_zero else "1s"
        raise _Invalid(path, f"{_show(value)} is not between {low} and {format_duration(maximum)}")
    return seconds


def format_amount(sat: int) -> str:
    """"5 BTC", "0.5 BTC", "120000 sat": BTC from 0.01 BTC up, sats below; as a policy file writes
    them (`coldsign.amounts.format_btc` without its trailing zeros)."""
    if sat >= 1_000_000:
        return amounts.format_btc(sat).removesuffix(" BTC").rstrip("0").rstrip(".") + " BTC"
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
    try:
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:   # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise _Invalid("expires", f"{value.isoformat()} is outside the years 1 to 9999 in UTC") from None


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time written by this module ("...Z") as an aware datetime."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


# ------------------------------------------------------------------ addresses and descriptors

def _address(value: object, path: str, network: Network) -> str:
    from coldsign.wallet.address import canonical_address, networks_of

    text = _text(value, path)
    normal = canonical_address(text, network)
    if normal is not None:
        return normal
    others = [n.value for n in networks_of(text)]
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
        # NOTE: a start after the end wraps past midnight ("22:00-06:00": the night shift, UTC);
        # the same start and end would say nothing (every minute or none) and is refused.
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start == end or (start > end and end == 24 * 60):
            raise _Invalid(f"{path}.hours", f'{_show(hours)} is not a time range: "08:00-18:00", or one past '
                                            f'midnight like "22:00-06:00", times from "00:00" to "24:00"')
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
    except ValueError:      # tomllib's int() of a number with more than 4300 digits
        raise BadInput("the policy holds a number too long to read (more than 4300 digits)", where=where,
                       code="policy-document", hint=FIX_HINT) from None
    try:
        return _policy(doc)
    except _Invalid as problem:
        line = _line_of(text, problem.path)
        place = f"{where or 'policy'}:{line}" if line else where
        raise BadInput(f"{problem.path}: {problem.message}" if problem.path else problem.message, where=place,
                       code="policy-document", hint=FIX_HINT) from None


# NOTE: linear in the line's length: no two neighbouring parts of the pattern match the same
# characters (a lazy name between two `\s*` took cubic time on a long line of spaces).
_HEADER = re.compile(r"[ \t]*\[(\[)?([A-Za-z0-9_.\- \t]*)\]\]?[ \t]*(#.*)?$")


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
            if h and h.group(2).strip():
                current = h.group(2).replace(" ", "").replace("\t", "")
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
    return canonical(policy_to_json(policy))


def policy_digest(policy: Policy) -> bytes:
    """SHA-256 of b"coldsign/policy/v1\\0" + the canonical JSON: what admins sign."""
    return hashlib.sha256(DIGEST_TAG + canonical_json(policy)).digest()


def is_expired(policy: Policy, now: datetime) -> bool:
    return policy.expires is not None and now >= parse_time(policy.expires)


def format_digest(digest: bytes) -> str:
    """The digest in groups of 8 hex digits, for witnesses to read aloud."""
    h = digest.hex()
    return " ".join(h[i:i + 8] for i in range(0, len(h), 8))


def default_expiry(now: datetime, days: int = 365) -> str:
    return (now + timedelta(days=days)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
