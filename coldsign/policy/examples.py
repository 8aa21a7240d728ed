"""Example policies as TOML text: one writer for `policy init`'s commented example, the ceremony
rehearsal's first policy and the tests' treasury policy.

They share one shape: policy "treasury" v1, clock skew 5m, admins 2 of "admin", the people with
their identity keys and roles, an address book entry "exchange", and rules tried in order. What
differs is given as data (`Person`, `Rule`); `policy_toml` writes it, and with `commented=True` adds
the explanations a person editing the file needs (each key explained where it first appears).

Pure: returns text; `coldsign.policy.document.parse_policy` is what checks it. The digest is taken
over the parsed policy, so the layout here never changes a digest.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMENT_COLUMN = 33          # where a key's trailing comment starts (or two spaces after a longer line)

HEADER = '''\
# coldsign policy: what this signer may sign, and who must approve it.
#
# Deny by default. The rules are tried in order; the FIRST rule whose conditions all hold
# (wallet, destinations, amount, velocity, fee, days/hours) decides, and its approvals must
# then be met. A request that no rule matches is refused.
#
#   amounts:   "5 BTC", "0.5 BTC", "120000 sat"     (always with a unit)
#   durations: "90m", "24h", "7d"
#   days:      "mon" .. "sun";  hours: "08:00-18:00"  (UTC; the end minute is excluded)
#
# Replace every <...> below. Then each admin signs the policy's digest:
#   coldsign policy approve-doc policy.toml --keystore NAME
# and the signer installs it (the first time in the key ceremony, with --first):
#   coldsign policy install policy.toml *.sig.json
'''

# The explanations of the commented form: a key's trailing comment, at its first appearance.
KEY_NOTES = {
    "version": "raise it with every change: an equal or lower one is a rollback",
    "expires": "UTC; after it this signer signs nothing under this policy",
    "clock_skew": "allowance when comparing a request's times with the signer's clock",
    "initiator_may_approve": "the {group} who asked does not count as an approver",
}
ADMINS_NOTE = '''\
# Who signs the next version of this policy: {threshold} distinct approvers holding the role "{role}".
# Keys rotate that way: the next version names the new keys and the current admins sign it.
'''
PEOPLE_NOTE = "# The people. key: the Ed25519 identity public key that `coldsign key identity` shows.\n"
ADDRESS_BOOK_NOTE = '''\
# Named destinations: addresses, and/or descriptors of our own other wallets (their receive and
# change addresses up to `gap` are accepted).
'''
HOURS_HINT = '# days = ["mon", "tue", "wed", "thu", "fri"]\n# hours = "08:00-18:00"\n'


@dataclass(frozen=True)
class Person:
    """An approver: a name, an identity public key (64 hex digits, or a <placeholder>), roles."""

    name: str
    key: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """An allow rule: to `destinations` from `wallets` ("any" or names), with its limits and approvals."""

    name: str
    threshold: int                           # approvals needed ...
    group: str                               # ... from holders of this role
    wallets: tuple[str, ...] | str = "any"
    destinations: tuple[str, ...] | str = "any"
    max_per_tx: str | None = None
    velocity_24h: str | None = None          # the most sent in any 24 h
    fee_max: str | None = None
    fee_max_rate_sat_vb: int | None = None
    require_roles: tuple[str, ...] = ()
    initiator_may_approve: bool | None = None    # None: not written (the default, false)
    note: str = ""                           # the comment above the rule, in the commented form


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _strings(values) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def _names(value: tuple[str, ...] | str) -> str:
    return _string(value) if isinstance(value, str) else _strings(value)


class _Writer:
    """Lines of TOML; in commented form, a key's note trails its first appearance."""

    def __init__(self, commented: bool):
        self.commented = commented
        self.noted: set[str] = set()
        self.parts: list[str] = []

    def text(self, block: str) -> None:
        if self.commented:
            self.parts.append(block)

    def line(self, line: str) -> None:
        self.parts.append(line + "\n")

    def key(self, key: str, value: str, **note_values: str) -> None:
        line = f"{key} = {value}"
        if self.commented and key in KEY_NOTES and key not in self.noted:
            self.noted.add(key)
            line += " " * max(2, COMMENT_COLUMN - len(line)) + "# " + KEY_NOTES[key].format(**note_values)
        self.line(line)


def _rule(w: _Writer, rule: Rule, first: bool) -> None:
    if rule.note:
        w.text(f"# {rule.note}\n")
    w.line("[[rules]]")
    w.key("name", _string(rule.name))
    w.key("wallets", _names(rule.wallets))
    w.key("destinations", _names(rule.destinations))
    if rule.max_per_tx is not None:
        w.key("max_per_tx", _string(rule.max_per_tx))
    if rule.velocity_24h is not None:
        w.key("velocity", f'[{{ window = "24h", max = {_string(rule.velocity_24h)} }}]')
    fee = ([f"max = {_string(rule.fee_max)}"] if rule.fee_max is not None else []) + \
        ([f"max_rate_sat_vb = {rule.fee_max_rate_sat_vb}"] if rule.fee_max_rate_sat_vb is not None else [])
    if fee:
        w.key("fee", "{ " + ", ".join(fee) + " }")
    if first:
        w.text(HOURS_HINT)
    w.line("")
    w.line("[rules.approvals]")
    w.key("threshold", str(rule.threshold))
    w.key("group", _string(rule.group))
    if rule.require_roles:
        w.key("require_roles", _strings(rule.require_roles))
    if rule.initiator_may_approve is not None:
        w.key("initiator_may_approve", str(rule.initiator_may_approve).lower(), group=rule.group)


def policy_toml(*, network: str, people: list[Person] | tuple[Person, ...], exchange: list[str] | tuple[str, ...],
                rules: list[Rule] | tuple[Rule, ...], expires: str | None = None, name: str = "treasury",
                version: int = 1, clock_skew: str = "5m", admins_threshold: int = 2, admins_role: str = "admin",
                commented: bool = False) -> str:
    """The TOML text of a policy: the people, the address book entry "exchange", the rules in order."""
    w = _Writer(commented)
    if commented:
        w.text(HEADER)
        w.line("")
    w.key("format", _string("coldsign-policy/1"))
    w.key("name", _string(name))
    w.key("version", str(version))
    w.key("network", _string(network))
    if expires is not None:
        w.key("expires", _string(expires))
    w.key("clock_skew", _string(clock_skew))
    w.line("")
    w.text(ADMINS_NOTE.format(threshold=admins_threshold, role=admins_role))
    w.line("[admins]")
    w.key("threshold", str(admins_threshold))
    w.key("role", _string(admins_role))
    w.line("")
    w.text(PEOPLE_NOTE)
    for person in people:
        w.line("[[approvers]]")
        w.key("name", _string(person.name))
        w.key("key", _string(person.key))
        w.key("roles", _strings(person.roles))
        w.line("")
    w.text(ADDRESS_BOOK_NOTE)
    w.line("[[address_book]]")
    w.key("name", _string("exchange"))
    w.key("addresses", _strings(exchange))
    for index, rule in enumerate(rules):
        w.line("")
        _rule(w, rule, first=index == 0)
    return "".join(w.parts)


# --- `coldsign policy init` ---------------------------------------------------------------------

INIT_PEOPLE = (
    Person("treasurer-1", "<treasurer-1 identity public key>", ("treasurer", "approver", "admin")),
    Person("treasurer-2", "<treasurer-2 identity public key>", ("treasurer", "approver", "admin")),
    Person("treasurer-3", "<treasurer-3 identity public key>", ("treasurer", "approver")),
    Person("cfo", "<cfo identity public key>", ("cfo", "approver", "admin")),
)
INIT_RULES = (
    Rule("treasury-to-exchange", 2, "treasurer", wallets=("treasury",), destinations=("exchange",),
         max_per_tx="5 BTC", velocity_24h="5 BTC", fee_max="0.001 BTC", fee_max_rate_sat_vb=200,
         initiator_may_approve=False,
         note="Treasury: up to 5 BTC a day to the exchange allowlist, with 2 of the 3 treasurers' approval."),
    Rule("anything-else", 3, "approver", require_roles=("cfo",), initiator_may_approve=False,
         note="Anything else: 3 of the 4 approvers, the CFO among them."),
)


def init_example(network: str, expires: str) -> str:
    """The commented example `policy init` writes: treasury up to 5 BTC a day to the exchange with 2
    of 3 treasurers; anything else 3 of 4 approvers including the CFO; admins 2 of 3. Every
    <placeholder> must be replaced (the parser refuses them, naming the first)."""
    return policy_toml(network=network, people=INIT_PEOPLE, exchange=["<exchange deposit address>"],
                       rules=INIT_RULES, expires=expires, commented=True)
