"""The ceremony-log recorder of one command: buffer the events, append them signed once the key is known.

A signing command learns what to log (PSBT received, review shown, policy decision, ...) before it
has the custodian's identity key: the key comes from the seed, and the seed is read as late as
possible (after the review and the policy said yes). So `CeremonySession` keeps the events of one
command in order and, once the seed is read, `flush(key)` appends them to the home folder's log
(`coldsign.ceremony.log.CeremonyLog`), each signed by the identity key.

The log is *active* in a home folder once ``coldsign log open`` wrote its first entry, i.e. when
``<home>/ceremony/log.jsonl`` exists; `CeremonySession.active_in(home)` is None otherwise, and a
command then logs nothing and behaves as it always did.

The helpers below turn the signer's result objects into payloads (`coldsign.ceremony.events`):

- `review_digest(review)`: SHA-256 of the canonical JSON of ``review.to_json()``, the very document
  ``coldsign psbt inspect --json`` prints, so an auditor can recompute the "review shown" digest;
- `produced_outputs(review, labels)`: every output in order, change included, as (address, amount,
  change, label); an output without an address (OP_RETURN and other non-standard scripts) is
  ``script:<hex>``; `labels` by output index (the policy's address-book names);
- `refusal_rule(err)`: the rule a Refused error names: its code and the codes of its details
  ("refused: high-fee", "policy-refused: approvals");
- `log_text(text)`: free text made safe for a payload: at most TEXT_MAX_CHARS, and text that the
  payload secret filter would take for a mnemonic (twelve short lower-case words in a row) is
  replaced by its SHA-256, so logging a harmless message can never make a command fail.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from coldsign.ceremony import events
from coldsign.ceremony.log import CeremonyLog, Entry, canonical_json
from coldsign.errors import BadInput, Refused

if TYPE_CHECKING:
    from coldsign.errors import ColdsignError
    from coldsign.keys.identity import IdentityKey

IDENTITY_INDEX = 0          # the custodian's identity key that signs the log (the roster's key)


class CeremonySession:
    """The events one command logs, in order, waiting for the identity key that signs them."""

    def __init__(self, log: CeremonyLog) -> None:
        self.log = log
        self._pending: list[tuple[str, dict]] = []

    @classmethod
    def active_in(cls, home: Path | str) -> "CeremonySession | None":
        """A session on `home`'s log when the log is active (``log open`` wrote it), else None."""
        log = CeremonyLog(home)
        return cls(log) if log.path.exists() else None

    @property
    def pending(self) -> tuple[tuple[str, dict], ...]:
        return tuple(self._pending)

    def record(self, event: str, payload: dict) -> None:
        """Buffer one event; its payload is checked now, so a bad one fails before any key is read."""
        self._pending.append((event, events.check_payload(event, payload)))

    def record_refusal(self, err: "ColdsignError") -> None:
        self.record(events.REFUSAL, events.refusal(log_text(refusal_rule(err)), log_text(err.message)))

    def flush(self, key: "IdentityKey") -> list[Entry]:
        """Append every buffered event, signed by `key`, in order; the appended entries.

        Each append is on disk (fsync'd) before the next; an event appended is dropped from the
        buffer at once, so a failure part-way never appends an event twice."""
        appended = []
        while self._pending:
            event, payload = self._pending[0]
            appended.append(self.log.append(event, payload, key))
            self._pending.pop(0)
        return appended


def identity_key(seed, log: CeremonyLog | None = None) -> "IdentityKey":
    """The identity key that signs the log (SLIP-10 Ed25519 only; no Bitcoin key is derived): the
    one of `seed` that opened `log` — whichever identity index the custodian rotated to, up to
    MAX_IDENTITY_SEARCH — else, for a new log, index IDENTITY_INDEX. A seed that holds no key of the
    log's owner is refused: one log, one custodian (the auditor reports any other key as wrong-actor)."""
    from coldsign.keys.identity import IdentityKey, fingerprint_of

    owner = _owner_key(log) if log is not None else None
    if owner is None:
        return IdentityKey.from_seed(seed, IDENTITY_INDEX)
    for index in range(MAX_IDENTITY_SEARCH):
        key = IdentityKey.from_seed(seed, index)
        if key.public_key == owner:
            return key
    raise Refused(f"this seed holds no identity key of the custodian who keeps this ceremony log "
                  f"({fingerprint_of(owner)})", where=str(log.path), code="log-owner",
                  hint="use that custodian's keystore; each signer's log is kept by one custodian")


MAX_IDENTITY_SEARCH = 16    # identity indexes tried when finding the key that opened a log


def _owner_key(log: CeremonyLog) -> bytes | None:
    contents = log.read()
    return log_owner(contents.lines[0]) if contents.lines else None


def log_owner(first_line: bytes) -> bytes:
    """The public key of the custodian who opened the log: the first entry's actor."""
    from coldsign.ceremony.log import parse_entry

    return parse_entry(first_line).actor_key


def review_digest(review) -> str:
    """Hex SHA-256 of the canonical JSON of the review (the `psbt inspect --json` document)."""
    return hashlib.sha256(canonical_json(review.to_json())).hexdigest()


def produced_outputs(review, labels: dict[int, str] | None = None) -> list[tuple[str, int, bool, str | None]]:
    labels = labels or {}
    return [(o.address or f"script:{o.script_pubkey.hex()}", o.amount_sat, o.change, labels.get(o.index))
            for o in review.outputs]


def refusal_rule(err: "ColdsignError") -> str:
    codes = [d["code"] for d in err.details if isinstance(d, dict) and isinstance(d.get("code"), str)]
    unique = list(dict.fromkeys(codes))
    return f"{err.code}: {', '.join(unique)}" if unique else err.code


def log_text(text: str) -> str:
    """`text` cut to TEXT_MAX_CHARS; its digest instead when the secret filter would refuse it."""
    text = (text or "-")[:events.TEXT_MAX_CHARS]
    text = text.encode("utf-8", "replace").decode("utf-8")   # a lone surrogate (an undecodable file name): "?"
    try:
        events.check_payload(events.REFUSAL, {"rule": "-", "message": text})
    except BadInput as err:
        if err.code != "log-secret":
            raise
        return f"(text withheld: it looks like words of a mnemonic; sha256 {hashlib.sha256(text.encode()).hexdigest()})"
    return text


def policy_payloads(decision, bundle, policy, digest: bytes | None = None) -> list[tuple[str, dict]]:
    """(approvals-checked, policy-decision) payloads of a policy evaluation of `bundle` under `policy`.

    approvals-checked: ok when the deciding rule's approval checks (approvals, required roles) all
    passed; required: that rule's threshold (0 when no rule decided); approvers: the fingerprints of
    the approvals whose signatures verify; request_sha256: the request digest approvers sign."""
    from coldsign.keys.identity import fingerprint_of
    from coldsign.policy.request import approval_valid, request_digest

    rule = next((r for r in policy.rules if r.name == decision.rule), None)
    approval_checks = [c for c in decision.checks if c.rule is not None and c.rule == decision.rule
                       and (c.name == "approvals" or c.name.startswith("role "))]
    ok = bool(approval_checks) and all(c.passed for c in approval_checks)
    required = rule.approvals.threshold if rule is not None and rule.approvals is not None else 0
    approvers = list(dict.fromkeys(fingerprint_of(a.approver) for a in bundle.approvals
                                   if approval_valid(bundle.request, a)))
    checks = [(log_text(c.name if c.rule is None else f"{c.rule}: {c.name}"), c.passed, log_text(c.detail))
              for c in decision.checks]
    return [(events.APPROVALS_CHECKED, events.approvals_checked(ok, required, approvers,
                                                                request_digest(bundle.request).hex())),
            (events.POLICY_DECISION, events.policy_decision(
                decision.allowed, checks, policy_sha256=digest.hex() if digest is not None else None,
                version=policy.version, name=log_text(policy.name)))]
