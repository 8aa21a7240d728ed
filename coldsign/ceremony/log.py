"""The ceremony log: signed, hash-chained, append-only entries, one JSON line each.

File: ``<home>/ceremony/log.jsonl``. Each line is one entry in canonical JSON (sorted keys,
separators ``,`` and ``:``, UTF-8, non-ASCII kept as is) ending in ``\\n``::

    {"actor": "<identity fingerprint>", "actor_key": "<hex Ed25519 public key>",
     "clock": "untrusted", "event": "<name>", "payload": {...}, "prev": "<hex SHA-256>",
     "seq": <n>, "sig": "<hex Ed25519 signature>", "time": "YYYY-MM-DDTHH:MM:SSZ"}

- ``seq`` counts from 0 without gaps; ``time`` is the signer's clock (hence ``clock: untrusted``:
  an air-gapped machine's clock proves nothing, order comes from ``seq`` and ``prev``);
- ``prev`` is the SHA-256 of the previous line's bytes without its newline (64 zeros for seq 0),
  so an entry cannot be dropped, reordered or edited without breaking the next one;
- ``sig`` is the actor's identity-key signature (`coldsign.keys.identity`, domain
  ``ceremony-log/v1``) over the canonical JSON of the entry without ``sig``;
- the payload is checked by `coldsign.ceremony.events.check_payload` (secrets never appear).

The Merkle tree of the log (`coldsign.ceremony.merkle`) has one leaf per line (its bytes without
the newline); checkpoints and exports are in `coldsign.ceremony.checkpoint`.

Writing (`CeremonyLog.append`): under an exclusive ``fcntl.flock`` (two processes never
interleave), one ``write`` of line + newline on an ``O_APPEND`` descriptor, then ``fsync``. A crash
can still leave a torn last line (no newline, or not an entry): opening the log for an append
DETECTS it and refuses (exit 4) until `CeremonyLog.repair` (``coldsign log repair``) moves the torn
bytes aside to ``log.jsonl.torn-<n>`` — nothing is ever dropped silently.

Verification (`verify_entries`, `verify_log_bytes`) is pure, for the auditor: each line's
canonical form, ``seq`` without gaps, the ``prev`` chain, the signature, and that the actor key is
on the roster. Problems carry the entry's position in the log and a code: ``not-canonical``,
``seq-gap``, ``broken-chain``, ``unknown-key``, ``bad-signature``, ``torn``. Above VERIFY_BATCH lines,
each line is parsed and its signature checked by two forked worker processes, in batches, which can
also read their batch themselves (`check_read_lines`: an export's entries decoded from the file's
bytes); the order (seq, prev) is checked in the parent from what they return, batch by batch as it
comes: 100,000 entries in about 4.3 s on 2 cores, 4.6 s from an export file's bytes
(benchmarks/audit.py). Threads did worse (10.4 s): parsing holds the GIL, and a verifying thread had
to win the GIL back after every 60 µs signature, so the two waited on each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import re
import sys
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from coldsign.ceremony import merkle
from coldsign.ceremony.events import check_payload
from coldsign.canonical import canonical_json
from coldsign.errors import BadInput, ColdsignError, Refused
from coldsign.keys.identity import FINGERPRINT_PATTERN, fingerprint_of
from coldsign.store import sync_folder

if TYPE_CHECKING:
    from coldsign.keys.identity import IdentityKey

LOG_DOMAIN = "ceremony-log/v1"
ZERO_HASH = "0" * 64
ENTRY_FIELDS = ("actor", "actor_key", "clock", "event", "payload", "prev", "seq", "sig", "time")
# one line. Payloads are digests and short texts, but signatures-produced lists every output of the
# PSBT, and a PSBT may have 10,000 (limits.psbt_max_outputs): ~1 MB with P2WSH/P2TR addresses. The
# entry is written after the ledger claimed the request, so a batch payout must fit, not be refused.
ENTRY_MAX_BYTES = 2 * 1024 * 1024
TAIL_READ_BYTES = 128 * 1024         # how much of the log's end an append reads first
LOG_MAX_BYTES = 2 * 1024 ** 3         # the whole file read for show/export/verify
VERIFY_PROCESSES = 2                 # worker processes checking lines (the machine has 2 cores)
VERIFY_BATCH = 2_000                 # lines per worker task; logs up to this size are checked in-process
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


def line_hash(line: bytes) -> str:
    """The ``prev`` of the next entry: hex SHA-256 of a line's bytes without its newline."""
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    event: str
    actor: str
    actor_key: bytes
    payload: dict
    prev: str
    sig: bytes
    line: bytes            # the exact bytes (no newline): what is hashed, chained and put in the tree
    signed: bytes          # the canonical JSON of the entry without "sig": what the signature covers

    def to_json(self) -> dict:
        return json.loads(self.line)


class EntryProblem(BadInput):
    """A line that is not a well-formed entry (`code` is a Problem code)."""

    code = "not-canonical"


def make_entry(seq: int, prev: str, event: str, payload: dict, key: "IdentityKey", time: datetime) -> bytes:
    """The line (no newline) of a new entry, signed by `key`. Pure: the caller supplies seq/prev/time."""
    check_payload(event, payload)
    stamp = time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"seq": seq, "time": stamp, "clock": "untrusted", "event": event, "actor": key.fingerprint,
           "actor_key": key.public_hex, "payload": payload, "prev": prev}
    doc["sig"] = key.sign(LOG_DOMAIN, canonical_json(doc)).hex()
    line = canonical_json(doc)
    if len(line) > ENTRY_MAX_BYTES:
        raise BadInput(f"the entry is {len(line)} bytes, above the limit of {ENTRY_MAX_BYTES}", code="log-entry")
    return line


def parse_entry(line: bytes | str) -> Entry:
    """The entry on `line` (without newline), strictly: JSON object, exactly the entry fields with
    their types, a valid payload, and the canonical spelling. EntryProblem (BadInput) otherwise."""
    raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
    doc, signed = _checked_fields(raw)
    return Entry(signed=signed, seq=doc["seq"], time=doc["time"], event=doc["event"], actor=doc["actor"],
                 actor_key=bytes.fromhex(doc["actor_key"]), payload=doc["payload"], prev=doc["prev"],
                 sig=bytes.fromhex(doc["sig"]), line=raw)


def _checked_fields(raw: bytes) -> tuple[dict, bytes]:
    """(the entry's fields, the bytes its signature covers) of a line, checked as `parse_entry`
    describes. Verification calls this directly: building a frozen `Entry` costs more than a tenth
    of checking a line."""
    if len(raw) > ENTRY_MAX_BYTES:
        raise EntryProblem(f"the line is {len(raw)} bytes, above the limit of {ENTRY_MAX_BYTES}")
    try:
        # NOTE: no duplicate-key hook needed: json keeps the last of duplicate keys, so a line with
        # one never equals its canonical re-serialization below and is refused there.
        doc = _STRICT.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise EntryProblem(f"the line is not valid JSON ({str(err)[:80]})") from None
    if not isinstance(doc, dict) or sorted(doc) != list(ENTRY_FIELDS):
        raise EntryProblem(f"the line does not have exactly the fields {', '.join(ENTRY_FIELDS)}")
    seq, key, sig = doc["seq"], doc["actor_key"], doc["sig"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise EntryProblem("seq is not a whole number")
    if not isinstance(doc["time"], str) or not _TIME.fullmatch(doc["time"]) or doc["clock"] != "untrusted":
        raise EntryProblem('time is not YYYY-MM-DDTHH:MM:SSZ with clock "untrusted"')
    if not isinstance(key, str) or not _HEX64.fullmatch(key):
        raise EntryProblem("actor_key is not a 32-byte key in lower-case hex")
    if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
        raise EntryProblem("sig is not a 64-byte signature in lower-case hex")
    if not isinstance(doc["prev"], str) or not _HEX64.fullmatch(doc["prev"]):
        raise EntryProblem("prev is not a SHA-256 in lower-case hex")
    if not isinstance(doc["actor"], str) or not FINGERPRINT_PATTERN.fullmatch(doc["actor"]):
        raise EntryProblem("actor is not an identity fingerprint")
    try:
        check_payload(doc["event"] if isinstance(doc["event"], str) else repr(doc["event"]), doc["payload"])
    except BadInput as err:
        raise EntryProblem(err.message) from None
    try:
        canonical = canonical_json(doc)
    except UnicodeEncodeError:              # a lone surrogate somewhere: no UTF-8 spelling at all
        canonical = None
    if canonical != raw:
        raise EntryProblem("the line is not in canonical JSON form (sorted keys, no spaces, UTF-8, "
                           "each field once)")
    cut = raw.rfind(b',"sig":"')            # canonical order: ..."seq":n,"sig":"<hex>","time"...
    return doc, raw[:cut] + raw[cut + 137:]


def _no_float(text):
    raise ValueError(f"number {text} is not a whole number")


# built once: json.loads with non-default options builds a new decoder per call, a tenth of the
# cost of checking a line (coldsign.canonical keeps its encoder the same way)
_STRICT = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


# --- verification (pure, for the auditor) ----------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log: `index` is the entry's position in the log (None: the document)."""

    index: int | None
    code: str
    message: str

    def to_json(self) -> dict:
        return {"index": self.index, "code": self.code, "message": self.message}


def actor_of(line: bytes) -> str:
    """The ``actor`` of a canonical line without parsing it: sorted keys put it first, as
    ``{"actor":"<19-character fingerprint>",…`` (garbage for a line that is not canonical)."""
    return line[10:29].decode("ascii", "replace")


def torn_problem(index: int, tail: bytes) -> Problem:
    """The problem of a log whose last `tail` bytes have no newline (entry `index` half written)."""
    return Problem(index, "torn", f"the log ends in {len(tail)} bytes without a newline (a torn write)")


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """(complete lines without newlines, the bytes after the last newline)."""
    end = data.rfind(b"\n") + 1
    body, tail = data[:end], data[end:]
    return (body[:-1].split(b"\n") if body else []), tail


def verify_entries(lines: Sequence[bytes | str], roster_keys: Iterable[bytes], *, first_seq: int = 0,
                   prev_hash: str = ZERO_HASH) -> list[Problem]:
    """Every problem of these consecutive log lines (no newlines), in log order.

    `lines[0]` is entry `first_seq`, whose ``prev`` must be `prev_hash`; `roster_keys` are the
    identity public keys (32 bytes) allowed to sign. After a problem, checking goes on from what
    the line says (its seq and its hash), so one dropped entry gives one problem, not hundreds."""
    return check_lines(lines, roster_keys, first_seq=first_seq, prev_hash=prev_hash).problems


@dataclass(frozen=True)
class LinesCheck:
    """What `check_lines` found: the problems, and per line its bytes, its Merkle leaf hash and its
    event (None for a line that is not an entry), so an auditor need not hash or parse the lines again."""

    problems: list[Problem]
    lines: list[bytes]
    leaf_hashes: list[bytes]
    events: list[str | None]


# batch number -> the lines of that batch, or None when they cannot be read (see `check_read_lines`)
BatchReader = Callable[[int], "list[bytes] | None"]


def check_lines(lines: Sequence[bytes | str], roster_keys: Iterable[bytes], *, first_seq: int = 0,
                prev_hash: str = ZERO_HASH) -> LinesCheck:
    """`verify_entries` with the per-line leaf hashes and events.

    Each line is checked on its own (parse, canonical form, roster, actor, signature: `_line_facts`),
    by VERIFY_PROCESSES worker processes when there are more than VERIFY_BATCH lines; the order
    (seq and the prev chain) is then checked here, in one pass over the per-line facts."""
    raws = [line.encode("utf-8") if isinstance(line, str) else bytes(line) for line in lines]
    batches = [raws[lo:lo + VERIFY_BATCH] for lo in range(0, len(raws), VERIFY_BATCH)]
    checked = _check(batches.__getitem__, len(batches), roster_keys, first_seq, prev_hash, spans=None)
    assert checked is not None, "a list of lines is always readable"
    return checked


def check_read_lines(read: BatchReader, spans: Sequence[tuple[int, int]], roster_keys: Iterable[bytes], *,
                     first_seq: int = 0, prev_hash: str = ZERO_HASH) -> LinesCheck | None:
    """`check_lines` of lines read in batches by `read(n)`, which runs in the worker process that
    checks batch n (so that reading, e.g. decoding an export's JSON, is spread over the workers too).
    Batch n is read from bytes spans[n] = (start, stop) of some buffer, and its lines are no longer
    than that in all: they come back laid out at the same place in memory shared with the workers.
    None as soon as a batch reads as None."""
    return _check(read, len(spans), roster_keys, first_seq, prev_hash, spans=spans)


def _check(read: BatchReader, batches: int, roster_keys: Iterable[bytes], first_seq: int, prev_hash: str, *,
           spans: Sequence[tuple[int, int]] | None) -> LinesCheck | None:
    keys = frozenset(bytes(k) for k in roster_keys)
    problems: list[Problem] = []
    lines: list[bytes] = []
    leaves: list[bytes] = []
    events: list[str | None] = []
    index, expected_seq, expected_prev = first_seq, first_seq, prev_hash
    with closing(_batch_facts(read, batches, keys, spans)) as results:
        for batch in results:
            if batch is None:
                return None
            lines += batch[0]
            for seq, prev, own_hash, leaf, event, issue in batch[1]:
                leaves.append(leaf)
                events.append(event)
                if seq is None:
                    problems.append(Problem(index, "not-canonical", issue[1]))
                    expected_seq, expected_prev = expected_seq + 1, own_hash
                else:
                    if seq != expected_seq:
                        problems.append(Problem(index, "seq-gap", f"seq is {seq}, expected {expected_seq}"))
                    if prev != expected_prev:
                        problems.append(Problem(index, "broken-chain", "prev is not the hash of the entry before it"))
                    if issue is not None:
                        problems.append(Problem(index, issue[0], issue[1]))
                    expected_seq, expected_prev = seq + 1, own_hash
                index += 1
    return LinesCheck(problems, lines, leaves, events)


# (seq, prev, hash of the line, its Merkle leaf hash, event, (code, message) or None); seq, prev and
# event are None when the line is not an entry at all (code "not-canonical")
LineFacts = tuple


def _line_facts(lines: Sequence[bytes], keys: frozenset[bytes]) -> list[LineFacts]:
    """What each line says and what is wrong with it on its own (pure; run in the workers)."""
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError

    from coldsign.keys.identity import signed_message

    prefix = signed_message(LOG_DOMAIN, b"")
    fingerprints: dict[bytes, str] = {}
    out: list[LineFacts] = []
    for raw in lines:
        own_hash = hashlib.sha256(raw).hexdigest()
        leaf = merkle.leaf_hash(raw)
        try:
            doc, signed = _checked_fields(raw)
        except EntryProblem as err:
            out.append((None, None, own_hash, leaf, None, ("not-canonical", err.message)))
            continue
        key = bytes.fromhex(doc["actor_key"])
        fingerprint = fingerprints.get(key)
        if fingerprint is None:
            fingerprint = fingerprints[key] = fingerprint_of(key)
        issue = None
        if key not in keys:
            issue = ("unknown-key", f"signed by {fingerprint}, a key that is not on the roster")
        elif doc["actor"] != fingerprint:
            issue = ("unknown-key", f"actor {doc['actor']} is not the fingerprint of actor_key")
        else:
            try:
                crypto_sign_open(bytes.fromhex(doc["sig"]) + prefix + signed, key)
            except (BadSignatureError, ValueError):
                issue = ("bad-signature", "the signature does not verify against the actor's key")
        out.append((doc["seq"], doc["prev"], own_hash, leaf, doc["event"], issue))
    return out


@dataclass(frozen=True)
class _Work:
    """What the forked workers share with this process: inherited when they are forked, never pickled."""

    read: BatchReader
    keys: frozenset[bytes]
    spans: Sequence[tuple[int, int]] | None    # lines read by the workers: batch n's are put at spans[n][0]
    out: mmap.mmap | None                      # ... of this memory (None: this process reads them again)
    stop: mmap.mmap                            # one byte; 1: the batches not begun are skipped

    def close(self) -> None:
        self.stop.close()
        if self.out is not None:
            self.out.close()


# NOTE: the workers are forked and find their work in this module global (copy-on-write), so the log
# is never pickled to them; the per-line facts come back through the pool's pipe, and lines they read
# themselves through shared memory (a pipe holds 64 KiB: 60 MB of lines through it cost a quarter of
# a second of CPU). The lock keeps two threads of one process from sharing it. fork is used on Linux only
# (macOS's fork is unsafe with system frameworks loaded); elsewhere, and inside daemonic processes,
# the lines are checked here.
_WORK: _Work | None = None
_WORK_LOCK = threading.Lock()


def _batch_facts(read: BatchReader, batches: int, keys: frozenset[bytes],
                 spans: Sequence[tuple[int, int]] | None) -> Iterator[tuple[list[bytes], list[LineFacts]] | None]:
    """(lines, their facts) of each batch in order as the workers finish them; None for a batch
    that cannot be read (and nothing after it)."""
    if batches <= 1 or not sys.platform.startswith("linux"):
        yield from _checked_here(read, batches, keys)
        return
    import multiprocessing

    global _WORK
    with _WORK_LOCK:
        out = mmap.mmap(-1, max(stop for _start, stop in spans)) if spans else None
        work = _WORK = _Work(read, keys, spans, out, mmap.mmap(-1, 1))
        try:
            try:
                pool = multiprocessing.get_context("fork").Pool(VERIFY_PROCESSES)
            except (OSError, AssertionError, ValueError):       # no fork here (daemonic process, limits)
                yield from _checked_here(read, batches, keys)
                return
            with pool:
                results = pool.imap(_facts_of_batch, range(batches))
                try:
                    for n, result in enumerate(results):
                        if result is None:
                            yield None
                            return
                        lengths, facts = result
                        yield (read(n) if out is None else _lines_at(out, spans[n][0], lengths)), facts
                finally:
                    # NOTE: the pool is terminated only once its workers are idle: a worker killed
                    # while it sends a result leaves the result queue's lock taken, and the pool's
                    # own shutdown then waits for it forever.
                    work.stop[0] = 1
                    _drain(results)
        finally:
            _WORK = None
            work.close()


def _drain(results: Iterator) -> None:
    """Wait for every outstanding batch (skipped ones come back at once); their results, failures
    included, are of no use any more."""
    while True:
        try:
            next(results)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - a batch being thrown away; the first failure is already raised
            continue


def _checked_here(read: BatchReader, batches: int,
                  keys: frozenset[bytes]) -> Iterator[tuple[list[bytes], list[LineFacts]] | None]:
    for n in range(batches):
        lines = read(n)
        if lines is None:
            yield None
            return
        yield lines, _line_facts(lines, keys)


def _facts_of_batch(n: int) -> tuple[list[int] | None, list[LineFacts]] | None:
    """(the lengths of the lines put in shared memory, or None; the facts) of batch n (in a worker)."""
    work = _WORK
    assert work is not None, "a verification worker started without its work"
    lines = None if work.stop[0] else work.read(n)
    if lines is None:
        work.stop[0] = 1                            # one batch unreadable: the check's answer is None
        return None
    facts = _line_facts(lines, work.keys)
    if work.out is None or work.spans is None:
        return None, facts
    start, stop = work.spans[n]
    laid = b"".join(lines)
    if len(laid) > stop - start:
        raise ValueError(f"batch {n}: {len(laid)} bytes of lines read from {stop - start} bytes")
    work.out[start:start + len(laid)] = laid
    return [len(line) for line in lines], facts


def _lines_at(out: mmap.mmap, at: int, lengths: list[int]) -> list[bytes]:
    lines = []
    for size in lengths:
        lines.append(out[at:at + size])
        at += size
    return lines


def verify_log_bytes(data: bytes, roster_keys: Iterable[bytes]) -> tuple[list[bytes], list[Problem]]:
    """(the complete lines, the problems) of a whole log file's bytes, a torn tail included."""
    lines, tail = split_lines(data)
    problems = verify_entries(lines, roster_keys)
    if tail:
        problems.append(torn_problem(len(lines), tail))
    return lines, problems


# --- the file ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogContents:
    lines: list[bytes]      # complete, parseable-at-the-end lines
    torn: bytes             # bytes after them: empty unless a write was torn
    offset: int             # where the torn bytes start


class CeremonyLog:
    """The log file of one home folder (an adapter: file I/O with locking and fsync)."""

    def __init__(self, home: Path | str) -> None:
        self.folder = Path(home) / "ceremony"
        self.path = self.folder / "log.jsonl"
        self.checkpoints = self.folder / "checkpoints"

    # ---------------------------------------------------------------- reading

    def read(self) -> LogContents:
        """All complete lines and any torn tail (read under a shared lock: no half-written line)."""
        if not self.path.exists():
            return LogContents([], b"", 0)
        with open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            data = f.read(LOG_MAX_BYTES + 1)
        if len(data) > LOG_MAX_BYTES:
            raise BadInput(f"the ceremony log is larger than {LOG_MAX_BYTES} bytes", where=str(self.path))
        return _contents(data)

    def entries(self) -> list[Entry]:
        return [parse_entry(line) for line in self.read().lines]

    def leaf_hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(line) for line in self.read().lines]

    def check_not_torn(self, contents: LogContents | None = None) -> LogContents:
        contents = contents or self.read()
        if contents.torn:
            raise _torn_error(self.path, contents)
        return contents

    # ---------------------------------------------------------------- writing

    def append(self, event: str, payload: dict, key: "IdentityKey", *, now: datetime | None = None) -> Entry:
        """Sign and append one entry; returns it once it is on disk (fsync'd)."""
        check_payload(event, payload)
        self.folder.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            last, torn = _tail(fd, size)
            if torn:
                raise _torn_error(self.path, LogContents([], torn, size - len(torn)))
            seq, prev = (0, ZERO_HASH) if last is None else (parse_entry(last).seq + 1, line_hash(last))
            line = make_entry(seq, prev, event, payload, key, now or datetime.now(timezone.utc))
            data = line + b"\n"
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write of the ceremony log ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            sync_folder(self.folder)
        return parse_entry(line)

    def repair(self) -> tuple[Path, int] | None:
        """Move a torn tail aside to ``log.jsonl.torn-<n>`` and cut it off the log: (that file, its
        size), or None when the log is whole. The torn file is fsync'd before the log is cut."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = _read_all(fd)
            contents = _contents(data)
            if not contents.torn:
                return None
            n = 1
            while (self.folder / f"log.jsonl.torn-{n}").exists():
                n += 1
            aside = self.folder / f"log.jsonl.torn-{n}"
            from coldsign.store import atomic_write

            atomic_write(aside, contents.torn, mode=0o644)
            os.ftruncate(fd, contents.offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        return aside, len(contents.torn)


def _contents(data: bytes) -> LogContents:
    lines, tail = split_lines(data)
    if lines:
        try:
            parse_entry(lines[-1])
        except EntryProblem:
            last = lines.pop()
            tail = last + b"\n" + tail
    return LogContents(lines, tail, len(data) - len(tail))


def _tail(fd: int, size: int) -> tuple[bytes | None, bytes]:
    """(the last complete line, torn bytes after it) reading only the end of the file: first
    TAIL_READ_BYTES, more (up to two entries' worth) only when the last line is longer."""
    if size == 0:
        return None, b""
    chunk = min(size, TAIL_READ_BYTES)
    while True:
        whole = chunk == size
        data = os.pread(fd, chunk, size - chunk)
        end = data.rfind(b"\n") + 1
        start = data.rfind(b"\n", 0, end - 1) + 1 if end else 0
        if (end and start) or whole or chunk >= 2 * ENTRY_MAX_BYTES + 2:
            break
        chunk = min(size, 2 * chunk, 2 * ENTRY_MAX_BYTES + 2)
    if end == 0:
        return None, data                                   # no line end near the end: torn
    tail, body = data[end:], data[:end - 1]
    if start == 0 and not whole:
        return None, data                                   # a last line longer than any entry
    last = body[start:]
    try:
        parse_entry(last)
    except EntryProblem:
        return None, last + b"\n" + tail
    return last, tail


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > LOG_MAX_BYTES:
        raise BadInput(f"the ceremony log is larger than {LOG_MAX_BYTES} bytes")
    return os.pread(fd, size, 0)


def _torn_error(path: Path, contents: LogContents) -> ColdsignError:
    return Refused(f"the ceremony log ends in a torn write ({len(contents.torn)} bytes at offset "
                   f"{contents.offset} are not a complete entry); nothing was appended", where=str(path),
                   code="log-torn", hint="run `coldsign log repair` to move the torn bytes aside "
                   "(they are kept in log.jsonl.torn-N), then try again")


def installed_package_digest(package_root: Path | None = None) -> str:
    """Hex SHA-256 of the installed coldsign sources: of the ``sha256sum``-style manifest
    ``"<hex sha256>  <path>\\n"`` of every ``coldsign/**/*.py`` sorted by path (relative, POSIX).
    An auditor reproduces it with ``find coldsign -name '*.py' | sort | xargs sha256sum | sha256sum``
    run from the folder holding ``coldsign/`` (with LC_ALL=C for the sort)."""
    root = Path(package_root) if package_root else Path(__file__).resolve().parents[1]
    manifest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root.parent).as_posix().encode()):
        rel = path.relative_to(root.parent).as_posix()
        manifest.update(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n".encode())
    return manifest.hexdigest()
