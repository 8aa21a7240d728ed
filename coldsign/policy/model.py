"""The policy engine's vocabulary (pure data; parsing lives in `document.py`, requests in
`request.py`, evaluation in `evaluate.py`, the signer's memory in `ledger.py`).

A **policy** is deny by default: its rules are tried in order and the first rule whose
*conditions* all hold (wallet, destinations, amount, velocity, fee, time window, not expired)
decides; that rule's *approval requirement* must then be met, or the request is refused naming
the rule and what is missing. When no rule's conditions hold the request is refused, each rule
saying why it did not match. `action = "deny"` rules refuse what they match; a deny rule's
destinations match when any payment goes to them (an allow rule's when every payment does).

Amounts are satoshis; times are UTC; durations are seconds. People are `Approver`s named in the
policy with their Ed25519 identity public key (coldsign.keys.identity) and roles; the admin quorum
(`Admins`) is who may sign the next version of the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = "any"            # a rule's destinations: any address


@dataclass(frozen=True)
class Approver:
    name: str
    public_key: bytes          # 32-byte Ed25519 identity key
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Admins:
    """`threshold` approvers holding `role` must sign a new policy version."""

    threshold: int
    role: str = "admin"


@dataclass(frozen=True)
class AddressBookEntry:
    """A named set of destinations: addresses, and/or descriptors of our own other wallets
    (whose receive and change scripts up to `gap` are accepted)."""

    name: str
    addresses: tuple[str, ...] = ()
    descriptors: tuple[str, ...] = ()
    gap: int = 1000


@dataclass(frozen=True)
class Velocity:
    window_seconds: int        # e.g. 86_400 for "24h"
    max_sat: int


@dataclass(frozen=True)
class FeeCaps:
    max_sat: int | None = None
    max_rate_sat_vb: float | None = None
    max_percent: float | None = None   # of the amount leaving the wallet


@dataclass(frozen=True)
class TimeWindow:
    """UTC days (0 = Monday) and [start, end) minutes of the day when the rule applies."""

    days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    start_minute: int = 0
    end_minute: int = 24 * 60


@dataclass(frozen=True)
class Approvals:
    """`threshold` distinct approvals from approvers holding `group` (a role); among them, one
    holder of each of `require_roles`; the request's initiator counts only if allowed."""

    threshold: int
    group: str
    require_roles: tuple[str, ...] = ()
    initiator_may_approve: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    wallets: tuple[str, ...]                   # wallet registration names, or ("any",)
    destinations: tuple[str, ...] | str        # address-book entry names, or ANY
    approvals: Approvals | None                # None only for action "deny"
    action: str = "allow"                      # "allow" | "deny"
    max_per_tx_sat: int | None = None          # sats leaving the wallet, change excluded
    velocity: tuple[Velocity, ...] = ()
    fee: FeeCaps = field(default_factory=FeeCaps)
    hours: TimeWindow | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    version: int                               # strictly increases; a lower or equal one is a rollback
    expires: str | None                        # ISO 8601 UTC; None: never
    clock_skew_seconds: int                    # allowance when comparing request times with our clock
    admins: Admins
    approvers: tuple[Approver, ...]
    address_book: tuple[AddressBookEntry, ...]
    rules: tuple[Rule, ...]
    network: str                               # "main" | "test" | "signet" | "regtest"

    def approver_by_key(self, public_key: bytes) -> Approver | None:
        return next((a for a in self.approvers if a.public_key == public_key), None)


@dataclass(frozen=True)
class SigningRequest:
    """What the coordinator asks the signers to sign, signed by its requester. `digest()` in
    request.py is what approvers sign."""

    psbt_sha256: str           # hex of SHA-256 over the PSBT's serialized bytes
    wallet: str
    nonce: str                 # 32 hex digits (128 random bits)
    created: str               # ISO 8601 UTC (the coordinator's clock)
    expires: str               # ISO 8601 UTC
    tip_height: int            # the chain tip the coordinator saw
    tip_hash: str
    requester: bytes           # requester's Ed25519 identity key
    memo: str = ""


@dataclass(frozen=True)
class Approval:
    approver: bytes            # Ed25519 identity key
    signature: bytes           # over the request digest, domain "approval/v1"


@dataclass(frozen=True)
class Bundle:
    """A request as it travels: request, requester's signature, approvals, and the PSBT itself."""

    request: SigningRequest
    requester_signature: bytes  # over the request digest, domain "request/v1"
    approvals: tuple[Approval, ...]
    psbt: bytes


@dataclass(frozen=True)
class Check:
    """One line of an evaluation: what was checked, pass or fail, and the numbers behind it,
    e.g. Check("velocity 24h", False, "1.2 BTC signed + 0.5 requested > 1.5 BTC limit")."""

    name: str
    passed: bool
    detail: str
    rule: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "rule": self.rule}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None           # the rule that decided, None when none matched
    checks: tuple[Check, ...]
    amount_sat: int            # sats leaving the wallet (change excluded)

    @property
    def failures(self) -> tuple[Check, ...]:
        """Failed checks that count: the request's own and the deciding rule's (or, when no rule
        matched, every rule's — each says why it did not match)."""
        return tuple(c for c in self.checks if not c.passed
                     and (c.rule is None or self.rule is None or c.rule == self.rule))

    @property
    def passed_over(self) -> tuple[Check, ...]:
        """Failed checks of the rules before the deciding one: why each did not match (e.g. its
        velocity limit was reached, so the request fell to a stricter rule)."""
        if self.rule is None:
            return ()
        return tuple(c for c in self.checks if not c.passed and c.rule is not None and c.rule != self.rule)

    def to_json(self) -> dict:
        return {"allowed": self.allowed, "rule": self.rule, "amount_sat": self.amount_sat,
                "checks": [c.to_json() for c in self.checks]}
