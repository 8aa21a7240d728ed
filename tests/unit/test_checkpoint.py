"""Checkpoints (sign, parse, verify, witness co-signature) and the export document (build, verify,
incremental with a consistency proof; forks, rollbacks and replays caught).

Keys: identity keys of the walletkit seeds alice (the log's signer), bob (a witness), carol
(not on the roster).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import walletkit

from coldsign.ceremony import events, merkle
from coldsign.ceremony.checkpoint import (build_export, cosign, origin_for, parse_checkpoint, parse_export,
                                          sign_checkpoint, verify_checkpoint, verify_export)
from coldsign.ceremony.log import ZERO_HASH, line_hash, make_entry
from coldsign.errors import BadInput, Refused
from coldsign.keys.identity import IdentityKey

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
CAROL = IdentityKey.from_seed(walletkit.seed("carol"))
ROSTER = [ALICE.public_key, BOB.public_key]
WHEN = datetime(2026, 1, 2, tzinfo=timezone.utc)
ORIGIN = origin_for(ALICE.fingerprint)


def make_lines(count: int, start: int = 0, prev: str = ZERO_HASH, note: str = "fee") -> list[bytes]:
    lines = []
    for seq in range(start, start + count):
        line = make_entry(seq, prev, events.REFUSAL, events.refusal(note, f"refusal {seq}"), ALICE, WHEN)
        lines.append(line)
        prev = line_hash(line)
    return lines


def checkpoint_of(lines, key=ALICE):
    return sign_checkpoint(ORIGIN, len(lines), merkle.tree_hash(lines), key)


def test_sign_parse_verify_witness():
    lines = make_lines(5)
    cp = checkpoint_of(lines)
    body, sig = cp.text.split("\n\n")
    assert body == f"{ORIGIN}\n5\n{__import__('base64').b64encode(merkle.tree_hash(lines)).decode()}"
    assert sig.startswith(f"\u2014 {ALICE.fingerprint} ") and sig.endswith("\n") and len(cp.text) < 250
    parsed = parse_checkpoint(cp.text)
    assert parsed == cp and parsed.text == cp.text
    assert verify_checkpoint(parsed, ROSTER) == [ALICE.fingerprint]
    witnessed = cosign(parsed, BOB)
    assert verify_checkpoint(parse_checkpoint(witnessed.text), ROSTER) == [ALICE.fingerprint, BOB.fingerprint]
    assert verify_checkpoint(witnessed, [BOB.public_key]) == [BOB.fingerprint]
    assert verify_checkpoint(cosign(cp, CAROL), ROSTER) == [ALICE.fingerprint]   # unknown key: ignored
    with pytest.raises(Refused, match=f"identity {BOB.fingerprint} has already signed this checkpoint"):
        cosign(witnessed, BOB)


def test_signature_over_another_body_does_not_count():
    cp = checkpoint_of(make_lines(3))
    moved = parse_checkpoint(cp.text.replace("\n3\n", "\n4\n"))
    assert verify_checkpoint(moved, ROSTER) == []
    renamed = parse_checkpoint(cp.text.replace(f"\u2014 {ALICE.fingerprint}", f"\u2014 {BOB.fingerprint}"))
    assert verify_checkpoint(renamed, ROSTER) == []


@pytest.mark.parametrize("text, message", [
    ("origin\n3\nAAAA\n", "no blank line between the body and the signatures"),
    ("a b\n3\n" + "A" * 43 + "=\n\n\u2014 x AAAA\n", "line 1 (origin) is empty or holds spaces"),
    ("o\n03\n" + "A" * 43 + "=\n\n\u2014 x AAAA\n", "line 2 (size) is not a whole number in decimal"),
    ("o\n3\nAAAA\n\n\u2014 x AAAA\n", "line 3 (root) is not base64 of 32 bytes"),
    ("o\n3\n" + "A" * 43 + "=\n\n- x AAAA\n", "line 5 is not a signature line"),
    ("o\n3\n" + "A" * 43 + "=\n\n\u2014 x AAAA\n", "line 5 is not '\u2014 name base64(key id + signature)'"),
    ("o\n3\n" + "A" * 43 + "=\n\n", "the last signature line does not end with a newline"),
])
def test_parse_errors(text, message):
    with pytest.raises(BadInput) as info:
        parse_checkpoint(text)
    assert info.value.message.startswith(f"not a coldsign checkpoint: {message}")
    assert info.value.code == "checkpoint"


def test_whole_export_round_trip():
    lines = make_lines(9)
    doc = json.loads(json.dumps(build_export(lines, 0, checkpoint_of(lines))))
    assert doc["format"] == "coldsign-log-export" and doc["version"] == 1 and doc["origin"] == ORIGIN
    assert doc["from_size"] == 0 and doc["to_size"] == 9 and doc["consistency_proof"] == []
    check = verify_export(parse_export(json.dumps(doc)), ROSTER)
    assert check.ok and check.signers == [ALICE.fingerprint]


def test_incremental_export_with_consistency_proof():
    lines = make_lines(13)
    old = checkpoint_of(lines[:5])
    doc = build_export(lines, 5, checkpoint_of(lines))
    assert len(doc["entries"]) == 8 and doc["prev_hash"] == line_hash(lines[4])
    proof = [bytes.fromhex(h) for h in doc["consistency_proof"]]
    assert merkle.verify_consistency(5, 13, old.root, merkle.tree_hash(lines), proof)
    assert verify_export(doc, ROSTER, previous=old).ok
    assert verify_export(build_export(lines, 0, checkpoint_of(lines)), ROSTER, previous=old).ok


def codes(check):
    return [(p.index, p.code) for p in check.problems]


def test_fork_after_a_checkpoint_is_inconsistent():
    lines = make_lines(8)
    old = checkpoint_of(lines[:6])
    forked = lines[:4] + make_lines(4, 4, line_hash(lines[3]), note="rewritten")   # entries 4.. rewritten
    check = verify_export(build_export(forked, 6, checkpoint_of(forked)), ROSTER, previous=old)
    assert codes(check) == [(None, "inconsistent")] and check.problems[0].message.startswith("fork:")
    whole = verify_export(build_export(forked, 0, checkpoint_of(forked)), ROSTER, previous=old)
    assert codes(whole) == [(None, "inconsistent")]


def test_replayed_old_checkpoint_is_a_rollback():
    lines = make_lines(8)
    newest = checkpoint_of(lines)
    replay = build_export(lines[:5], 0, checkpoint_of(lines[:5]))       # an old state shown again
    check = verify_export(replay, ROSTER, previous=newest)
    assert codes(check) == [(None, "inconsistent")] and check.problems[0].message.startswith("rollback:")


def test_export_tampering_is_found():
    lines = make_lines(6)
    doc = build_export(lines, 0, checkpoint_of(lines))
    dropped = dict(doc, entries=doc["entries"][:-1])                     # truncated: root no longer matches
    assert (None, "bad-root") in codes(verify_export(dropped, ROSTER))
    edited = dict(doc, entries=[doc["entries"][0].replace("refusal 0", "refusal 9")] + doc["entries"][1:])
    assert codes(verify_export(edited, ROSTER))[0] == (0, "bad-signature")
    by_carol = build_export(lines, 0, checkpoint_of(lines, CAROL))
    assert codes(verify_export(by_carol, ROSTER)) == [(None, "bad-signature")]
    bad_proof = build_export(lines, 2, checkpoint_of(lines))
    bad_proof["consistency_proof"][0] = "00" * 32
    assert codes(verify_export(bad_proof, ROSTER)) == [(None, "inconsistent")]


def test_every_single_byte_change_of_an_export_fails():
    lines = make_lines(3)
    text = json.dumps(build_export(lines, 0, checkpoint_of(lines)), ensure_ascii=False)
    changed = 0
    for i in range(0, len(text), 7):
        flipped = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
        try:
            doc = parse_export(flipped)
        except BadInput:
            changed += 1
            continue
        if doc == json.loads(text):
            continue                                  # e.g. a change inside ignored whitespace
        assert not verify_export(doc, ROSTER).ok, i
        changed += 1
    assert changed > 100


def test_build_export_refuses_a_stale_or_foreign_checkpoint():
    lines = make_lines(4)
    with pytest.raises(Refused, match="the checkpoint covers 3 entries but the log has 4"):
        build_export(lines, 0, checkpoint_of(lines[:3]))
    with pytest.raises(Refused, match="the checkpoint's root is not the root of this log"):
        build_export(lines, 0, checkpoint_of(make_lines(4, note="other")))


# --- review findings ------------------------------------------------------------------------------

def test_a_signer_counts_once_however_many_times_its_line_is_repeated():
    cp = cosign(checkpoint_of(make_lines(3)), BOB)
    alice_line = cp.signatures[0].line()
    doubled = parse_checkpoint(cp.text + alice_line + alice_line)
    assert len(doubled.signatures) == 4
    assert verify_checkpoint(doubled, ROSTER) == [ALICE.fingerprint, BOB.fingerprint]


def test_an_export_checkpointed_by_a_witness_alone_does_not_verify():
    """bob signs a checkpoint of alice's (cut) log himself, under alice's origin or under his own:
    the log owner's signature is what makes a checkpoint, a witness's only adds to it."""
    lines = make_lines(6)[:4]
    under_alice = sign_checkpoint(ORIGIN, 4, merkle.tree_hash(lines), BOB)
    check = verify_export(build_export(lines, 0, under_alice), ROSTER)
    assert codes(check) == [(None, "bad-signature")]
    assert check.problems[0].message == (f"the log's own key ({ORIGIN}) did not sign the checkpoint; only "
                                         "witnesses did")
    for origin in (origin_for(BOB.fingerprint), "evil.example/log"):
        cp = sign_checkpoint(origin, 4, merkle.tree_hash(lines), BOB)
        assert not verify_export(build_export(lines, 0, cp), ROSTER).ok, origin
    assert verify_export(build_export(lines, 0, cosign(checkpoint_of(lines), BOB)), ROSTER).ok
