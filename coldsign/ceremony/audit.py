"""The auditor's verification of a ceremony log: an export document or a raw ``log.jsonl`` checked
against the roster, a previous checkpoint the auditor holds, and (optionally) the chain.

What `audit_export` / `audit_log` check, each failure a `Problem(index, code, message)`:

- every entry (`coldsign.ceremony.log.verify_entries`): canonical form, ``seq`` without gaps, the
  ``prev`` hash chain, the actor key on the roster, the Ed25519 signature — codes ``not-canonical``,
  ``seq-gap``, ``broken-chain``, ``unknown-key``, ``bad-signature``, ``torn``;
- the checkpoint: its text, at least one signature by a roster key and one by the log's own key,
  which its origin must name (``coldsign.ceremony/<fingerprint>``), and every other signature line
  (a witness's) verifying too — ``bad-signature``; that the entries hash to its root —
  ``bad-root``; that it covers exactly the export's entries: fewer (an old checkpoint replayed over
  newer entries) is ``bad-root`` at the first uncovered entry, more (the tail cut off) is
  ``truncated`` at the first missing entry; the export's consistency proof — ``inconsistent``;
- an export file (`audit_export_bytes`): byte for byte what `coldsign log export` wrote, else
  ``not-canonical`` (so that no single byte of it can change unnoticed, whitespace included);
- the auditor's `previous` checkpoint: the log must extend it — of another log or with a gap
  before the export is ``inconsistent``, smaller than it is ``rollback``, different entries under
  it are ``fork``;
- the log's owner (the identity the checkpoint's origin names, else the previous checkpoint's):
  an entry signed by any other key, even a roster key, is ``wrong-actor`` — a signer's log is
  written by that signer alone, so a witness cannot add entries to it or pass off a log as theirs;
- with chain facts (`ChainFacts`: a chain source or transaction files), each ``signatures-produced``
  entry: a transaction with the logged txid is known (``not-on-chain``), the signed input indexes
  exist in it (``spends-differently``), and it pays exactly the logged outputs, address and amount,
  in order (``pays-differently``). The txid commits to every outpoint the transaction spends, so a
  matching txid is the proof that the inputs are those of the signed PSBT (the payload carries input
  indexes, not outpoints).

Problems come sorted by entry index (document-level ones, index None, last): the first is the
one the CLI names. `AuditResult.ok` is True only when there are none.

Why this does not just call `checkpoint.verify_export`: the auditor needs the *index* of the first
bad entry and distinct codes for truncation, rollback and fork, which that function reports as
document-level ``bad-root``/``inconsistent``. The building blocks (entries, Merkle tree, checkpoint
signatures) are the same functions.

Pure: no I/O. Chain facts come in through the one-method `ChainFacts` interface; embit is imported
only when a transaction has to be decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

from coldsign.ceremony import events, merkle
from coldsign.ceremony.checkpoint import (Checkpoint, export_bytes, outline_export, owner_of,
                                          owner_signature_problems, parse_checkpoint, parse_export,
                                          read_export_entries, unverified_signature_problems, verify_checkpoint)
from coldsign.ceremony.log import (LinesCheck, Problem, actor_of, check_lines, check_read_lines, split_lines,
                                   torn_problem)
from coldsign.errors import BadInput, NotFound
from coldsign.keys.identity import fingerprint_of

if TYPE_CHECKING:
    from coldsign.keys.roster import Roster
    from coldsign.network import Network

# what a withdrawal's chain check found
UNCHECKED = "unchecked"
ON_CHAIN = "on-chain"
NOT_ON_CHAIN = "not-on-chain"
UNCONFIRMED = "unconfirmed"
PAYS_DIFFERENTLY = "pays-differently"
SPENDS_DIFFERENTLY = "spends-differently"

# events the report shows (the others are counted, their payloads are digests only)
REPORTED_EVENTS = frozenset({events.CEREMONY_OPENED, events.POLICY_INSTALLED, events.POLICY_DECISION,
                             events.APPROVALS_CHECKED, events.SIGNATURES_PRODUCED, events.REFUSAL,
                             events.CEREMONY_CLOSED})


class ChainFacts(Protocol):
    """Where the auditor learns what reached the chain: `coldsign.chain.source.ChainSource` has this
    method; so does the CLI's folder of transaction files."""

    def transaction(self, txid: str) -> bytes:
        """The raw transaction with this txid (display hex); NotFound when unknown."""
        ...

    # A chain source also has `tx_height(txid)` (the block holding it, None in the mempool): then a
    # withdrawal counts as on the chain only in a block. A folder of transaction files has none, and
    # names itself (`place`, e.g. "among the transaction files") in what it cannot find.


@dataclass(frozen=True)
class Withdrawal:
    """A ``signatures-produced`` entry and what the chain says about it."""

    index: int
    time: str
    actor: str
    txid: str
    inputs: tuple[int, ...]
    outputs: tuple[tuple[str, int], ...]        # (address, amount in sat), in order
    psbt_sha256_before: str
    psbt_sha256_after: str
    chain: str = UNCHECKED                      # UNCHECKED, ON_CHAIN or a problem code
    height: int | None = None                   # the block holding it, when the chain source says
    change: tuple[int, ...] = ()                # positions of the outputs the signer proved are change
    labels: tuple[str, ...] = ()                # each output's address-book name ("" when none), in order

    def label(self, n: int) -> str:
        return self.labels[n] if n < len(self.labels) else ""

    @property
    def amount_sat(self) -> int:
        """Sats that leave the wallet: every output but the change."""
        return sum(amount for n, (_address, amount) in enumerate(self.outputs) if n not in self.change)

    def to_json(self) -> dict:
        return {"index": self.index, "time": self.time, "actor": self.actor, "txid": self.txid,
                "inputs": list(self.inputs),
                "outputs": [{"address": a, "amount_sat": s, "change": n in self.change,
                             **({"label": self.label(n)} if self.label(n) else {})}
                            for n, (a, s) in enumerate(self.outputs)],
                "amount_sat": self.amount_sat, "psbt_sha256_before": self.psbt_sha256_before,
                "psbt_sha256_after": self.psbt_sha256_after, "chain": self.chain, "height": self.height}


@dataclass(frozen=True)
class Record:
    """One entry as the report shows it (only entries that verified)."""

    index: int
    time: str
    event: str
    actor: str
    payload: dict


@dataclass(frozen=True)
class Signer:
    """An identity that signed entries: its roster name and role (None when not on the roster)."""

    fingerprint: str
    name: str | None
    role: str | None
    entries: int

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "name": self.name, "role": self.role, "entries": self.entries}


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit found. `lines` are the verified log lines (entries from_size on)."""

    source: str                                 # "export" or "log"
    from_size: int
    to_size: int
    problems: tuple[Problem, ...]
    checkpoint: Checkpoint | None
    checkpoint_signers: tuple[Signer, ...]
    signers: tuple[Signer, ...]
    withdrawals: tuple[Withdrawal, ...]
    chain_checked: bool
    previous: Checkpoint | None = None
    lines: tuple[bytes, ...] = field(default=(), repr=False)
    events: tuple[str | None, ...] = field(default=(), repr=False)     # per line, from `check_lines`
    names: dict[str, str] = field(default_factory=dict, repr=False)   # roster: fingerprint -> name

    def who(self, fingerprint: str) -> str:
        """"Name (fingerprint)" for a roster identity; the text as it is otherwise."""
        name = self.names.get(fingerprint)
        return f"{name} ({fingerprint})" if name else fingerprint

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def entries(self) -> int:
        return len(self.lines)

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def records(self, wanted: frozenset[str] = REPORTED_EVENTS) -> list[Record]:
        """The entries of the `wanted` events that verified, in log order (parsed on demand)."""
        bad = {p.index for p in self.problems if p.index is not None}
        out = []
        for offset, (line, event) in enumerate(zip(self.lines, self.events)):
            index = self.from_size + offset
            if index in bad or event not in wanted:
                continue
            doc = json.loads(line)
            out.append(Record(index, doc["time"], doc["event"], doc["actor"], doc["payload"]))
        return out

    def to_json(self) -> dict:
        cp = self.checkpoint
        return {
            "ok": self.ok, "entries": self.entries,
            "errors": [p.to_json() for p in self.problems],
            "source": self.source, "from_size": self.from_size, "to_size": self.to_size,
            "checkpoint": None if cp is None else {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(),
                                                    "signers": [s.to_json() for s in self.checkpoint_signers]},
            "previous": None if self.previous is None else {"size": self.previous.size,
                                                            "root": self.previous.root.hex()},
            "signers": [s.to_json() for s in self.signers],
            "chain_checked": self.chain_checked,
            "withdrawals": [w.to_json() for w in self.withdrawals],
        }


# --- entry points -----------------------------------------------------------------------------

def audit_export(doc: dict, roster: "Roster", *, previous: Checkpoint | None = None,
                 chain: ChainFacts | None = None, network: "Network | None" = None) -> AuditResult:
    """Audit an export document (already shape-checked by `checkpoint.parse_export`)."""
    lines = [e.encode("utf-8", "surrogatepass") for e in doc["entries"]]   # a lone surrogate: not-canonical
    checked = check_lines(lines, _keys(roster), first_seq=doc["from_size"], prev_hash=doc["prev_hash"])
    return _audit_export(doc, checked, roster, previous, chain, network)


def audit_export_bytes(data: bytes, roster: "Roster", *, where: str | None = None,
                       previous: Checkpoint | None = None, chain: ChainFacts | None = None,
                       network: "Network | None" = None) -> AuditResult:
    """Audit an export file's bytes: shape-checked (BadInput when it is not an export at all),
    then `audit_export`. The bytes must be exactly what `coldsign log export` writes (compact JSON
    and one newline): anything else is a ``not-canonical`` problem, so that no byte of an exported
    log can change without the audit failing — not even insignificant whitespace.

    An export spelled as written is read in one pass: the worker processes that check the entries
    decode them from the file's bytes, each its own range, and check that range's spelling
    (`checkpoint.outline_export`, `read_export_entries`). Anything else is parsed as a whole by
    `parse_export` and audited by `audit_export`, which says what is wrong with it."""
    data = bytes(data)
    outline = outline_export(data)
    if outline is not None:
        doc, spans = outline
        checked = check_read_lines(lambda n: read_export_entries(data, spans[n]), spans, _keys(roster),
                                   first_seq=doc["from_size"], prev_hash=doc["prev_hash"])
        if checked is not None:
            return _audit_export(doc, checked, roster, previous, chain, network)
    doc = parse_export(data, where=where)
    result = audit_export(doc, roster, previous=previous, chain=chain, network=network)
    if export_bytes(doc) != data:
        problem = Problem(None, "not-canonical", "the export is not byte for byte the compact JSON document "
                          "`coldsign log export` writes (edited or re-formatted after export?)")
        result = replace(result, problems=result.problems + (problem,))
    return result


def audit_log(data: bytes, roster: "Roster", *, checkpoint: Checkpoint | None = None,
              previous: Checkpoint | None = None, chain: ChainFacts | None = None,
              network: "Network | None" = None) -> AuditResult:
    """Audit a raw ``log.jsonl`` (its bytes, a torn tail included) and, if given, the checkpoint
    made of it. The log may have grown past the checkpoint: later entries are verified one by one
    but not covered by the checkpoint's root (`to_size` says how far the checkpoint goes)."""
    lines, tail = split_lines(data)
    checked = check_lines(lines, _keys(roster))
    return _audit("log", checked, tail, 0, [], checkpoint, None, roster, previous, chain, network, [],
                  exact_checkpoint=False)


# --- the checks -------------------------------------------------------------------------------

def _keys(roster: "Roster") -> list[bytes]:
    return [c.identity for c in roster.custodians]


def _audit_export(doc: dict, checked_lines: LinesCheck, roster: "Roster", previous: Checkpoint | None,
                  chain: ChainFacts | None, network: "Network | None") -> AuditResult:
    """The audit of an export document (its "entries" aside) whose entries `checked_lines` holds."""
    start, count = doc["from_size"], len(checked_lines.lines)
    problems: list[Problem] = []
    try:
        cp: Checkpoint | None = parse_checkpoint(doc["checkpoint"])
    except BadInput as err:
        cp = None
        problems.append(Problem(None, "bad-root", err.message))
    edge: list[bytes] | None = None
    try:
        edge = [bytes.fromhex(h) for h in doc["left_edge"]]
        merkle.MerkleAccumulator.from_edge(start, edge)
    except ValueError as err:
        problems.append(Problem(None, "bad-root", f"left_edge: {err}"))
        edge = None
    if cp is not None and cp.origin != doc["origin"]:
        problems.append(Problem(None, "bad-root", f"the checkpoint's origin {cp.origin} is not the export's "
                                f"({doc['origin'][:80]!r})"))     # repr: the export's text, control characters escaped
    if doc["to_size"] != start + count:
        problems.append(Problem(None, "bad-root", f"to_size is {doc['to_size']} but the export holds entries "
                                f"{start}..{start + count - 1}"))
    proof = [bytes.fromhex(h) for h in doc["consistency_proof"]]
    return _audit("export", checked_lines, b"", start, edge, cp, proof, roster, previous, chain, network,
                  problems, exact_checkpoint=True)


def _audit(source: str, checked_lines: LinesCheck, tail: bytes, start: int, edge: list[bytes] | None,
           cp: Checkpoint | None, proof: list[bytes] | None, roster: "Roster", previous: Checkpoint | None,
           chain: ChainFacts | None, network: "Network | None", problems: list[Problem], *,
           exact_checkpoint: bool) -> AuditResult:
    if chain is not None and network is None:
        raise BadInput("checking withdrawals against the chain needs the network of their addresses",
                       code="audit-network", hint="pass --network")
    keys = _keys(roster)
    lines = checked_lines.lines
    problems += checked_lines.problems
    end = start + len(lines)
    if tail:
        problems.append(torn_problem(end, tail))
    hashes = checked_lines.leaf_hashes
    cp_signers: tuple[Signer, ...] = ()
    if cp is not None:
        cp_signers = _named(verify_checkpoint(cp, keys), roster)
        problems += _checkpoint_problems(cp, cp_signers, start, end, edge, hashes, proof, exact_checkpoint)
    if previous is not None:
        problems += _against_previous(previous, keys, cp, start, end, edge, hashes)
    owner_origin = cp.origin if cp is not None else previous.origin if previous is not None else None
    if owner_origin is not None:
        problems += _foreign_actors(lines, start, owner_of(owner_origin), {p.index for p in problems}, roster)
    withdrawals = _withdrawals(lines, checked_lines.events, start, {p.index for p in problems if p.index is not None})
    if chain is not None:
        checked = []
        for w in withdrawals:
            verdict, problem, height = _check_on_chain(w, chain, network)
            checked.append(replace(w, chain=verdict, height=height))
            if problem is not None:
                problems.append(problem)
        withdrawals = checked
    problems.sort(key=lambda p: (p.index is None, p.index or 0))
    to_size = cp.size if cp is not None else end
    return AuditResult(source, start, to_size, tuple(problems), cp, cp_signers, _signers(lines, roster),
                       tuple(withdrawals), chain is not None, previous, tuple(lines),
                       tuple(checked_lines.events), {c.fingerprint: c.name for c in roster.custodians})


def _checkpoint_problems(cp: Checkpoint, signers: tuple[Signer, ...], start: int, end: int,
                         edge: list[bytes] | None, hashes: list[bytes], proof: list[bytes] | None,
                         exact: bool) -> list[Problem]:
    problems = owner_signature_problems(cp, (s.fingerprint for s in signers))
    problems += unverified_signature_problems(cp, (s.fingerprint for s in signers))
    if cp.size > end:
        return problems + [Problem(end, "truncated", f"the checkpoint covers {cp.size} entries but the log "
                                   f"ends at entry {end - 1}: entries {end}..{cp.size - 1} are missing")]
    if exact and cp.size < end:
        return problems + [Problem(cp.size, "bad-root", f"the checkpoint covers only {cp.size} entries; entries "
                                   f"{cp.size}..{end - 1} are not under it (an old checkpoint replayed?)")]
    if cp.size < start:
        return problems + [Problem(None, "bad-root", f"the checkpoint (size {cp.size}) ends before the export "
                                   f"starts (entry {start})")]
    if edge is None:
        return problems
    acc = merkle.MerkleAccumulator.from_edge(start, edge)
    old_root = acc.root()
    if acc.extend(hashes[:cp.size - start]).root() != cp.root:
        problems.append(Problem(None, "bad-root", f"the first {cp.size} entries do not hash to the checkpoint's root"))
    elif proof is not None and not merkle.verify_consistency(start, cp.size, old_root, cp.root, proof):
        problems.append(Problem(None, "inconsistent", f"the consistency proof from size {start} to {cp.size} "
                                "does not verify"))
    return problems


def _against_previous(previous: Checkpoint, keys: list[bytes], cp: Checkpoint | None, start: int, end: int,
                      edge: list[bytes] | None, hashes: list[bytes]) -> list[Problem]:
    """The log must extend the auditor's `previous` checkpoint: no rewrite, fork or rollback."""
    problems = []
    signers = verify_checkpoint(previous, keys)
    if not signers:
        problems.append(Problem(None, "bad-signature", "no signature on the previous checkpoint verifies "
                                "against the roster"))
    problems += unverified_signature_problems(previous, signers, "previous checkpoint")
    if cp is not None and previous.origin != cp.origin:
        return problems + [Problem(None, "inconsistent", f"the previous checkpoint is of another log "
                                   f"({previous.origin}, not {cp.origin})")]
    size = cp.size if cp is not None else end
    if previous.size > size:
        return problems + [Problem(size, "rollback", f"rollback: the previous checkpoint covers {previous.size} "
                                   f"entries, this log only {size}")]
    if previous.size < start:
        return problems + [Problem(None, "inconsistent", f"the export starts at entry {start}, after the "
                                   f"previous checkpoint's {previous.size}: entries in between are missing")]
    if edge is None:
        return problems
    root = merkle.MerkleAccumulator.from_edge(start, edge).extend(hashes[:previous.size - start]).root()
    if root != previous.root:
        problems.append(Problem(None, "fork", f"fork: the first {previous.size} entries are not the ones the "
                                "previous checkpoint signed (the log was rewritten)"))
    return problems


def _foreign_actors(lines: Sequence[bytes], start: int, owner: str | None, bad: set[int | None],
                    roster: "Roster") -> list[Problem]:
    """``wrong-actor`` for each entry (that verified otherwise) signed by another identity than the
    log's owner. A signer's log is written by one identity, the one whose checkpoints name it: an
    entry by another roster key (a witness, an approver) was put into someone else's log."""
    if owner is None:
        return []
    names = {c.fingerprint: c.name for c in roster.custodians}
    out = []
    for offset, line in enumerate(lines):
        index = start + offset
        actor = actor_of(line)
        if index in bad or actor == owner:
            continue
        name = f" ({names[actor]})" if actor in names else ""
        out.append(Problem(index, "wrong-actor", f"signed by {actor}{name}, not by the log's owner {owner} that "
                           "the checkpoint's origin names"))
    return out


def _named(fingerprints: Iterable[str], roster: "Roster") -> tuple[Signer, ...]:
    out = []
    for fp in fingerprints:
        c = roster.find(fp)
        out.append(Signer(fp, c.name if c else None, c.role if c else None, 0))
    return tuple(out)


def _signers(lines: Sequence[bytes], roster: "Roster") -> tuple[Signer, ...]:
    counts: dict[bytes, int] = {}
    for line in lines:                          # canonical: {"actor":"<19 chars>","actor_key":"<64 hex>",...
        at = line.find(b'"actor_key":"')
        if at >= 0:
            key = line[at + 13:at + 77]
            counts[key] = counts.get(key, 0) + 1
    out = []
    for key_hex, count in counts.items():
        try:
            key = bytes.fromhex(key_hex.decode("ascii"))
            custodian = roster.find(key)
            fp = fingerprint_of(key)
        except (ValueError, UnicodeDecodeError, BadInput):
            continue                            # not a key: that line is already a not-canonical problem
        out.append(Signer(fp, custodian.name if custodian else None, custodian.role if custodian else None, count))
    return tuple(out)


def _withdrawals(lines: Sequence[bytes], line_events: Sequence[str | None], start: int,
                 bad: set[int]) -> list[Withdrawal]:
    out = []
    for offset, (line, event) in enumerate(zip(lines, line_events)):
        index = start + offset
        if event != events.SIGNATURES_PRODUCED or index in bad:
            continue
        doc = json.loads(line)
        p = doc["payload"]
        out.append(Withdrawal(index, doc["time"], doc["actor"], p["txid"], tuple(p["inputs"]),
                              tuple((o["address"], o["amount_sat"]) for o in p["outputs"]),
                              p["psbt_sha256_before"], p["psbt_sha256_after"],
                              change=tuple(n for n, o in enumerate(p["outputs"]) if o.get("change")),
                              labels=tuple(o.get("label", "") for o in p["outputs"])))
    return out


def _check_on_chain(w: Withdrawal, chain: ChainFacts,
                    network: "Network") -> tuple[str, Problem | None, int | None]:
    """(verdict, problem or None, block height or None) for one withdrawal against the chain facts."""
    verdict, problem = _check_payments(w, chain, network)
    if problem is not None or not hasattr(chain, "tx_height"):
        return verdict, problem, None
    height = chain.tx_height(w.txid)
    if height is None:
        return UNCONFIRMED, Problem(w.index, UNCONFIRMED, f"transaction {w.txid} pays as signed but is in no block "
                                    "yet (the mempool is not the chain): audit again once it is mined"), None
    return ON_CHAIN, None, height


def _check_payments(w: Withdrawal, chain: ChainFacts, network: "Network") -> tuple[str, Problem | None]:
    try:
        raw = chain.transaction(w.txid)
    except NotFound:
        place = getattr(chain, "place", "on the chain")
        return NOT_ON_CHAIN, Problem(w.index, NOT_ON_CHAIN, f"transaction {w.txid} is not {place}")
    tx = _decode_transaction(raw)
    if tx is None or tx.txid().hex() != w.txid:
        return NOT_ON_CHAIN, Problem(w.index, NOT_ON_CHAIN, f"the chain answered for {w.txid} with another "
                                     "transaction or with bytes that are not one")
    missing = [i for i in w.inputs if i >= len(tx.vin)]
    if missing:
        return SPENDS_DIFFERENTLY, Problem(w.index, SPENDS_DIFFERENTLY, f"input {missing[0]} was signed but "
                                           f"transaction {w.txid} has only {len(tx.vin)} inputs")
    paid = [(_address(out.script_pubkey.data, network), out.value) for out in tx.vout]
    if paid != list(w.outputs):
        return PAYS_DIFFERENTLY, Problem(w.index, PAYS_DIFFERENTLY, _payment_difference(w, paid))
    return ON_CHAIN, None


def _payment_difference(w: Withdrawal, paid: list[tuple[str, int]]) -> str:
    if len(paid) != len(w.outputs):
        return (f"transaction {w.txid} has {len(paid)} outputs; the reviewed PSBT had {len(w.outputs)}")
    for n, (logged, actual) in enumerate(zip(w.outputs, paid)):
        if logged != actual:
            return (f"output {n} of transaction {w.txid} pays {actual[1]} sat to {actual[0]}; the reviewed "
                    f"PSBT paid {logged[1]} sat to {logged[0]}")
    return f"transaction {w.txid} pays differently"       # pragma: no cover - lists differ somewhere


def _decode_transaction(raw: bytes):
    from embit.transaction import Transaction

    try:
        return Transaction.parse(bytes(raw))
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError/EOFError on junk
        return None


def _address(script: bytes, network: "Network") -> str:
    """The address of an output script, or ``script:<hex>`` for one without an address (OP_RETURN)."""
    from embit.script import Script

    try:
        return Script(script).address(network.embit)
    except Exception:  # noqa: BLE001 - embit raises on non-standard scripts
        return f"script:{script.hex()}"
