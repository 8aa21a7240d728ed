"""The signer writes its ceremony log: `log open` → `policy install` → `psbt sign` (signed, then refused)
→ `log close`, all through the CLI, then the log is read back and verified as an auditor would.

Fixture, in words: alice keeps the log in her home folder; her identity key (walletkit seed "alice",
SLIP-10 index 0) signs every entry. Wallet "vault" is walletkit's wpkh account of alice, registered
with her words. The PSBT is walletkit's honest withdrawal: coins at receive 0/0 and 0/1 of 100,000 sat
each, 150,000 sat to walletkit's EXTERNAL P2WPKH, change to 1/0 at 2 sat/vB (made-up previous
transactions: no chain needed). Policy "treasury" v1 on regtest: alice, bob and carol are treasurers
and admins, admins 2 of "admin"; address book "exchange" = the EXTERNAL address; one rule
"exchange-daily": wallet vault, destinations exchange, at most 1 BTC per tx, 2 treasurer approvals
(the initiator not counted). Installed first (in the ceremony) with alice's and bob's admin signatures.
Carol (the coordinator) requests; the first bundle is approved by alice and bob (allowed), the second,
for the same PSBT with a new nonce, by bob alone (refused: 1 of 2 approvals).
"""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
from typer.testing import CliRunner

import policykit
import walletkit as W
from coldsign import __version__
from coldsign.ceremony import merkle
from coldsign.ceremony.checkpoint import parse_checkpoint, verify_checkpoint
from coldsign.ceremony.log import CeremonyLog, canonical_json, installed_package_digest, verify_log_bytes
from coldsign.cli.main import app
from coldsign.keys.identity import IdentityKey

ALICE, BOB, CAROL = (policykit.IDENTITIES[name] for name in ("alice", "bob", "carol"))
EXTERNAL_ADDRESS = "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew"   # walletkit.EXTERNAL_SCRIPT on regtest
TIP = dict(tip_height=840_000, tip_hash="00" * 31 + "0a")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: str) -> dict:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def policy_text() -> str:
    return policykit.treasury_policy({"alice": ALICE, "bob": BOB, "carol": CAROL})


def write_bundle(path, psbt_bytes: bytes, approvers: list[IdentityKey]):
    return policykit.write_bundle(path, psbt_bytes, CAROL, approvers, memo="exchange top-up", **TIP)


@pytest.fixture()
def unsigned(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "withdrawal.psbt"
    path.write_bytes(psbt.serialize())
    return path, psbt


def show(home) -> list[dict]:
    return ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]


def assert_no_secret(text: str) -> None:
    from embit import bip32

    for name in W.COSIGNERS:
        words = W.mnemonic(name).split()
        assert " ".join(words[:3]) not in text and W.mnemonic(name) not in text
        root = bip32.HDKey.from_seed(W.seed(name).seed.reveal())
        assert root.to_base58() not in text
    assert "xprv" not in text and "tprv" not in text


def test_a_whole_ceremony_is_logged_signed_and_verifies(alice, unsigned, tmp_path):
    home, words = alice
    bob_words = W.write_mnemonic(tmp_path, "bob")
    path, psbt = unsigned
    raw = psbt.serialize()
    reviewed = ok("--home", home, "psbt", "inspect", path, "--wallet", "vault", "--json")

    opened = ok("--home", home, "log", "open", "--participants", "alice, bob", "--mnemonic-file", words, "--json")
    assert (opened["seq"], opened["actor"], opened["participants"]) == (0, ALICE.fingerprint, ["alice", "bob"])

    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text())
    sigs = []
    for name, words_file in (("alice", words), ("bob", bob_words)):
        sig = tmp_path / f"{name}.sig.json"
        ok("--home", tmp_path / f"{name}-admin", "policy", "approve-doc", policy, "--mnemonic-file", words_file,
           "--out", sig, "--json")
        sigs.append(sig)
    # The log is active: installing without the custodian's key is a usage error and installs nothing.
    result = invoke("--home", home, "policy", "install", policy, *sigs, "--first", "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["message"].startswith(f"this home has a ceremony log ({home}/ceremony)")
    assert "the log needs the custodian's key" in error["message"]
    assert not (home / "policy" / "installed.json").exists() and len(show(home)) == 1
    installed = ok("--home", home, "policy", "install", policy, *sigs, "--first", "--mnemonic-file", words, "--json")

    good, bad = tmp_path / "good.bundle", tmp_path / "bad.bundle"
    good_request = write_bundle(good, raw, [ALICE, BOB])
    bad_request = write_bundle(bad, raw, [BOB])
    signed_path = tmp_path / "signed.psbt"
    result = invoke("--home", home, "psbt", "sign", "-", "--request", good, "--mnemonic-file", words,
                    "--out", signed_path, "--json")
    assert result.exit_code == 0, result.output
    signed = json.loads(result.stdout)
    assert "Pays" in result.stderr and "PAYMENT" in result.stderr   # the review the log says was shown (stderr)
    assert signed["signed"] == [0, 1] and signed["policy"]["rule"] == "exchange-daily"

    refused_out = tmp_path / "refused.psbt"
    result = invoke("--home", home, "psbt", "sign", "-", "--request", bad, "--mnemonic-file", words,
                    "--out", refused_out, "--json")
    assert result.exit_code == 4, result.output
    refusal_error = json.loads(result.stdout)["error"]
    assert refusal_error["code"] == "policy-refused" and not refused_out.exists()

    closed = ok("--home", home, "log", "close", "--mnemonic-file", words, "--outcome", "1 withdrawal signed",
                "--json")
    assert closed["seq"] == 12 and closed["checkpoint"]["size"] == 13

    entries = show(home)
    assert [e["event"] for e in entries] == [
        "ceremony-opened", "policy-installed",
        "psbt-received", "review-shown", "approvals-checked", "policy-decision", "signatures-produced",
        "psbt-received", "review-shown", "approvals-checked", "policy-decision", "refusal",
        "ceremony-closed"]
    assert [e["seq"] for e in entries] == list(range(13))
    assert {e["actor"] for e in entries} == {ALICE.fingerprint}
    p = [e["payload"] for e in entries]

    assert p[0]["participants"] == ["alice", "bob"] and p[0]["software_version"] == __version__
    assert p[0]["package_sha256"] == installed_package_digest() and socket.gethostname() in p[0]["machine"]
    assert p[1] == {"policy_sha256": installed["digest"], "version": 1, "name": "treasury"}

    psbt_sha = hashlib.sha256(raw).hexdigest()
    summary = hashlib.sha256(canonical_json(reviewed)).hexdigest()        # what `psbt inspect --json` showed
    for received, shown in ((p[2], p[3]), (p[7], p[8])):
        assert received == {"sha256": psbt_sha, "source": "file", "bytes": len(raw)}
        assert shown == {"summary_sha256": summary}

    from coldsign.policy.request import request_digest

    assert p[4] == {"ok": True, "required": 2, "approvers": [ALICE.fingerprint, BOB.fingerprint],
                    "request_sha256": request_digest(good_request).hex()}
    assert p[5]["allowed"] is True
    assert (p[5]["policy_sha256"], p[5]["version"], p[5]["name"]) == (installed["digest"], 1, "treasury")
    assert {"rule": "exchange-daily: approvals", "ok": True,
            "message": "2 of 2 required approvals from role 'treasurer': alice, bob"} in p[5]["checks"]
    assert all(c["ok"] for c in p[5]["checks"])

    change = reviewed["outputs"][1]
    assert change["change"] is True and change["address"] == W.wallet("wpkh").address(1, 0)
    assert p[6] == {"psbt_sha256_before": psbt_sha,
                    "psbt_sha256_after": hashlib.sha256(signed_path.read_bytes()).hexdigest(),
                    "inputs": [0, 1], "txid": psbt.txid(),
                    "outputs": [{"address": EXTERNAL_ADDRESS, "amount_sat": 150_000, "label": "exchange"},
                                {"address": change["address"], "amount_sat": change["amount_sat"],
                                 "change": True}]}
    assert signed["sha256"] == p[6]["psbt_sha256_after"]                   # binary out: the file's digest

    assert p[9] == {"ok": False, "required": 2, "approvers": [BOB.fingerprint],
                    "request_sha256": request_digest(bad_request).hex()}
    assert p[10]["allowed"] is False
    failed = [c for c in p[10]["checks"] if not c["ok"]]
    assert [c["rule"] for c in failed] == ["exchange-daily: approvals"]
    assert p[11] == {"rule": "policy-refused: approvals", "message": refusal_error["message"]}
    assert "rule 'exchange-daily'" in p[11]["message"] and "1 of 2 required approvals" in p[11]["message"]
    assert p[12] == {"outcome": "1 withdrawal signed"}

    # The auditor's view: every entry verifies against the roster; a roster without alice's key does not.
    data = CeremonyLog(home).path.read_bytes()
    lines, problems = verify_log_bytes(data, [ALICE.public_key, BOB.public_key])
    assert len(lines) == 13 and problems == []
    _, strangers = verify_log_bytes(data, [BOB.public_key])
    assert [(q.index, q.code) for q in strangers] == [(i, "unknown-key") for i in range(13)]
    cp = parse_checkpoint((home / "ceremony" / "checkpoints" / "13.txt").read_text())
    assert cp.root == merkle.tree_hash(lines) and verify_checkpoint(cp, [ALICE.public_key]) == [ALICE.fingerprint]
    assert closed["checkpoint"]["text"] == cp.text

    assert_no_secret(data.decode("utf-8"))


def test_a_review_refusal_is_logged_signed_and_names_the_rule(alice, tmp_path):
    home, words = alice
    _, greedy = W.honest(payments=[(W.EXTERNAL_SCRIPT, 10_000)], fee_rate=800)
    path = tmp_path / "greedy.psbt"
    path.write_text(greedy.to_base64() + "\n")                           # base64: logged as the file's bytes
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    out = tmp_path / "signed.psbt"
    result = invoke("--home", home, "psbt", "sign", path, "--wallet", "vault", "--mnemonic-file", words,
                    "--out", out, "--json")
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert [d["code"] for d in error["details"]] == ["high-fee"] and not out.exists()

    entries = show(home)
    assert [e["event"] for e in entries] == ["ceremony-opened", "psbt-received", "review-shown", "refusal"]
    assert entries[1]["payload"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entries[3]["payload"] == {"rule": "refused: high-fee", "message": error["message"]}
    lines, problems = verify_log_bytes(CeremonyLog(home).path.read_bytes(), [ALICE.public_key])
    assert len(lines) == 4 and problems == []
    assert_no_secret(CeremonyLog(home).path.read_text() + result.output)


def test_a_seed_that_does_not_keep_the_log_cannot_write_to_it(alice, unsigned, tmp_path):
    """Bob's words on alice's signer: refused (seed-not-in-wallet) once the seed is read, and bob's identity
    key may not sign entries into alice's log (one log, one custodian): nothing is appended, and the error
    names both refusals."""
    home, words = alice
    ok("--home", home, "log", "open", "--participants", "alice,bob", "--mnemonic-file", words, "--json")
    result = invoke("--home", home, "psbt", "sign", unsigned[0], "--wallet", "vault", "--mnemonic-file",
                    W.write_mnemonic(tmp_path, "bob"), "--out", tmp_path / "signed.psbt", "--json")
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "log-owner"
    assert error["message"] == ("this seed holds no identity key of the custodian who keeps this ceremony log "
                                f"({ALICE.fingerprint})")
    assert error["hint"].startswith("the PSBT was refused first (seed-not-in-wallet: ")
    assert [e["event"] for e in show(home)] == ["ceremony-opened"]


def test_a_rotated_identity_keeps_signing_its_own_log(alice, unsigned, tmp_path):
    """A custodian who rotated to identity index 1 opens the log with it; psbt sign finds that key."""
    home, words = alice
    rotated = IdentityKey.from_seed(W.seed("alice"), 1)
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--index", "1", "--json")
    signed = invoke("--home", home, "psbt", "sign", unsigned[0], "--wallet", "vault", "--mnemonic-file", words,
                    "--out", tmp_path / "signed.psbt", "--json")
    assert signed.exit_code == 0, signed.output
    entries = show(home)
    assert {e["actor"] for e in entries} == {rotated.fingerprint} and len(entries) == 4
    _, problems = verify_log_bytes(CeremonyLog(home).path.read_bytes(), [rotated.public_key])
    assert problems == []


def test_a_refusal_that_cannot_be_logged_says_so(alice, tmp_path):
    """With the log active, a refused PSBT needs the seed to log the refusal: a missing words file is
    reported (exit 3) with the refusal in the hint, and nothing is appended."""
    home, words = alice
    _, greedy = W.honest(payments=[(W.EXTERNAL_SCRIPT, 10_000)], fee_rate=800)
    path = tmp_path / "greedy.psbt"
    path.write_bytes(greedy.serialize())
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    result = invoke("--home", home, "psbt", "sign", path, "--wallet", "vault", "--mnemonic-file",
                    tmp_path / "gone.txt", "--out", tmp_path / "signed.psbt", "--json")
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error["hint"].startswith("the PSBT was refused (refusing to sign: 1 rule(s) say no (high-fee)); "
                                    "logging the refusal needs the identity key of the seed")
    assert [e["event"] for e in show(home)] == ["ceremony-opened"]


def test_nothing_is_logged_without_an_active_log(alice, unsigned, tmp_path):
    home, words = alice
    out = tmp_path / "signed.psbt"
    ok("--home", home, "psbt", "sign", unsigned[0], "--wallet", "vault", "--mnemonic-file", words, "--out", out,
       "--json")
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text())
    sigs = []
    for name in ("alice", "bob"):
        sigs.append(tmp_path / f"{name}.sig.json")
        ok("--home", tmp_path / f"{name}-admin", "policy", "approve-doc", policy, "--mnemonic-file",
           W.write_mnemonic(tmp_path, name), "--out", sigs[-1], "--json")
    # Seed options are accepted but, with no log, never read: a words file that is not there is fine.
    ok("--home", home, "policy", "install", policy, *sigs, "--first", "--mnemonic-file", tmp_path / "gone.txt",
       "--json")
    _, greedy = W.honest(payments=[(W.EXTERNAL_SCRIPT, 10_000)], fee_rate=800)
    greedy_path = tmp_path / "greedy.psbt"
    greedy_path.write_bytes(greedy.serialize())
    request = tmp_path / "r.bundle"
    write_bundle(request, greedy.serialize(), [ALICE, BOB])
    result = invoke("--home", home, "psbt", "sign", "-", "--request", request, "--mnemonic-file",
                    tmp_path / "gone.txt", "--out", tmp_path / "no.psbt", "--json")
    assert result.exit_code == 4 and json.loads(result.stdout)["error"]["code"] == "policy-refused"
    assert not (home / "ceremony").exists()
    assert show(home) == []


def test_open_and_close_guard_the_ceremony(alice, tmp_path):
    home, words = alice
    result = invoke("--home", home, "log", "close", "--mnemonic-file", words, "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["code"] == "ceremony-not-open"
    result = invoke("--home", home, "log", "open", "--participants", "alice,,bob", "--mnemonic-file", words, "--json")
    assert result.exit_code == 2 and "not a comma-separated list" in json.loads(result.stdout)["error"]["message"]
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    result = invoke("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["message"]) == ("ceremony-open", "a ceremony is already open in this log "
                                                 "(entry 0); nothing was appended")
    human = invoke("--home", home, "log", "close", "--mnemonic-file", words)
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith("ceremony closed (entry 1); checkpoint for the paper record:\n"
                                   f"coldsign.ceremony/{ALICE.fingerprint}\n2\n")
    again = ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    assert again["seq"] == 2
    for command in ("open", "close"):
        result = invoke("log", command, "--help")
        assert result.exit_code == 0 and "Example: coldsign log" in result.stdout


def test_log_text_withholds_what_looks_like_a_mnemonic():
    from coldsign.ceremony.session import log_text, refusal_rule
    from coldsign.errors import Refused

    words = W.mnemonic("alice")
    withheld = log_text(f"bad: {words}")
    assert words not in withheld and withheld.startswith("(text withheld: it looks like words of a mnemonic; sha256 ")
    assert log_text("x" * 5_000) == "x" * 1_000
    assert refusal_rule(Refused("no", code="policy-refused", details=[{"code": "approvals"}, {"code": "fee"},
                                                                     {"code": "approvals"}])) == \
        "policy-refused: approvals, fee"
    assert refusal_rule(Refused("no", code="request-required")) == "request-required"
