"""The auditor's verification (`coldsign.ceremony.audit`): the tamper suite of issue 7 §5, each
tampering found at the right entry with the right code; withdrawals checked against chain facts;
and the property that any single-byte change anywhere in an exported log fails the audit.

The log, in words: alice's identity key (walletkit seed "alice") keeps it; two ceremonies of nine
entries each — opened, policy installed (version 3), PSBT received, review shown, policy decision,
approvals checked (2 of 2: alice, bob), signatures produced (txid of a made-up transaction paying
150,000 sat to walletkit.EXTERNAL_SCRIPT's address and 49,000 sat of change), exported (bbqr, 4
frames), closed — and a third that ends in a refusal (fee above the policy): 25 entries in all.
The roster holds alice (custodian) and bob (witness); carol (walletkit seed "carol") is not on it.
Checkpoints are signed by alice; the export covers the whole log unless a test says otherwise.
An export file's entries are read range by range by the workers that check them: the same single-byte
property holds there, and what is found is what the document parsed whole gives.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import walletkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldsign.ceremony import checkpoint, events, merkle
from coldsign.ceremony.audit import (NOT_ON_CHAIN, ON_CHAIN, PAYS_DIFFERENTLY, SPENDS_DIFFERENTLY, audit_export,
                                     audit_export_bytes, audit_log, export_bytes)
from coldsign.ceremony.checkpoint import (build_export, origin_for, outline_export, parse_export, read_export_entries,
                                          sign_checkpoint)
from coldsign.ceremony.log import ZERO_HASH, line_hash, make_entry
from coldsign.errors import BadInput, NotFound
from coldsign.keys.identity import IdentityKey
from coldsign.keys.roster import Custodian, Roster
from coldsign.network import Network

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
CAROL = IdentityKey.from_seed(walletkit.seed("carol"))
ROSTER = Roster((Custodian("Alice Ng", "custodian", ALICE.public_key),
                 Custodian("Bob Ruiz", "witness", BOB.public_key)))
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ORIGIN = origin_for(ALICE.fingerprint)


def withdrawal_tx(salt: int) -> bytes:
    """A made-up, unsigned transaction: one input, 150,000 sat to EXTERNAL_SCRIPT, 49,000 sat change."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    change = bytes.fromhex("0014") + bytes([salt]) * 20
    return Transaction(vin=[TransactionInput(salt.to_bytes(32, "big"), 0)],
                       vout=[TransactionOutput(150_000, Script(walletkit.EXTERNAL_SCRIPT)),
                             TransactionOutput(49_000, Script(change))]).serialize()


def outputs_of(raw: bytes) -> list[tuple[str, int, bool]]:
    """(address, amount, is change) of each output: the second one is the wallet's change."""
    from embit.transaction import Transaction

    tx = Transaction.parse(raw)
    return [(o.script_pubkey.address(Network.REGTEST.embit), o.value, n == 1) for n, o in enumerate(tx.vout)]


def txid_of(raw: bytes) -> str:
    from embit.transaction import Transaction

    return Transaction.parse(raw).txid().hex()


TXS = [withdrawal_tx(1), withdrawal_tx(2)]


def ceremony_payloads(n: int, refused: bool = False) -> list[tuple[str, dict]]:
    digest = f"{n:02x}" * 32
    steps = [(events.CEREMONY_OPENED, events.ceremony_opened([ALICE.fingerprint, BOB.fingerprint], "0.1.0",
                                                             "aa" * 32, "offline laptop 7")),
             (events.POLICY_INSTALLED, events.policy_installed("bb" * 32, 3, "treasury")),
             (events.PSBT_RECEIVED, events.psbt_received(digest, "qr", 812)),
             (events.REVIEW_SHOWN, events.review_shown(digest))]
    if refused:
        return steps + [(events.POLICY_DECISION, events.policy_decision(False, [("max-fee", False, "fee too high")])),
                        (events.REFUSAL, events.refusal("max-fee", "fee 90,000 sat above the policy's 20,000")),
                        (events.CEREMONY_CLOSED, events.ceremony_closed("refused"))]
    raw = TXS[n]
    return steps + [(events.POLICY_DECISION, events.policy_decision(True, [("max-fee", True, "fee ok")])),
                    (events.APPROVALS_CHECKED, events.approvals_checked(True, 2, [ALICE.fingerprint, BOB.fingerprint])),
                    (events.SIGNATURES_PRODUCED, events.signatures_produced(digest, "cc" * 32, [0], txid_of(raw),
                                                                            outputs_of(raw))),
                    (events.EXPORTED, events.exported("bbqr", 4)),
                    (events.CEREMONY_CLOSED, events.ceremony_closed("signed"))]


def chain_lines(steps, key=ALICE, start: int = 0, prev: str = ZERO_HASH) -> list[bytes]:
    lines = []
    for seq, (event, payload) in enumerate(steps, start):
        line = make_entry(seq, prev, event, payload, key, START + timedelta(minutes=seq))
        lines.append(line)
        prev = line_hash(line)
    return lines


def ceremony_log() -> list[bytes]:
    return chain_lines(ceremony_payloads(0) + ceremony_payloads(1) + ceremony_payloads(2, refused=True))


LINES = ceremony_log()
SIGNED_AT = 6                    # the first signatures-produced entry
SECOND_SIGNED_AT = 15


def checkpoint_of(lines, key=ALICE):
    return sign_checkpoint(ORIGIN, len(lines), merkle.tree_hash(lines), key)


def export_of(lines, from_size=0, cp=None):
    return json.loads(json.dumps(build_export(lines, from_size, cp or checkpoint_of(lines))))


def codes(result):
    return [(p.index, p.code) for p in result.problems]


def first(result):
    return (result.first_problem.index, result.first_problem.code)


class Chain:
    """Chain facts in memory: the transactions that reached the chain, by txid."""

    def __init__(self, *raws: bytes):
        self.txs = {txid_of(raw): raw for raw in raws}

    def transaction(self, txid):
        if txid not in self.txs:
            raise NotFound(f"transaction {txid} is not known")
        return self.txs[txid]


class Mined(Chain):
    """A chain source's facts: the transactions, and which block holds each (None: the mempool)."""

    def __init__(self, heights: dict, *raws: bytes):
        super().__init__(*raws)
        self.heights = heights

    def tx_height(self, txid):
        return self.heights.get(txid)


# --- the honest log -------------------------------------------------------------------------------

def test_an_honest_export_verifies_with_its_facts():
    result = audit_export(export_of(LINES), ROSTER, chain=Chain(*TXS), network=Network.REGTEST)
    assert result.ok and codes(result) == [] and result.entries == 25
    assert result.checkpoint.size == 25 and [s.name for s in result.checkpoint_signers] == ["Alice Ng"]
    assert [(s.name, s.entries) for s in result.signers] == [("Alice Ng", 25)]
    assert [(w.index, w.txid, w.amount_sat, w.chain) for w in result.withdrawals] == [
        (SIGNED_AT, txid_of(TXS[0]), 150_000, ON_CHAIN), (SECOND_SIGNED_AT, txid_of(TXS[1]), 150_000, ON_CHAIN)]
    doc = result.to_json()
    assert doc["ok"] is True and doc["entries"] == 25 and doc["errors"] == [] and doc["chain_checked"] is True
    assert doc["withdrawals"][0]["outputs"][0]["amount_sat"] == 150_000
    assert [o["change"] for o in doc["withdrawals"][0]["outputs"]] == [False, True]


def test_an_honest_raw_log_with_its_checkpoint_verifies_and_may_have_grown_since():
    data = b"".join(line + b"\n" for line in LINES)
    assert audit_log(data, ROSTER, checkpoint=checkpoint_of(LINES)).ok
    grown = audit_log(data, ROSTER, checkpoint=checkpoint_of(LINES[:10]), previous=checkpoint_of(LINES[:4]))
    assert grown.ok and grown.to_size == 10 and grown.entries == 25
    assert audit_log(data, ROSTER).ok and audit_log(data, ROSTER).checkpoint is None


def test_an_incremental_export_verifies_against_the_previous_checkpoint():
    previous = checkpoint_of(LINES[:9])
    result = audit_export(export_of(LINES, 9), ROSTER, previous=previous)
    assert result.ok and result.from_size == 9 and result.entries == 16
    assert [w.index for w in result.withdrawals] == [SECOND_SIGNED_AT]


# --- the tamper suite (issue 7 §5) ---------------------------------------------------------------

def tampered(lines):
    """An export of `lines` under the checkpoint of the honest log (what the signer signed)."""
    doc = export_of(LINES)
    doc["entries"] = [line.decode() for line in lines]
    return doc


def test_edit_a_payload_byte():
    lines = list(LINES)
    lines[SIGNED_AT] = lines[SIGNED_AT].replace(b'"amount_sat":150000', b'"amount_sat":950000')
    result = audit_export(tampered(lines), ROSTER)
    assert first(result) == (SIGNED_AT, "bad-signature")
    assert result.first_problem.message == "the signature does not verify against the actor's key"
    assert (SIGNED_AT + 1, "broken-chain") in codes(result) and (None, "bad-root") in codes(result)


def test_change_a_signature():
    lines = list(LINES)
    cut = lines[3].index(b'"sig":"') + 7
    lines[3] = lines[3][:cut] + (b"0" if lines[3][cut:cut + 1] != b"0" else b"1") + lines[3][cut + 1:]
    result = audit_export(tampered(lines), ROSTER)
    assert first(result) == (3, "bad-signature") and (None, "bad-root") in codes(result)


def test_drop_an_entry():
    result = audit_export(tampered(LINES[:5] + LINES[6:]), ROSTER)
    assert codes(result)[:2] == [(5, "seq-gap"), (5, "broken-chain")]
    assert result.first_problem.message == "seq is 6, expected 5"
    assert (24, "truncated") in codes(result)


def test_reorder_two_entries():
    lines = list(LINES)
    lines[7], lines[8] = lines[8], lines[7]
    result = audit_export(tampered(lines), ROSTER)
    assert codes(result)[:2] == [(7, "seq-gap"), (7, "broken-chain")]
    assert result.first_problem.message == "seq is 8, expected 7"


def test_truncate_the_tail():
    whole = export_of(LINES)
    cut = dict(whole, entries=whole["entries"][:-3])
    result = audit_export(cut, ROSTER)
    assert first(result) == (22, "truncated")
    assert result.first_problem.message == ("the checkpoint covers 25 entries but the log ends at entry 21: "
                                            "entries 22..24 are missing")
    data = b"".join(line + b"\n" for line in LINES)
    torn = audit_log(data[:-40], ROSTER, checkpoint=checkpoint_of(LINES))
    assert codes(torn)[:2] == [(24, "torn"), (24, "truncated")]
    whole_lines = audit_log(data[:data.rindex(b"\n", 0, len(data) - 1) + 1], ROSTER, checkpoint=checkpoint_of(LINES))
    assert codes(whole_lines) == [(24, "truncated")]


def test_insert_a_forged_entry_signed_by_a_key_not_on_the_roster():
    forged = chain_lines([(events.SIGNATURES_PRODUCED, events.signatures_produced(
        "dd" * 32, "ee" * 32, [0], "ff" * 32, [("bcrt1qattacker", 5_000_000)]))], CAROL, 10, line_hash(LINES[9]))
    result = audit_export(tampered(LINES[:10] + forged + LINES[10:]), ROSTER)
    assert first(result) == (10, "unknown-key")
    assert result.first_problem.message == f"signed by {CAROL.fingerprint}, a key that is not on the roster"
    appended = chain_lines([(events.REFUSAL, events.refusal("x", "forged"))], CAROL, 25, line_hash(LINES[-1]))
    data = b"".join(line + b"\n" for line in LINES + appended)
    assert codes(audit_log(data, ROSTER, checkpoint=checkpoint_of(LINES))) == [(25, "unknown-key")]
    assert 10 not in [w.index for w in result.withdrawals]          # a bad entry is no withdrawal


def test_fork_the_log_after_a_checkpoint():
    previous = checkpoint_of(LINES[:9])                          # what the auditor holds
    forked = LINES[:7] + chain_lines(ceremony_payloads(1), ALICE, 7, line_hash(LINES[6]))
    whole = audit_export(export_of(forked), ROSTER, previous=previous)
    assert codes(whole) == [(None, "fork")]
    assert whole.first_problem.message.startswith("fork: the first 9 entries are not the ones the previous")
    since = audit_export(export_of(forked, 9), ROSTER, previous=previous)
    assert codes(since) == [(None, "fork")]
    raw = audit_log(b"".join(line + b"\n" for line in forked), ROSTER, previous=previous)
    assert codes(raw) == [(None, "fork")]


def test_replay_an_old_checkpoint():
    newest = checkpoint_of(LINES)
    old_export = export_of(LINES[:9])                             # the state of an earlier audit, shown again
    result = audit_export(old_export, ROSTER, previous=newest)
    assert codes(result) == [(9, "rollback")]
    assert result.first_problem.message == "rollback: the previous checkpoint covers 25 entries, this log only 9"
    swapped = export_of(LINES)
    swapped["checkpoint"] = checkpoint_of(LINES[:9]).text        # new entries under an old checkpoint
    replay = audit_export(swapped, ROSTER)
    assert codes(replay) == [(9, "bad-root")]
    assert replay.first_problem.message.startswith("the checkpoint covers only 9 entries; entries 9..24")


def test_a_checkpoint_signed_only_by_a_witness_or_a_stranger_fails():
    by_carol = audit_export(export_of(LINES, cp=checkpoint_of(LINES, CAROL)), ROSTER)
    assert codes(by_carol) == [(None, "bad-signature")]
    assert by_carol.first_problem.message == "no signature on the checkpoint verifies against the roster"
    by_bob = audit_export(export_of(LINES, cp=sign_checkpoint(ORIGIN, 25, merkle.tree_hash(LINES), BOB)), ROSTER)
    assert codes(by_bob) == [(None, "bad-signature")] and "did not sign the checkpoint" in by_bob.first_problem.message


def test_a_broken_consistency_proof_is_inconsistent():
    doc = export_of(LINES, 9)
    doc["consistency_proof"][0] = "00" * 32
    assert codes(audit_export(doc, ROSTER)) == [(None, "inconsistent")]


# --- withdrawals against the chain ------------------------------------------------------------------

def test_a_withdrawal_not_on_the_chain():
    result = audit_export(export_of(LINES), ROSTER, chain=Chain(TXS[1]), network=Network.REGTEST)
    assert codes(result) == [(SIGNED_AT, NOT_ON_CHAIN)]
    assert result.first_problem.message == f"transaction {txid_of(TXS[0])} is not on the chain"
    assert [w.chain for w in result.withdrawals] == [NOT_ON_CHAIN, ON_CHAIN]


def test_a_withdrawal_that_pays_differently():
    logged = outputs_of(TXS[0])
    steps = ceremony_payloads(0)
    steps[6] = (events.SIGNATURES_PRODUCED, events.signatures_produced(
        "00" * 32, "cc" * 32, [0], txid_of(TXS[0]), [(logged[0][0], 140_000), logged[1]]))
    result = audit_export(export_of(chain_lines(steps)), ROSTER, chain=Chain(*TXS), network=Network.REGTEST)
    assert codes(result) == [(SIGNED_AT, PAYS_DIFFERENTLY)]
    assert result.first_problem.message == (f"output 0 of transaction {txid_of(TXS[0])} pays 150000 sat to "
                                            f"{logged[0][0]}; the reviewed PSBT paid 140000 sat to {logged[0][0]}")
    steps[6] = (events.SIGNATURES_PRODUCED, events.signatures_produced(
        "00" * 32, "cc" * 32, [0, 1], txid_of(TXS[0]), logged))
    spends = audit_export(export_of(chain_lines(steps)), ROSTER, chain=Chain(*TXS), network=Network.REGTEST)
    assert codes(spends) == [(SIGNED_AT, SPENDS_DIFFERENTLY)]
    assert spends.first_problem.message == (f"input 1 was signed but transaction {txid_of(TXS[0])} has only 1 "
                                            "inputs")


def test_a_chain_answering_with_another_transaction_is_not_on_chain():
    class Liar:
        def transaction(self, txid):
            return TXS[1]

    result = audit_export(export_of(LINES), ROSTER, chain=Liar(), network=Network.REGTEST)
    assert codes(result) == [(SIGNED_AT, NOT_ON_CHAIN)]
    assert "answered for" in result.first_problem.message


def test_the_chain_check_needs_a_network():
    with pytest.raises(BadInput) as info:
        audit_export(export_of(LINES), ROSTER, chain=Chain(*TXS))
    assert info.value.message == "checking withdrawals against the chain needs the network of their addresses"


# --- any single byte ---------------------------------------------------------------------------------

EXPORT = export_bytes(export_of(LINES[:12], 5))                   # left edge, proof and prev_hash non-empty


def test_the_exported_bytes_verify_as_written():
    assert audit_export_bytes(EXPORT, ROSTER).ok
    spaced = json.dumps(json.loads(EXPORT), ensure_ascii=False).encode() + b"\n"
    result = audit_export_bytes(spaced, ROSTER)
    assert codes(result) == [(None, "not-canonical")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, len(EXPORT) - 1), value=st.integers(0, 255))
def test_any_single_byte_change_of_an_export_fails(position, value):
    if EXPORT[position] == value:
        value ^= 0x01
    data = EXPORT[:position] + bytes([value]) + EXPORT[position + 1:]
    try:
        result = audit_export_bytes(data, ROSTER)
    except BadInput as err:
        assert err.code in ("log-export", "roster-lookup") or err.message.startswith("not a coldsign log export")
        return
    assert not result.ok, (position, value)


# --- large logs (checked by worker processes, in chunks of VERIFY_BATCH lines) -------------------------

def test_tampering_at_a_chunk_boundary_of_a_large_log_is_found():
    from coldsign.ceremony.log import VERIFY_BATCH

    steps = [(events.REVIEW_SHOWN, events.review_shown(f"{n:064x}")) for n in range(2 * VERIFY_BATCH + 3)]
    lines = chain_lines(steps)
    assert audit_log(b"".join(line + b"\n" for line in lines), ROSTER, checkpoint=checkpoint_of(lines)).ok
    dropped = lines[:VERIFY_BATCH] + lines[VERIFY_BATCH + 1:]          # the first line of the second chunk
    forged = chain_lines([(events.REFUSAL, events.refusal("x", "forged"))], CAROL, 2 * VERIFY_BATCH - 1,
                         line_hash(lines[2 * VERIFY_BATCH - 2]))       # the last line of the second chunk
    dropped[2 * VERIFY_BATCH - 2] = forged[0]
    result = audit_log(b"".join(line + b"\n" for line in dropped), ROSTER, checkpoint=checkpoint_of(lines))
    assert codes(result) == [(VERIFY_BATCH, "seq-gap"), (VERIFY_BATCH, "broken-chain"),
                             (2 * VERIFY_BATCH - 2, "unknown-key"),        # chained well, signed by carol
                             (2 * VERIFY_BATCH - 1, "broken-chain"),
                             (2 * VERIFY_BATCH + 2, "truncated")]


# --- review findings: who counts as the log's own signer --------------------------------------------

def test_a_witness_cannot_stand_in_for_the_log_owner_by_renaming_the_origin():
    """bob (a witness on the roster) cuts the last ceremony off alice's log and signs a checkpoint
    of the rest himself. Naming himself, or something that is no identity at all, as the origin must
    not let his signature pass for the log owner's."""
    cut = LINES[:SECOND_SIGNED_AT + 1]
    for origin in ("evil.example/log", "coldsign.ceremony", origin_for(BOB.fingerprint)):
        cp = sign_checkpoint(origin, len(cut), merkle.tree_hash(cut), BOB)
        doc = export_of(cut, cp=cp)
        assert doc["origin"] == origin
        result = audit_export(doc, ROSTER)
        assert not result.ok, origin
        assert result.to_json()["ok"] is False
    named_bob = audit_export(export_of(cut, cp=sign_checkpoint(origin_for(BOB.fingerprint), len(cut),
                                                               merkle.tree_hash(cut), BOB)), ROSTER)
    assert codes(named_bob)[0] == (0, "wrong-actor")
    assert named_bob.first_problem.message == (f"signed by {ALICE.fingerprint} (Alice Ng), not by the log's owner "
                                               f"{BOB.fingerprint} that the checkpoint's origin names")
    no_identity = audit_export(export_of(cut, cp=sign_checkpoint("evil.example/log", len(cut),
                                                                 merkle.tree_hash(cut), BOB)), ROSTER)
    assert codes(no_identity) == [(None, "bad-signature")]
    assert no_identity.first_problem.message == ("the checkpoint's origin evil.example/log does not name the log's "
                                                 "identity (coldsign.ceremony/<fingerprint>)")


def test_an_entry_by_another_roster_key_in_the_owners_log_is_found():
    """bob appends a forged withdrawal to alice's log with his own (roster) key, chained properly;
    the raw log with alice's checkpoint of the honest part must not verify."""
    forged = chain_lines([(events.SIGNATURES_PRODUCED, events.signatures_produced(
        "dd" * 32, "ee" * 32, [0], "ff" * 32, [("bcrt1qattacker", 5_000_000)]))], BOB, 25, line_hash(LINES[-1]))
    data = b"".join(line + b"\n" for line in LINES + forged)
    result = audit_log(data, ROSTER, checkpoint=checkpoint_of(LINES))
    assert codes(result) == [(25, "wrong-actor")]
    assert 25 not in [w.index for w in result.withdrawals]
    assert audit_log(data, ROSTER, previous=checkpoint_of(LINES)).ok is False


def test_an_export_with_a_field_added_or_its_fields_reordered_fails():
    """Not a single-byte change, and the same entries: still not what `log export` wrote. An added
    field would ride along into the auditor's archive as if it were part of the signed export."""
    doc = json.loads(EXPORT)
    added = (json.dumps({**doc, "note": "approved by the board"}, ensure_ascii=False, separators=(",", ":"))
             + "\n").encode()
    with pytest.raises(BadInput) as info:
        audit_export_bytes(added, ROSTER)
    assert info.value.message == "not a coldsign log export: unknown field 'note'"
    reordered = {"format": doc["format"], **{k: v for k, v in reversed(doc.items()) if k != "format"}}
    data = (json.dumps(reordered, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    assert data != EXPORT and json.loads(data) == doc
    assert codes(audit_export_bytes(data, ROSTER)) == [(None, "not-canonical")]


def test_an_untrusted_origin_cannot_put_terminal_controls_into_the_verdict():
    """The export's own "origin" is attacker text; the CLI prints the first problem's message on
    the auditor's terminal. Escape sequences in it could redraw the line as "OK"."""
    doc = export_of(LINES)
    doc["origin"] = "\x1b[2K\rOK: 25 entries verified\x1b[8m"
    result = audit_export(doc, ROSTER)
    [problem] = [p for p in result.problems if "origin" in p.message]
    assert problem.code == "bad-root" and "\x1b" not in problem.message and "\r" not in problem.message
    assert problem.message == (f"the checkpoint's origin {ORIGIN} is not the export's "
                               "('\\x1b[2K\\rOK: 25 entries verified\\x1b[8m')")
    with pytest.raises(BadInput) as info:
        audit_export_bytes(export_bytes(doc).replace(b'"format"', b'"\\u001b[2Kformat":1,"format"', 1), ROSTER)
    assert "\x1b" not in info.value.message


# --- an export file read range by range, by the workers that check its entries ---------------------

def whole_document_codes(data: bytes):
    """What an audit of `data` finds when the document is parsed whole (`parse_export`) and its
    bytes compared with what `log export` writes: the problems, or the BadInput's message."""
    try:
        doc = parse_export(data)
    except BadInput as err:
        return err.message
    spelled = [] if export_bytes(doc) == data else [(None, "not-canonical")]
    return codes(audit_export(doc, ROSTER)) + spelled


def bytes_codes(data: bytes):
    try:
        return codes(audit_export_bytes(data, ROSTER))
    except BadInput as err:
        return err.message


SMALL_RANGES = 1_500                                            # bytes: 2 or 3 entries a range
RANGED = export_bytes(export_of(LINES, 5))                      # 20 entries: 7 ranges of SMALL_RANGES
ENTRY_EDGES = [i for i in range(RANGED.index(b'"entries":['), len(RANGED)) if RANGED.startswith(b'","', i)]


def test_an_export_read_in_ranges_audits_as_the_document_parsed_whole(monkeypatch):
    """An export file's entries are decoded by the forked workers that check them, a range of bytes
    each: the ranges cover the entries array exactly, and the audit is the one of the document
    parsed whole, withdrawals and chain checks included."""
    monkeypatch.setattr(checkpoint, "EXPORT_BATCH_BYTES", SMALL_RANGES)
    doc, spans = outline_export(RANGED)
    assert doc == dict(json.loads(RANGED), entries=[]) and len(spans) == 7
    entries = RANGED[RANGED.index(b'"entries":[') + 11:RANGED.rindex(b'],"from_size":')]
    assert b",".join(RANGED[lo:hi] for lo, hi in spans) == entries
    assert [line for span in spans for line in read_export_entries(RANGED, span)] == LINES[5:]
    ranged = audit_export_bytes(RANGED, ROSTER, chain=Chain(*TXS), network=Network.REGTEST)
    whole = audit_export(json.loads(RANGED), ROSTER, chain=Chain(*TXS), network=Network.REGTEST)
    assert ranged.ok and ranged.to_json() == whole.to_json()
    assert (ranged.lines, ranged.events) == (whole.lines, whole.events) and ranged.lines == tuple(LINES[5:])


def test_an_entries_range_reads_only_as_log_export_spells_it():
    """Any other spelling of the entries, or of the document around them, is not read range by
    range (the whole document is then parsed, and its audit says not-canonical or BadInput)."""
    line = LINES[0].decode()
    good = json.dumps([line, line], ensure_ascii=False, separators=(",", ":"))[1:-1].encode()
    assert read_export_entries(good, (0, len(good))) == [LINES[0], LINES[0]]
    for respelled in (good.replace(b'","', b'", "'),                  # a space between entries
                      good.replace(b'actor', b'\\u0061ctor', 1),      # an escape for a plain letter
                      good.replace(b'"{', b'"\\/{', 1),               # an escape json accepts, never writes
                      good + b",1",                                   # not a string
                      good[:-1]):                                     # cut inside an entry
        assert read_export_entries(respelled, (0, len(respelled))) is None, respelled[:40]
    assert outline_export(RANGED.replace(b'"version":1', b'"version": 1')) is None
    assert outline_export(RANGED.replace(b'"entries":[', b'"entries" :[')) is None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.one_of(st.integers(0, len(RANGED) - 1),
                          st.sampled_from(ENTRY_EDGES).flatmap(lambda at: st.integers(at - 2, at + 4))),
       value=st.integers(0, 255))
def test_any_single_byte_change_of_an_export_read_in_ranges_is_found_as_in_the_whole_document(position, value):
    """Reading an export range by range finds what parsing it whole finds, for any one byte changed
    (bytes between entries, where ranges are cut and a changed quote or comma could shift entries,
    drawn more often): the same problems at the same entries, or the same BadInput."""
    if RANGED[position] == value:
        value ^= 0x01
    data = RANGED[:position] + bytes([value]) + RANGED[position + 1:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "EXPORT_BATCH_BYTES", SMALL_RANGES)
        found = bytes_codes(data)
    assert found == whole_document_codes(data) and found != [], (position, value)


def test_a_witness_signature_line_that_does_not_verify_fails():
    """A checkpoint co-signed by a witness (bob): with bob's line altered (one base64 character of
    his signature), the audit fails on it, for the export's checkpoint and for a --previous one."""
    from coldsign.ceremony.checkpoint import cosign, parse_checkpoint

    witnessed = cosign(checkpoint_of(LINES), BOB)
    good = audit_export(export_of(LINES, cp=witnessed), ROSTER)
    assert good.ok and [s.fingerprint for s in good.checkpoint_signers] == [ALICE.fingerprint, BOB.fingerprint]
    bob_line = next(line for line in witnessed.text.splitlines() if f" {BOB.fingerprint} " in line)
    b64 = bob_line.split()[-1]
    flipped = b64[:20] + ("A" if b64[20] != "A" else "B") + b64[21:]
    damaged = parse_checkpoint(witnessed.text.replace(bob_line, bob_line.replace(b64, flipped)))
    result = audit_export(export_of(LINES, cp=damaged), ROSTER)
    assert codes(result) == [(None, "bad-signature")]
    assert result.first_problem.message.startswith(f"the checkpoint's signature line by {BOB.fingerprint} does not "
                                                   "verify against the roster")
    before = audit_export(export_of(LINES), ROSTER, previous=damaged)
    assert codes(before) == [(None, "bad-signature")]
    assert before.first_problem.message.startswith(f"the previous checkpoint's signature line by {BOB.fingerprint}")


def test_a_withdrawal_in_the_mempool_has_not_reached_the_chain():
    """Against a chain source (which can say which block holds a transaction), paying as signed is
    not enough: in no block yet is `unconfirmed`; mined, each withdrawal carries its block."""
    txids = [txid_of(TXS[0]), txid_of(TXS[1])]
    waiting = audit_export(export_of(LINES), ROSTER, chain=Mined({txids[1]: 104}, *TXS), network=Network.REGTEST)
    assert codes(waiting) == [(SIGNED_AT, "unconfirmed")]
    assert waiting.first_problem.message.startswith(f"transaction {txids[0]} pays as signed but is in no block yet")
    assert [(w.chain, w.height) for w in waiting.withdrawals] == [("unconfirmed", None), ("on-chain", 104)]
    mined = audit_export(export_of(LINES), ROSTER, chain=Mined({txids[0]: 103, txids[1]: 104}, *TXS),
                         network=Network.REGTEST)
    assert mined.ok and [w.to_json()["height"] for w in mined.withdrawals] == [103, 104]
    from coldsign.ceremony.report import render_markdown

    assert "on-chain (block 103)" in render_markdown(mined)
