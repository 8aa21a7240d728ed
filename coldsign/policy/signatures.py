"""The admins' signatures over a policy, and whether they make a quorum (pure).

An admin signs the policy's 32-byte digest (`coldsign.policy.document.policy_digest`) with the
Ed25519 identity key under domain "policy/v1". A signature travels as a small JSON file:
{"format": "coldsign-policy-signature", "version": 1, "policy_digest", "policy_version", "signer",
"signature"} (hex), read strictly (`PolicySignature.parse`).

`check_quorum` weighs signatures against an *authority*: the admins of the installed policy (a new
version, a rotation) or, for the first install, of the policy itself. A signature counts when it is
over this very digest and version, verifies, is by a key the authority names holding the admin
role, and is that admin's first; every other one is reported with the reason it does not count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from coldsign.errors import BadInput
from coldsign.policy.document import policy_digest
from coldsign.policy.model import Approver, Policy

SIGNATURE_FORMAT = "coldsign-policy-signature"
SIGNATURE_VERSION = 1
DOMAIN = "policy/v1"
SIGNATURE_MAX_BYTES = 4 * 1024    # a signature file is ~400 bytes


def _bad(where: str | None, message: str) -> BadInput:
    return BadInput(message, where=where, code="policy-signature",
                    hint="check that this is a file written by `coldsign policy approve-doc`")


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
        if len(data) > SIGNATURE_MAX_BYTES:
            raise _bad(where, f"the signature file is larger than the limit of {SIGNATURE_MAX_BYTES} bytes")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _bad(where, "the signature file is not JSON") from None
        return cls.from_json(doc, where=where)

    @classmethod
    def from_json(cls, doc: object, *, where: str | None = None) -> "PolicySignature":
        """A signature document already decoded (a file's JSON, or one entry of installed.json
        without its "file" name), strictly: BadInput naming the field."""
        wanted = {"format", "version", "policy_digest", "policy_version", "signer", "signature"}
        if not isinstance(doc, dict) or set(doc) != wanted:
            raise _bad(where, f"the signature file must hold exactly the fields {', '.join(sorted(wanted))}")
        if doc["format"] != SIGNATURE_FORMAT or doc["version"] != SIGNATURE_VERSION:
            raise _bad(where, f'not a "{SIGNATURE_FORMAT}" version {SIGNATURE_VERSION} file')
        if isinstance(doc["policy_version"], bool) or not isinstance(doc["policy_version"], int):
            raise _bad(where, "policy_version must be a whole number")
        values = {}
        for name, size in (("policy_digest", 32), ("signer", 32), ("signature", 64)):
            v = doc[name]
            if not isinstance(v, str) or not re.fullmatch(rf"[0-9a-f]{{{2 * size}}}", v):
                raise _bad(where, f"{name} must be {2 * size} lower-case hex digits")
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
