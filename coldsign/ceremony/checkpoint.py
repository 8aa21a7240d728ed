"""Checkpoints of the ceremony log's Merkle tree, witness co-signatures, and the export document.

Checkpoint text (C2SP tlog-checkpoint style, short enough for the paper ceremony record)::

    coldsign.ceremony/3f2a-09bc-71de-4c05      <- origin: the log's signer identity
    42                                          <- tree size (entries)
    qvq0r0h1…=                                  <- base64 of the 32-byte root hash
                                                <- blank line
    — 3f2a-09bc-71de-4c05 AbCd…                 <- signature lines, one per signer
    — 77e1-5a0c-9d3b-0a42 EfGh…                 <- a witness (another custodian)

The signed *body* is the first three lines with their newlines. A signature line is an em dash
(U+2014), a space, the signer's name (its identity fingerprint), a space, and base64 of the 4-byte
key id (the first 4 bytes of SHA-256 of the public key) followed by the 64-byte Ed25519 signature
over the body under domain ``checkpoint/v1`` (`coldsign.keys.identity`). A witness adds its line
after checking, if it can, that the new checkpoint is consistent with an older one it holds.

`verify_checkpoint(cp, roster_keys)` returns the names that signed validly: a line counts when its
key id matches a roster key, the name is that key's fingerprint, and the signature verifies. Lines
by unknown keys are ignored (as C2SP notes do), so a checkpoint can carry signatures from others.
Who counts for a log: the origin names its owner (`owner_of`); a checkpoint without the owner's
signature is no checkpoint of that log, however many witnesses signed it, and an entry signed by
anyone but the owner does not belong in it (``wrong-actor``).

Export document (``coldsign log export``)::

    {"format": "coldsign-log-export", "version": 1, "origin", "entries": [lines as strings],
     "from_size", "to_size", "consistency_proof": [hex], "checkpoint": "<text>",
     "left_edge": [hex], "prev_hash": "<hex>"}

``entries`` are lines from_size..to_size-1; ``consistency_proof`` goes from the tree of from_size to
the checkpoint's tree of to_size. Two fields extend the brief: ``left_edge``, the perfect-subtree
roots of the old tree (≤ log2 n hashes), lets the auditor recompute the new root from the new
entries alone; ``prev_hash`` is the hash of line from_size-1, which the first new entry must chain
to (an auditor holding the previous export checks it against that export's last line).

The auditor reads an export written as `export_bytes` writes it in parts: the document around the
entries (`outline_export`), then the entries range by range (`read_export_entries`), in the worker
processes that check them; any other spelling is parsed whole by `parse_export`.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, replace
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Iterable, Sequence

from coldsign.ceremony import merkle
from coldsign.ceremony.log import ZERO_HASH, Problem, actor_of, verify_entries
from coldsign.errors import BadInput, Refused
from coldsign.keys.identity import FINGERPRINT_PATTERN, fingerprint_of, verify

if TYPE_CHECKING:
    from coldsign.keys.identity import IdentityKey

CHECKPOINT_DOMAIN = "checkpoint/v1"
ORIGIN_PREFIX = "coldsign.ceremony/"
SIGNATURE_PREFIX = "\u2014 "          # em dash + space, as C2SP signed notes write it
KEY_ID_BYTES = 4
CHECKPOINT_MAX_CHARS = 16_384
CHECKPOINT_MAX_SIGNATURES = 100
EXPORT_BATCH_BYTES = 1024 * 1024   # an export's entries are read and checked this many bytes at a time
EXPORT_FORMAT = "coldsign-log-export"
EXPORT_VERSION = 1
# the export document's fields, in the order `build_export` writes them (the order its bytes have)
EXPORT_FIELDS = ("format", "version", "origin", "entries", "from_size", "to_size", "consistency_proof",
                 "checkpoint", "left_edge", "prev_hash")
_ORIGIN = re.compile(r"[\x21-\x7e]{1,200}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def key_id(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def origin_for(fingerprint: str) -> str:
    return ORIGIN_PREFIX + fingerprint


def owner_of(origin: str) -> str | None:
    """The identity fingerprint an origin names (``coldsign.ceremony/<fingerprint>``): the log's
    owner, whose signature a checkpoint needs and who alone writes its entries. None otherwise."""
    prefix, _, fingerprint = origin.partition("/")
    if prefix + "/" != ORIGIN_PREFIX or not FINGERPRINT_PATTERN.fullmatch(fingerprint):
        return None
    return fingerprint


@dataclass(frozen=True)
class CheckpointSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signatures: tuple[CheckpointSignature, ...] = ()

    @property
    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @property
    def text(self) -> str:
        return self.body + "\n" + "".join(s.line() for s in self.signatures)

    def to_json(self) -> dict:
        return {"origin": self.origin, "size": self.size, "root": self.root.hex(),
                "signers": [s.name for s in self.signatures], "text": self.text}


def sign_checkpoint(origin: str, size: int, root: bytes, key: "IdentityKey") -> Checkpoint:
    """A new checkpoint of the tree (size, root), signed by `key` under the name of its fingerprint."""
    cp = Checkpoint(origin, size, root)
    _check_fields(cp)
    return cosign(cp, key)


def cosign(cp: Checkpoint, key: "IdentityKey") -> Checkpoint:
    """`cp` with `key`'s signature added (a witness). Refused if that key already signed it."""
    kid = key_id(key.public_key)
    if any(s.key_id == kid and s.name == key.fingerprint for s in cp.signatures):
        raise Refused(f"identity {key.fingerprint} has already signed this checkpoint", code="checkpoint-signed")
    signature = key.sign(CHECKPOINT_DOMAIN, cp.body.encode())
    return replace(cp, signatures=cp.signatures + (CheckpointSignature(key.fingerprint, kid, signature),))


def _check_fields(cp: Checkpoint) -> None:
    if not _ORIGIN.fullmatch(cp.origin):
        raise BadInput("a checkpoint origin is printable ASCII without spaces", code="checkpoint")
    if isinstance(cp.size, bool) or not isinstance(cp.size, int) or not 0 <= cp.size < 10**19:
        raise BadInput("a checkpoint size is a whole number", code="checkpoint")
    if len(cp.root) != merkle.HASH_BYTES:
        raise BadInput("a checkpoint root is 32 bytes", code="checkpoint")


def parse_checkpoint(text: str | bytes, *, where: str | None = None) -> Checkpoint:
    """The checkpoint in `text`, strictly (BadInput naming the line otherwise)."""
    def bad(message: str) -> BadInput:
        return BadInput(f"not a coldsign checkpoint: {message}", where=where, code="checkpoint",
                        hint="give the checkpoint text exactly as `coldsign log checkpoint` wrote it")

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("the text is not UTF-8") from None
    if len(text) > CHECKPOINT_MAX_CHARS:
        raise bad(f"longer than {CHECKPOINT_MAX_CHARS} characters")
    body, sep, rest = text.partition("\n\n")
    if not sep:
        raise bad("no blank line between the body and the signatures")
    lines = body.split("\n")
    if len(lines) != 3:
        raise bad(f"the body has {len(lines)} lines, not 3 (origin, size, root)")
    origin, size_text, root_text = lines
    if not _ORIGIN.fullmatch(origin):
        raise bad("line 1 (origin) is empty or holds spaces or non-ASCII characters")
    if not _SIZE.fullmatch(size_text):
        raise bad("line 2 (size) is not a whole number in decimal")
    root = _b64(root_text)
    if root is None or len(root) != merkle.HASH_BYTES:
        raise bad("line 3 (root) is not base64 of 32 bytes")
    if not rest.endswith("\n"):
        raise bad("the last signature line does not end with a newline")
    signatures = []
    for number, line in enumerate(rest[:-1].split("\n"), 5):
        if not line.startswith(SIGNATURE_PREFIX):
            raise bad(f"line {number} is not a signature line ('— name base64')")
        parts = line[len(SIGNATURE_PREFIX):].split(" ")
        blob = _b64(parts[1]) if len(parts) == 2 else None
        if not parts[0] or blob is None or len(blob) != KEY_ID_BYTES + 64:
            raise bad(f"line {number} is not '— name base64(key id + signature)'")
        signatures.append(CheckpointSignature(parts[0], blob[:KEY_ID_BYTES], blob[KEY_ID_BYTES:]))
    if not signatures or len(signatures) > CHECKPOINT_MAX_SIGNATURES:
        raise bad(f"it needs 1 to {CHECKPOINT_MAX_SIGNATURES} signature lines")
    return Checkpoint(origin, int(size_text), root, tuple(signatures))


def _b64(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return data if base64.b64encode(data).decode() == text else None


def verify_checkpoint(cp: Checkpoint, roster_keys: Iterable[bytes]) -> list[str]:
    """The names (identity fingerprints) whose signature lines verify against a roster key, each
    once (a repeated line is one signer, not two)."""
    by_id: dict[bytes, list[bytes]] = {}
    for key in roster_keys:
        by_id.setdefault(key_id(bytes(key)), []).append(bytes(key))
    body = cp.body.encode()
    names = []
    for sig in cp.signatures:
        for key in by_id.get(sig.key_id, []):
            if (sig.name not in names and FINGERPRINT_PATTERN.fullmatch(sig.name) and sig.name == fingerprint_of(key)
                    and verify(key, CHECKPOINT_DOMAIN, body, sig.signature)):
                names.append(sig.name)
                break
    return names


def unverified_signature_problems(cp: Checkpoint, signers: Iterable[str], what: str = "checkpoint") -> list[Problem]:
    """``bad-signature`` for each signature line that is not among the verified `signers` (the
    fingerprints `verify_checkpoint` returned): a witness's line altered, or by a key not on the
    roster. A line that does not verify is never passed over in silence (none when nothing
    verified: that is one problem, said by the caller)."""
    verified = set(signers)
    if not verified:            # "no signature verifies" says it already
        return []
    return [Problem(None, "bad-signature", f"the {what}'s signature line by {sig.name[:80]} does not verify "
                    "against the roster (altered, or a key not on the roster)")
            for sig in cp.signatures if sig.name not in verified]


def owner_signature_problems(cp: Checkpoint, signers: Iterable[str]) -> list[Problem]:
    """``bad-signature`` unless the checkpoint's valid `signers` (fingerprints, `verify_checkpoint`)
    include the log's owner, the identity its origin names: witnesses alone make no checkpoint."""
    owner = owner_of(cp.origin)
    signers = set(signers)
    if not signers:
        return [Problem(None, "bad-signature", "no signature on the checkpoint verifies against the roster")]
    if owner is None:
        # NOTE: without this, a witness could sign a checkpoint alone by giving it an origin that
        # names no identity (the owner check would have nothing to compare with).
        return [Problem(None, "bad-signature", f"the checkpoint's origin {cp.origin[:80]} does not name the "
                        "log's identity (coldsign.ceremony/<fingerprint>)")]
    if owner not in signers:
        return [Problem(None, "bad-signature", f"the log's own key ({cp.origin}) did not sign the "
                        "checkpoint; only witnesses did")]
    return []


# --- export --------------------------------------------------------------------------------------

def build_export(lines: Sequence[bytes], from_size: int, checkpoint: Checkpoint) -> dict:
    """The export document of `lines` (the whole log, `checkpoint.size` lines) from `from_size` on."""
    if checkpoint.size != len(lines):
        raise Refused(f"the checkpoint covers {checkpoint.size} entries but the log has {len(lines)}",
                      code="checkpoint-stale", hint="make a new checkpoint first (coldsign log checkpoint)")
    if not 0 <= from_size <= len(lines):
        raise BadInput(f"cannot export from entry {from_size} of a log of {len(lines)}", code="log-export")
    hashes = [merkle.leaf_hash(line) for line in lines]
    if merkle.root(hashes) != checkpoint.root:
        raise Refused("the checkpoint's root is not the root of this log", code="checkpoint-mismatch")
    left = merkle.MerkleAccumulator().extend(hashes[:from_size])
    prev = hashlib.sha256(lines[from_size - 1]).hexdigest() if from_size else ZERO_HASH
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "origin": checkpoint.origin,
            "entries": [line.decode("utf-8") for line in lines[from_size:]],
            "from_size": from_size, "to_size": len(lines),
            "consistency_proof": [h.hex() for h in merkle.consistency_proof(hashes, from_size)],
            "checkpoint": checkpoint.text, "left_edge": [h.hex() for h in left.edge()], "prev_hash": prev}


def export_bytes(doc: dict) -> bytes:
    """The bytes of an export document as `coldsign log export` writes them and the audit requires
    them: compact JSON, one newline, the fields in `build_export`'s order (re-ordered is re-spelled)."""
    ordered = {name: doc[name] for name in EXPORT_FIELDS if name in doc}
    return (json.dumps(ordered, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class ExportCheck:
    """What `verify_export` found: problems (empty: all good), the checkpoint, its valid signers."""

    problems: list[Problem]
    checkpoint: Checkpoint | None
    signers: list[str]
    from_size: int
    to_size: int

    @property
    def ok(self) -> bool:
        return not self.problems


_EXPORT_START = re.compile(rb'\s*\{\s*"format"\s*:')


def looks_like_export(data: bytes) -> bool:
    """Whether `data` is an export document rather than a raw log: an export starts with its
    "format" field (`build_export` writes it first), a log line with "actor". Only the start is
    looked at, so a large log is not decoded to find out; `parse_export` checks the rest."""
    return _EXPORT_START.match(data[:256]) is not None


def parse_export(data: bytes | str, *, where: str | None = None) -> dict:
    """The export JSON document, its shape checked (BadInput otherwise); entries are not verified."""
    def bad(message: str) -> BadInput:
        return BadInput(f"not a coldsign log export: {message}", where=where, code="log-export")

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise bad(f"not JSON ({str(err)[:80]})") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise bad(f'"format" is not "{EXPORT_FORMAT}"')
    unknown = [name for name in doc if name not in EXPORT_FIELDS]
    if unknown:
        raise bad(f"unknown field {str(unknown[0])[:40]!r}")
    if doc.get("version") != EXPORT_VERSION:
        raise bad(f"version {doc.get('version')!r} is not supported")
    for name in ("from_size", "to_size"):
        if isinstance(doc.get(name), bool) or not isinstance(doc.get(name), int) or doc[name] < 0:
            raise bad(f'"{name}" is not a whole number')
    for name in ("entries", "consistency_proof", "left_edge"):
        if not isinstance(doc.get(name), list) or not all(isinstance(x, str) for x in doc[name]):
            raise bad(f'"{name}" is not a list of strings')
    for name in ("consistency_proof", "left_edge"):
        if not all(_HEX64.fullmatch(x) for x in doc[name]):
            raise bad(f'"{name}" holds something other than 32-byte hashes in hex')
    if not isinstance(doc.get("prev_hash"), str) or not _HEX64.fullmatch(doc["prev_hash"]):
        raise bad('"prev_hash" is not a hash in hex')
    if not isinstance(doc.get("checkpoint"), str) or not isinstance(doc.get("origin"), str):
        raise bad('"checkpoint" or "origin" is missing')
    return doc


# where the entries array of an export starts and ends: in a document spelled as `export_bytes` spells
# it, each occurs once (the strings around the array cannot hold an unescaped quote)
_ENTRIES_START = b',"entries":['
_ENTRIES_END = b'],"from_size":'


def outline_export(data: bytes) -> tuple[dict, list[tuple[int, int]]] | None:
    """(the export document with its "entries" left empty, the byte ranges of its entries in
    `data`) when `data` outside the entries is exactly what `export_bytes` writes, else None
    (`parse_export` then says what is wrong). Each range spans whole entries, from an opening to a
    closing quote, about EXPORT_BATCH_BYTES long; `read_export_entries` reads one. Only the few
    hundred bytes around the entries are parsed here, so the entries can be read in parallel."""
    start, end = data.find(_ENTRIES_START), data.rfind(_ENTRIES_END)
    if start < 0 or end < start + len(_ENTRIES_START):
        return None
    start += len(_ENTRIES_START)
    outline = data[:start] + data[end:]
    try:
        doc = parse_export(outline)
    except BadInput:
        return None
    if export_bytes(doc) != outline:
        return None
    ranges = []
    while start < end:
        cut = data.find(b'","', start + EXPORT_BATCH_BYTES, end) if start + EXPORT_BATCH_BYTES < end else -1
        stop = end if cut < 0 else cut + 1
        ranges.append((start, stop))
        start = stop + 1
    return doc, ranges


def read_export_entries(data: bytes, span: tuple[int, int]) -> list[bytes] | None:
    """The entries (log lines, UTF-8) in `data[span]`, a range of `outline_export`, if it is exactly
    how `export_bytes` spells them (JSON strings, comma-separated, nothing else); None otherwise."""
    try:
        text = data[span[0]:span[1]].decode("utf-8", "surrogatepass")
        entries = json.loads(f"[{text}]")
    except (ValueError, RecursionError):
        return None
    if not all(isinstance(e, str) for e in entries) or ",".join(map(encode_basestring, entries)) != text:
        return None
    return [e.encode("utf-8", "surrogatepass") for e in entries]


def verify_export(doc: dict, roster_keys: Iterable[bytes], *, previous: Checkpoint | None = None) -> ExportCheck:
    """Every check an auditor runs on an export: the entries (`verify_entries`), the checkpoint's
    signatures (at least one roster key) and root (``bad-root``), and, given the `previous`
    checkpoint the auditor holds, that the log only grew from it (``inconsistent``)."""
    keys = [bytes(k) for k in roster_keys]
    start, end = doc["from_size"], doc["to_size"]
    lines = [e.encode("utf-8", "surrogatepass") for e in doc["entries"]]
    problems = verify_entries(lines, keys, first_seq=start, prev_hash=doc["prev_hash"])
    try:
        cp = parse_checkpoint(doc["checkpoint"])
    except BadInput as err:
        return ExportCheck(problems + [Problem(None, "bad-root", err.message)], None, [], start, end)
    signers = verify_checkpoint(cp, keys)
    owner = owner_of(cp.origin)
    problems += owner_signature_problems(cp, signers)
    bad = {p.index for p in problems}
    for offset, line in enumerate(lines):
        actor = actor_of(line)
        if owner is not None and start + offset not in bad and actor != owner:
            problems.append(Problem(start + offset, "wrong-actor", f"signed by {actor}, not by the log's owner "
                                    f"{owner} that the checkpoint's origin names"))
    if cp.origin != doc["origin"]:
        problems.append(Problem(None, "bad-root", f"the checkpoint's origin {cp.origin} is not the export's"))
    if cp.size != end or end != start + len(lines):
        problems.append(Problem(None, "bad-root", f"the checkpoint covers {cp.size} entries; the export "
                                f"holds entries {start}..{start + len(lines) - 1} (to_size {end})"))
    hashes = [merkle.leaf_hash(line) for line in lines]
    edge: list[bytes] | None = [bytes.fromhex(h) for h in doc["left_edge"]]
    try:
        acc = merkle.MerkleAccumulator.from_edge(start, edge)
    except ValueError as err:
        problems.append(Problem(None, "bad-root", f"left_edge: {err}"))
        acc, edge = None, None
    old_root = acc.root() if acc is not None else None
    if acc is not None and acc.extend(hashes).root() != cp.root:
        problems.append(Problem(None, "bad-root", "the entries do not hash to the checkpoint's root"))
    proof = [bytes.fromhex(h) for h in doc["consistency_proof"]]
    if old_root is not None and not merkle.verify_consistency(start, cp.size, old_root, cp.root, proof):
        problems.append(Problem(None, "inconsistent", f"the consistency proof from size {start} to {cp.size} "
                                "does not verify"))
    if previous is not None:
        problems += _against_previous(previous, start, edge, cp, hashes)
    problems.sort(key=lambda p: (p.index is None, p.index or 0))
    return ExportCheck(problems, cp, signers, start, end)


def _against_previous(previous: Checkpoint, start: int, edge: list[bytes] | None, cp: Checkpoint,
                      hashes: list[bytes]) -> list[Problem]:
    """The export must extend the auditor's `previous` checkpoint: no rewrite, fork or rollback."""
    if previous.origin != cp.origin:
        return [Problem(None, "inconsistent", f"the previous checkpoint is of another log ({previous.origin})")]
    if previous.size > cp.size:
        return [Problem(None, "inconsistent", f"rollback: the previous checkpoint has {previous.size} entries, "
                        f"this one {cp.size}")]
    if previous.size == start:
        if edge is None or merkle.MerkleAccumulator.from_edge(start, edge).root() != previous.root:
            return [Problem(None, "inconsistent", f"fork: the log before entry {start} is not the one the "
                            "previous checkpoint signed")]
        return []
    if previous.size > start and edge is not None:
        acc = merkle.MerkleAccumulator.from_edge(start, edge).extend(hashes[:previous.size - start])
        if acc.root() == previous.root:
            return []
        return [Problem(None, "inconsistent", f"fork: the first {previous.size} entries are not the ones the "
                        "previous checkpoint signed")]
    return [Problem(None, "inconsistent", f"the export starts at entry {start}, after the previous checkpoint's "
                    f"{previous.size}: entries in between are missing")]
