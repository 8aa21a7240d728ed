"""The ceremony log: append/read round trip, torn tails (partial lines, a child killed mid-write),
the append lock across processes, payload rules, and the tamper basics found by `verify_entries`
with the right index and code.

Keys: the identity keys (SLIP-10, index 0) of the walletkit test seeds alice and bob (on the
roster) and carol (not on the roster, the forger).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from datetime import datetime, timezone

import pytest
import walletkit

from coldsign.ceremony import events
from coldsign.ceremony.log import (ZERO_HASH, CeremonyLog, EntryProblem, Problem, canonical_json, line_hash,
                                   installed_package_digest, parse_entry, verify_entries, verify_log_bytes)
from coldsign.errors import BadInput, Refused
from coldsign.keys.identity import IdentityKey

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
CAROL = IdentityKey.from_seed(walletkit.seed("carol"))
ROSTER = [ALICE.public_key, BOB.public_key]
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _fill(log: CeremonyLog, count: int, key=ALICE) -> None:
    for i in range(count):
        log.append(events.PSBT_RECEIVED, events.psbt_received(f"{i:064x}", "qr", 100 + i), key, now=WHEN)


def test_append_and_read_round_trip(tmp_path):
    log = CeremonyLog(tmp_path)
    first = log.append(events.CEREMONY_OPENED, events.ceremony_opened(
        [ALICE.fingerprint, "Bruno Souza"], "0.1.0", installed_package_digest(), "laptop ÿ-7"), ALICE, now=WHEN)
    second = log.append(events.CEREMONY_CLOSED, events.ceremony_closed("signed"), BOB, now=WHEN)
    raw = log.path.read_bytes()
    assert raw == first.line + b"\n" + second.line + b"\n"
    assert "ÿ".encode() in raw                                   # UTF-8, not \\u escapes
    doc = json.loads(first.line)
    assert list(doc) == sorted(doc) and doc["seq"] == 0 and doc["prev"] == ZERO_HASH
    assert doc["time"] == "2026-01-02T03:04:05Z" and doc["clock"] == "untrusted"
    assert doc["actor"] == ALICE.fingerprint and doc["actor_key"] == ALICE.public_hex
    assert json.loads(second.line)["prev"] == line_hash(first.line) and second.seq == 1
    assert [e.event for e in log.entries()] == ["ceremony-opened", "ceremony-closed"]
    assert verify_entries(log.read().lines, ROSTER) == []
    assert oct(log.path.stat().st_mode & 0o777) == "0o644"


def test_payload_rules(tmp_path):
    log = CeremonyLog(tmp_path)
    with pytest.raises(BadInput, match="unknown ceremony event 'coffee-break'"):
        log.append("coffee-break", {}, ALICE)
    with pytest.raises(BadInput, match="the payload of psbt-received has an invalid 'source'"):
        log.append(events.PSBT_RECEIVED, {"sha256": "00" * 32, "source": "email"}, ALICE)
    with pytest.raises(BadInput, match="the payload of refusal has an unknown field 'seed'"):
        log.append(events.REFUSAL, {"rule": "fee", "message": "x", "seed": "y"}, ALICE)
    with pytest.raises(BadInput, match="looks like a private key or mnemonic"):
        events.refusal("typo", walletkit.mnemonic("alice"))
    with pytest.raises(BadInput, match="the payload of exported has an invalid 'frames'"):
        events.exported("bbqr", 2.0)                            # floats never enter the log
    assert not log.path.exists()                               # nothing was written


def test_signatures_produced_payload_shape():
    payload = events.signatures_produced("aa" * 32, "bb" * 32, [0, 2], "cc" * 32, [("bcrt1qxyz", 5000)])
    assert payload["outputs"] == [{"address": "bcrt1qxyz", "amount_sat": 5000}]
    labelled = events.signatures_produced("aa" * 32, "bb" * 32, [0], "cc" * 32,
                                          [("bcrt1qpay", 5000, False, "exchange"), ("bcrt1qchg", 900, True, None)])
    assert labelled["outputs"] == [{"address": "bcrt1qpay", "amount_sat": 5000, "label": "exchange"},
                                   {"address": "bcrt1qchg", "amount_sat": 900, "change": True}]
    with pytest.raises(BadInput, match="invalid 'outputs'"):
        events.check_payload(events.SIGNATURES_PRODUCED, {**labelled, "outputs": [
            {"address": "bcrt1qpay", "amount_sat": 5000, "label": 7}]})
    with pytest.raises(BadInput, match="invalid 'inputs'"):
        events.signatures_produced("aa" * 32, "bb" * 32, [-1], "cc" * 32, [])


@pytest.mark.parametrize("tail", [b'{"actor":"da72', b"\x00\x00\x00", b'{"seq":5}\n'])
def test_torn_tail_is_detected_refused_and_repaired(tmp_path, tail):
    log = CeremonyLog(tmp_path)
    _fill(log, 3)
    whole = log.path.read_bytes()
    with open(log.path, "ab") as f:
        f.write(tail)
    with pytest.raises(Refused, match=r"the ceremony log ends in a torn write \(\d+ bytes at offset "
                                      rf"{len(whole)} are not a complete entry\); nothing was appended"):
        _fill(log, 1)
    assert log.path.read_bytes() == whole + tail               # the refusal wrote nothing
    _, problems = verify_log_bytes(whole + tail, ROSTER)
    assert problems[0].index == 3 and problems[0].code in ("torn", "not-canonical")
    aside, size = log.repair()
    assert aside.name == "log.jsonl.torn-1" and aside.read_bytes() == tail and size == len(tail)
    assert log.path.read_bytes() == whole
    assert log.repair() is None
    _fill(log, 1)
    assert verify_entries(log.read().lines, ROSTER) == []


def _write_half_then_hang(path: str, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, line[: len(line) // 2])
    os.fsync(fd)
    time.sleep(60)


def test_child_killed_mid_write_leaves_a_detected_torn_line(tmp_path):
    log = CeremonyLog(tmp_path)
    _fill(log, 2)
    line = json.dumps({"seq": 2, "the": "rest never arrives"}).encode()
    child = multiprocessing.get_context("fork").Process(target=_write_half_then_hang, args=(str(log.path), line))
    child.start()
    deadline = time.monotonic() + 10
    while not log.read().torn and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    with pytest.raises(Refused, match="torn write"):
        _fill(log, 1)
    assert log.repair()[1] == len(line) // 2
    assert len(log.read().lines) == 2


def _append_forever(home: str) -> None:
    log = CeremonyLog(home)
    while True:
        log.append(events.REFUSAL, events.refusal("fee", "x" * 900), ALICE)


def test_child_killed_while_appending_never_loses_a_complete_entry(tmp_path):
    child = multiprocessing.get_context("fork").Process(target=_append_forever, args=(str(tmp_path),))
    child.start()
    log = CeremonyLog(tmp_path)
    deadline = time.monotonic() + 10
    while (not log.path.exists() or len(log.read().lines) < 20) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    contents = log.read()
    assert len(contents.lines) >= 20
    assert verify_entries(contents.lines, ROSTER) == []       # every complete line is a good entry
    if contents.torn:                                          # a cut write is caught, never appended after
        with pytest.raises(Refused):
            _fill(log, 1)
        log.repair()
    _fill(log, 1)
    assert verify_entries(log.read().lines, ROSTER) == []


def _append_many(home: str, name: str, count: int) -> None:
    key = IdentityKey.from_seed(walletkit.seed(name))
    log = CeremonyLog(home)
    for _ in range(count):
        log.append(events.REFUSAL, events.refusal("fee", name * 180), key)


def test_two_processes_appending_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(str(tmp_path), name, 40)) for name in ("alice", "bob")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0, 0]
    contents = CeremonyLog(tmp_path).read()
    assert len(contents.lines) == 80 and not contents.torn
    assert verify_entries(contents.lines, ROSTER) == []        # seq 0..79, one unbroken chain


# --- tamper basics ------------------------------------------------------------------------------

@pytest.fixture()
def lines(tmp_path):
    log = CeremonyLog(tmp_path)
    _fill(log, 4, ALICE)
    _fill(log, 2, BOB)
    return log.read().lines


def first(problems: list[Problem]) -> tuple[int | None, str]:
    return problems[0].index, problems[0].code


def test_payload_byte_edit(lines):
    lines[2] = lines[2].replace(b'"bytes":102', b'"bytes":902')
    problems = verify_entries(lines, ROSTER)
    assert first(problems) == (2, "bad-signature")
    assert (3, "broken-chain") in [(p.index, p.code) for p in problems]


def test_signature_change(lines):
    doc = json.loads(lines[1])
    doc["sig"] = ("0" if doc["sig"][0] != "0" else "1") + doc["sig"][1:]
    lines[1] = canonical_json(doc)
    assert first(verify_entries(lines, ROSTER)) == (1, "bad-signature")


def test_dropped_entry(lines):
    del lines[3]
    problems = verify_entries(lines, ROSTER)
    assert [(p.index, p.code) for p in problems] == [(3, "seq-gap"), (3, "broken-chain")]
    assert problems[0].message == "seq is 4, expected 3"


def test_reordered_entries(lines):
    lines[1], lines[2] = lines[2], lines[1]
    assert first(verify_entries(lines, ROSTER)) == (1, "seq-gap")


def test_truncated_tail_is_torn(lines):
    data = b"\n".join(lines) + b"\n"
    _, problems = verify_log_bytes(data[:-40], ROSTER)
    assert problems == [Problem(5, "torn", f"the log ends in {len(lines[5]) - 39} bytes without a newline "
                                "(a torn write)")]


def test_forged_entry_by_a_key_not_on_the_roster(lines):
    from coldsign.ceremony.log import make_entry

    forged = make_entry(6, line_hash(lines[5]), events.REFUSAL, events.refusal("fee", "ok"), CAROL, WHEN)
    problems = verify_entries(lines + [forged], ROSTER)
    assert problems == [Problem(6, "unknown-key", f"signed by {CAROL.fingerprint}, a key that is not on the roster")]


def test_not_canonical_lines(lines):
    spaced = json.dumps(json.loads(lines[0]), sort_keys=True).encode()
    assert first(verify_entries([spaced] + lines[1:], ROSTER)) == (0, "not-canonical")
    duplicated = lines[0][:-1] + b',"seq":0}'
    with pytest.raises(EntryProblem, match="not in canonical JSON form"):
        parse_entry(duplicated)
    with pytest.raises(EntryProblem, match="not valid JSON"):
        parse_entry(b"{not json")


def test_verify_from_the_middle(lines):
    assert verify_entries(lines[3:], ROSTER, first_seq=3, prev_hash=line_hash(lines[2])) == []
    assert first(verify_entries(lines[3:], ROSTER, first_seq=3)) == (3, "broken-chain")


def test_large_logs_are_checked_in_worker_processes(tmp_path):
    from coldsign.ceremony.log import VERIFY_BATCH, make_entry

    prev, lines_ = ZERO_HASH, []
    for seq in range(VERIFY_BATCH * 2 + 5):
        line = make_entry(seq, prev, events.REVIEW_SHOWN, events.review_shown("ab" * 32), ALICE, WHEN)
        lines_.append(line)
        prev = line_hash(line)
    doc = json.loads(lines_[VERIFY_BATCH + 7])
    doc["sig"] = "00" * 64
    lines_[VERIFY_BATCH + 7] = canonical_json(doc)
    problems = verify_entries(lines_, ROSTER)
    assert [(p.index, p.code) for p in problems] == [(VERIFY_BATCH + 7, "bad-signature"),
                                                      (VERIFY_BATCH + 8, "broken-chain")]


def test_lines_the_workers_read_themselves_check_as_lines_given(lines):
    """`check_read_lines`: each worker reads its own batch (here two lines of the log, one of them
    edited, so that three batches go to the forked workers) from its span of bytes, and the lines come
    back through shared memory; the check is `check_lines`'s. A batch that cannot be read makes the
    whole check None, wherever it is."""
    from coldsign.ceremony.log import check_lines, check_read_lines

    lines[3] = lines[3].replace(b'"bytes":103', b'"bytes":903')
    batches = [lines[lo:lo + 2] for lo in range(0, len(lines), 2)]
    spans, at = [], 0                                      # where each batch is in b"".join(lines)
    for batch in batches:
        spans.append((at, at + len(b"".join(batch))))
        at = spans[-1][1]
    read = check_read_lines(batches.__getitem__, spans, ROSTER, first_seq=0)
    assert read == check_lines(lines, ROSTER) and read.lines == lines
    assert [(p.index, p.code) for p in read.problems] == [(3, "bad-signature"), (4, "broken-chain")]
    for unreadable in range(len(batches)):
        assert check_read_lines(lambda n: None if n == unreadable else batches[n], spans, ROSTER) is None

# --- review findings ------------------------------------------------------------------------------

def test_an_escaped_lone_surrogate_is_not_canonical_not_a_crash(lines, tmp_path):
    """A line whose payload text is the JSON escape of a lone surrogate (\\ud800) decodes to a
    string UTF-8 cannot encode: the line is not an entry (not-canonical), for the auditor and for
    the writer that finds it at the end of its log (a torn tail it refuses to append after)."""
    edited = make_refusal_line(5, lines[4])
    bad = edited.replace(b'"message":"fee 90000 sat"', b'"message":"\\ud800"')
    assert bad != edited
    with pytest.raises(EntryProblem, match="not in canonical JSON form|invalid 'message'"):
        parse_entry(bad)
    problems = verify_entries(lines[:5] + [bad], ROSTER)
    assert [(p.index, p.code) for p in problems] == [(5, "not-canonical")]
    log = CeremonyLog(tmp_path / "home")
    log.folder.mkdir(parents=True)
    log.path.write_bytes(b"".join(line + b"\n" for line in lines[:5] + [bad]))
    assert log.read().torn == bad + b"\n"
    with pytest.raises(Refused, match="torn write"):
        log.append(events.CEREMONY_CLOSED, events.ceremony_closed(), ALICE, now=WHEN)


def make_refusal_line(seq: int, previous: bytes) -> bytes:
    from coldsign.ceremony.log import make_entry

    return make_entry(seq, line_hash(previous), events.REFUSAL, events.refusal("max-fee", "fee 90000 sat"), ALICE, WHEN)


def test_payload_text_must_be_encodable_utf8():
    with pytest.raises(BadInput, match="invalid 'message'"):
        events.refusal("max-fee", "fee \udcff")
    from coldsign.ceremony.session import log_text

    assert log_text("path \udcff.psbt") == "path ?.psbt"


def test_a_batch_withdrawal_with_the_most_outputs_a_psbt_may_have_is_logged(tmp_path):
    """psbt sign logs signatures-produced AFTER the ledger has claimed the request: an entry too
    large to write would burn the request and leave the PSBT unsigned. The payload rules allow the
    PSBT output limit (10,000 outputs); an entry with that many P2WSH outputs must fit."""
    from embit import bech32

    from coldsign.limits import LIMITS

    outputs = [(bech32.encode("bcrt", 0, n.to_bytes(32, "big")), 100_000 + n, n == 0)
               for n in range(LIMITS.psbt_max_outputs)]
    payload = events.signatures_produced("11" * 32, "22" * 32, list(range(50)), "ab" * 32, outputs)
    log = CeremonyLog(tmp_path)
    log.append(events.REVIEW_SHOWN, events.review_shown("cd" * 32), ALICE, now=WHEN)
    entry = log.append(events.SIGNATURES_PRODUCED, payload, ALICE, now=WHEN)
    assert len(entry.line) > 900_000 and entry.seq == 1
    after = log.append(events.CEREMONY_CLOSED, events.ceremony_closed("signed"), ALICE, now=WHEN)
    assert after.seq == 2 and after.prev == line_hash(entry.line)
    assert verify_entries(log.read().lines, ROSTER) == []
