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

Reading trusts none of these files (`load_installed`): the text must match the recorded digest,
and the signatures kept in the record must still make the admin quorum of the policy that authorised
it (the previous version, read from the archive, or the policy itself for a first install). So
swapping installed.toml, or installed.json with self-made signatures, or deleting the record, is
VerificationFailed (exit 5: "policy-tampered", "policy-record-missing"), and signing refuses.

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

from coldsign.errors import ColdsignError, Refused, VerificationFailed
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


ARCHIVE_NAME = re.compile(r"archive/v(\d+)-([0-9a-f]{16})\.toml")


def _tampered(message: str, where: Path, *, code: str = "policy-tampered", details: list[dict] | None = None,
              hint: str = "someone changed the policy folder: restore it from the signer's backup, or install "
                          "the signed policy again in a fresh home") -> VerificationFailed:
    return VerificationFailed(message, where=str(where), code=code, hint=hint, details=details)


def _archived_versions(folder: Path) -> list[tuple[int, str]]:
    """(version, file name) of each archive copy, by the names install gives them."""
    archive = folder / "archive"
    if not archive.is_dir():
        return []
    found = []
    for path in archive.iterdir():
        m = ARCHIVE_NAME.fullmatch(f"archive/{path.name}")
        if m:
            found.append((int(m.group(1)), path.name))
    return sorted(found)


def _read_record(path: Path) -> dict:
    """installed.json with the fields the checks need, each of the right shape (else policy-tampered)."""
    from coldsign.store import read_limited

    def damaged(what: str) -> VerificationFailed:
        return _tampered(f"the installed policy record is damaged: {what}", path)

    try:
        record = json.loads(read_limited(path, RECORD_MAX_BYTES, what="installed policy record"))
    except (ValueError, UnicodeDecodeError):
        raise damaged("not JSON") from None
    if not isinstance(record, dict):
        raise damaged("not a JSON object")

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def digest_hex(value) -> bool:
        return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None

    if not digest_hex(record.get("digest")):
        raise damaged('"digest" is not 64 lower-case hex digits')
    if not whole(record.get("version")):
        raise damaged('"version" is not a whole number')
    previous = record.get("previous", "missing")
    if previous is not None and not (isinstance(previous, dict) and digest_hex(previous.get("digest"))
                                     and whole(previous.get("version"))):
        raise damaged('"previous" is neither null nor {"digest", "version"}')
    if not isinstance(record.get("signatures"), list):
        raise damaged('"signatures" is not a list')
    if not (isinstance(record.get("archive"), str) and ARCHIVE_NAME.fullmatch(record["archive"])):
        raise damaged('"archive" is not an archive/v<version>-<digest prefix>.toml name')
    return record


def _policy_at(path: Path, digest: bytes) -> Policy | None:
    """The policy in `path` when the file is there, parses, and has `digest`; else None."""
    from coldsign.errors import BadInput
    from coldsign.store import read_limited

    if not path.is_file():
        return None
    try:
        policy = parse_policy(read_limited(path, LIMITS.policy_file_max_bytes, what="installed policy"),
                              where=str(path))
    except BadInput:
        return None
    return policy if policy_digest(policy) == digest else None


def _authority(folder: Path, policy: Policy, record: dict, record_path: Path) -> Policy | None:
    """Whose admins had to sign the installed policy: the previous version (from the archive) the
    record names, or None for the first install (the policy itself)."""
    previous = record["previous"]
    if previous is None:
        # A first install cannot come after other versions: a record rewritten as "first" so that the
        # policy's own (new) keys authorise it is caught by the older copies the archive still holds.
        own = record["archive"].removeprefix("archive/")
        earlier = [name for version, name in _archived_versions(folder)
                   if version <= policy.version and name != own]      # a torn next install may leave a later one
        if earlier:
            raise _tampered(f"the record says v{policy.version} was the first policy installed, but the archive "
                            f"holds other versions up to it ({', '.join(earlier)})", record_path)
        return None
    name = f"archive/v{previous['version']}-{previous['digest'][:16]}.toml"
    authority = _policy_at(folder / name, bytes.fromhex(previous["digest"]))
    if authority is None:
        raise _tampered(f"the previous version the record names (v{previous['version']}, digest "
                        f"{previous['digest'][:16]}…) is not in the archive as {name}, so nobody can tell "
                        f"whose admins authorised the installed policy", folder / name)
    if authority.version != previous["version"] or authority.version >= policy.version \
            or authority.network != policy.network:
        raise _tampered(f"the previous version in the archive (v{authority.version}, {authority.network}) cannot "
                        f"have authorised the installed v{policy.version} ({policy.network})", folder / name)
    return authority


def _check_signatures(policy: Policy, authority: Policy | None, record: dict, record_path: Path) -> None:
    """The signatures kept in the record must still make the authority's admin quorum over this text."""
    signatures = []
    for n, entry in enumerate(record["signatures"], 1):
        source = entry.get("file") if isinstance(entry, dict) else None
        source = source if isinstance(source, str) else f"signature {n}"
        doc = {k: v for k, v in entry.items() if k != "file"} if isinstance(entry, dict) else entry
        try:
            signatures.append((source, PolicySignature.from_json(doc, where=source)))
        except ColdsignError as err:
            raise _tampered(f"signature {n} in the installed policy record is damaged: {err.message}",
                            record_path) from None
    report = check_quorum(policy, signatures, authority)
    if not report.met:
        auth = report.authority
        whose = ("the policy itself (first install)" if authority is None
                 else f'the previous version "{auth.name}" v{auth.version}')
        got = ", ".join(a.name for a in report.signers) or "nobody"
        raise _tampered(f"the signatures recorded for the installed policy do not make the admin quorum that "
                        f'had to authorise it: {auth.admins.threshold} of the approvers holding '
                        f'"{auth.admins.role}" in {whose}; counted: {got}', record_path,
                        details=[{"code": "signature-counts" if c.counts else "signature-ignored",
                                  "message": f"{c.source}: {c.reason or 'counts'}"} for c in report.checks])


def load_installed(home: Path) -> InstalledPolicy | None:
    """The installed policy and its record, or None when none is installed.

    Nothing in the home folder is taken on trust: VerificationFailed (exit 5) when the text does not
    match the digest its record names (and no archive copy does, the torn-install case), when the
    record's signatures do not make the admin quorum of the policy that authorised it (the previous
    version, from the archive, or the policy itself for the first install), when the record names a
    previous version the archive does not hold, or when installed.toml or archived versions are there
    without the record (code "policy-record-missing"). Costs two parses and one quorum check.

    What it cannot catch: someone who can write the home folder replacing *everything* (record,
    text and archive) by a history that starts with a first install of their own. Only a check
    against something outside the folder (the ceremony log, the witnesses' digest) tells that apart.
    """
    folder = policy_folder(home)
    record_path, text_path = folder / "installed.json", folder / "installed.toml"
    if not record_path.exists():
        # install writes archive -> record -> text: the text never exists without the record
        if text_path.exists():
            raise _tampered("installed.toml is there but its record installed.json is missing: the installed "
                            "policy cannot be checked", record_path, code="policy-record-missing")
        archived = [name for _, name in _archived_versions(folder)]
        if archived:
            raise _tampered(f"the archive holds installed policies ({', '.join(archived)}) but the record "
                            f"installed.json is missing", record_path, code="policy-record-missing",
                            hint="if the very first install was interrupted, move policy/archive aside and install "
                                 "again; otherwise restore the policy folder from the signer's backup")
        return None
    record = _read_record(record_path)
    digest = bytes.fromhex(record["digest"])
    policy = _policy_at(text_path, digest)
    if policy is None:
        # Only a torn install (crash after the record, the commit point) leaves installed.toml missing
        # or still the previous version: then the archive copy the record names is the policy.
        previous = record["previous"]
        torn = not text_path.exists() or (previous is not None
                                          and _policy_at(text_path, bytes.fromhex(previous["digest"])) is not None)
        policy = _policy_at(folder / record["archive"], digest) if torn else None
    if policy is None:
        raise _tampered("the installed policy does not match the digest its record names", text_path)
    if policy.version != record["version"]:
        raise _tampered(f"the record says version {record['version']} but the installed policy is version "
                        f"{policy.version}", record_path)
    _check_signatures(policy, _authority(folder, policy, record, record_path), record, record_path)
    return InstalledPolicy(policy=policy, digest=digest, record=record)


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
