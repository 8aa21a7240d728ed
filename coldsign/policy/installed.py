"""The policy installed on this signer: the home-folder files, and installing a new version.

An adapter at the edge (file I/O): `<home>/policy/installed.toml` holds the exact text,
`installed.json` the record {"digest", "version", "name", "installed", "signatures", "previous",
"archive", "ledger_id"}, `archive/v<version>-<digest prefix>.toml` every version ever installed.

A new policy installs only when `admins.threshold` distinct approvers holding `admins.role` *in the
currently installed policy* signed its digest (`coldsign.policy.signatures.check_quorum`), and its
version is higher (else Refused "policy-rollback"). So keys rotate by a new version naming the new
keys, signed by the old quorum. The first install (nothing installed) is the key ceremony: it needs
`first=True` and a quorum named in the policy itself.

The record binds the policy to the signer's ledger: "ledger_id" is the id of `<home>/ledger.sqlite`
at install time (`coldsign.policy.ledger.ledger_id_for_install`, which creates the ledger when there
is none). Signing under the policy then refuses a ledger that is missing or another one
(`coldsign.policy.ledger.open_for_policy`) until the admins install a new version: that install
records the new ledger's id, a deliberate, signed reset.

Writes go archive copy -> record -> text, each atomic; the record is the commit point, and a crash
between record and text is healed on reading from the archive copy the record names. The ledger is
created (when missing) after every check passed and before the record: a refused install writes
nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from coldsign.errors import Refused, VerificationFailed
from coldsign.limits import LIMITS
from coldsign.policy.document import is_expired, parse_policy, policy_digest
from coldsign.policy.model import Policy
from coldsign.policy.signatures import PolicySignature, QuorumReport, check_quorum

RECORD_MAX_BYTES = 1024 * 1024    # installed.json: the record and its admins' signatures


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
        text = read_limited(path, LIMITS.policy_file_max_bytes, what="installed policy")
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
    ledger_id: str               # the signer's ledger this policy is bound to

    def to_json(self) -> dict:
        prev = None if self.previous is None else {"name": self.previous.policy.name,
                                                   "version": self.previous.policy.version,
                                                   "digest": self.previous.digest.hex()}
        return {"installed": True, "name": self.policy.name, "version": self.policy.version,
                "digest": self.digest.hex(), "network": self.policy.network, "expires": self.policy.expires,
                "first": self.previous is None, "previous": prev, "installed_at": self.installed_at,
                "ledger_id": self.ledger_id, "quorum": self.quorum.to_json()}


def install(home: Path, text: bytes, signatures: Sequence[tuple[str, PolicySignature]], *, first: bool,
            now: datetime, where: str | None = None) -> InstallResult:
    """Install the policy in `text` if the quorum of the installed policy (or, with `first` and
    nothing installed, of the policy itself) signed it and its version is higher. Refused otherwise,
    with nothing written."""
    from coldsign.policy.ledger import ledger_id_for_install
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
    # NOTE: bound to the ledger as it is now (a new, empty one when it was lost): from here on the
    # signer refuses to sign with any other ledger until the admins install the next version.
    ledger_id = ledger_id_for_install(home)
    folder = policy_folder(home)
    archive = f"archive/v{policy.version}-{digest.hex()[:16]}.toml"
    record = {"digest": digest.hex(), "version": policy.version, "name": policy.name, "installed": installed_at,
              "signatures": [dict(sig.to_json(), file=source) for (source, sig), c
                             in zip(signatures, report.checks) if c.counts],
              "previous": None if current is None else {"digest": current.digest.hex(),
                                                        "version": current.policy.version},
              "archive": archive, "ledger_id": ledger_id}
    atomic_write(folder / archive, text, mode=0o644)
    atomic_write(folder / "installed.json", json.dumps(record, indent=2) + "\n")   # the commit point
    atomic_write(folder / "installed.toml", text)
    return InstallResult(policy=policy, digest=digest, previous=current, quorum=report, installed_at=installed_at,
                         ledger_id=ledger_id)
