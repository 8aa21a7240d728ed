"""`coldsign request create | approve | verify` as users run them: files, QR frames, exit codes, JSON.

Fixture, in words: the PSBT is walletkit's honest wpkh withdrawal from alice's wallet "vault" (coins
at 0/0 and 0/1 of 100,000 sat, 150,000 sat to an external P2WPKH, change to 1/0, 2 sat/vB). Carol
is the coordinator (requester, identity index 0); alice and bob approve with their identity keys.
Each person has a home folder; alice's and bob's register "vault" (alice's seed holds its key; bob
registers the descriptor without a seed). Requests are for regtest; the chain tip is given with
--tip-height/--tip-hash unless the test asks the embedded chain (regtest_home: 101 blocks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.keys.identity import IdentityKey, fingerprint_of
from coldsign.policy import request as R

TIP = ["--tip-height", "840000", "--tip-hash", "00" * 31 + "0A"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def people(tmp_path):
    """name -> (home, words file); alice and bob have "vault" registered."""
    found = {}
    for name in W.COSIGNERS:
        home = tmp_path / name
        words = W.write_mnemonic(tmp_path, name)
        found[name] = (home, words)
    for name in ("alice", "bob"):
        result = invoke("--home", str(found[name][0]), "--network", "regtest", "wallet", "register", "--name",
                        "vault", "--descriptor", W.descriptor("wpkh"))
        assert result.exit_code == 0, result.output
    return found


@pytest.fixture()
def unsigned(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "withdrawal.psbt"
    path.write_text(psbt.to_base64() + "\n")       # base64 in; the bundle carries the binary form
    return path, psbt


def identity(name: str) -> IdentityKey:
    return IdentityKey.from_seed(W.seed(name), 0)


def create(people, unsigned, out, *extra: str):
    home, words = people["carol"]
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), "--expires", "2h", "--memo", "top-up",
                    "--out", str(out), *extra, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def approve(people, name, bundle, *extra: str):
    home, words = people[name]
    return invoke("--home", str(home), "request", "approve", str(bundle), "--mnemonic-file", str(words),
                  "--yes", *extra, "--json")


def verify(people, bundle, *extra: str):
    return invoke("--home", str(people["carol"][0]), "request", "verify", str(bundle), *extra, "--json")


def test_create_approve_twice_verify(people, unsigned, tmp_path):
    bundle = tmp_path / "withdrawal.request.json"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    doc = create(people, unsigned, bundle, *TIP)
    carol = identity("carol")
    raw = unsigned[1].serialize()
    assert doc["psbt_sha256"] == hashlib.sha256(raw).hexdigest()
    assert doc["wallet"] == "vault" and doc["memo"] == "top-up"
    assert (doc["tip_height"], doc["tip_hash"], doc["tip_from"]) == (840000, "00" * 31 + "0a", "given")
    assert doc["requester"] == carol.public_hex and doc["requester_fingerprint"] == carol.fingerprint
    created = R.parse_time(doc["created"])
    assert before <= created <= datetime.now(timezone.utc)
    assert R.parse_time(doc["expires"]) - created == timedelta(hours=2)
    assert doc["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    decoded = R.decode_bundle(bundle.read_bytes())
    assert decoded.psbt == raw and decoded.approvals == () and R.verify_bundle(decoded).ok
    assert R.request_digest(decoded.request).hex() == doc["request_digest"]

    for name in ("alice", "bob"):
        result = approve(people, name, bundle)
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["added"] is True and out["approver"] == identity(name).public_hex
        assert out["wallet_registered"] is True
        assert [o["change"] for o in out["review"]["outputs"]] == [False, True]   # reviewed against vault
        assert "Transaction" in result.stderr                                     # the review, on stderr
    again = approve(people, "alice", bundle)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["added"] is False

    result = verify(people, bundle)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["psbt_matches"] is True and report["expired"] is False
    assert report["requester"]["fingerprint"] == carol.fingerprint and report["requester"]["valid"] is True
    assert [(a["fingerprint"], a["valid"], a["name"]) for a in report["approvals"]] == \
        [(identity("alice").fingerprint, True, None), (identity("bob").fingerprint, True, None)]
    assert report["policy"] is None and report["problems"] == []


def test_create_asks_the_embedded_chain_for_the_tip(people, unsigned, regtest_home, tmp_path):
    from coldsign.chain.regtest_source import RegtestSource

    with RegtestSource(regtest_home) as source:
        tip = source.tip()
    words = people["carol"][1]
    result = invoke("--home", str(regtest_home), "--network", "regtest", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), "--out", str(tmp_path / "b.json"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["tip_height"], doc["tip_hash"]) == (101, tip.block_hash) and tip.height == 101
    assert R.parse_time(doc["expires"]) - R.parse_time(doc["created"]) == timedelta(hours=24)   # the default


def test_human_output_and_default_out(people, unsigned):
    home, words = people["carol"]
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), *TIP)
    assert result.exit_code == 0, result.output
    out = unsigned[0].with_name("withdrawal.psbt.request.json")
    assert out.is_file() and f"wrote {out}" in result.stdout
    assert identity("carol").fingerprint in result.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--tip-height", "5"], 2, "give --tip-height and --tip-hash together"),
    (["--tip-height", "5", "--tip-hash", "ab"], 3, "is not a block hash (64 hex digits)"),
    (["--expires", "2 hours", *TIP], 3, "'2 hours' is not a duration such as 30m, 2h or 7d"),
    (["--expires", "100d", *TIP], 3, "outside 1 minute to 90 days"),
    (["--memo", "a\x1bb", *TIP], 3, "--memo must be at most 500 printable characters"),
    (["--cycles", "1", *TIP], 2, "--cycles goes with --qr"),
])
def test_create_refuses_bad_options(people, unsigned, tmp_path, args, code, message):
    home, words = people["carol"]
    out = tmp_path / "b.json"
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), "--out", str(out), *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not out.exists()


def test_create_on_mainnet_without_a_source_says_so(people, unsigned, tmp_path):
    home, words = people["carol"]
    result = invoke("--home", str(home), "--network", "main", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), "--out", str(tmp_path / "b.json"))
    assert result.exit_code == 2, result.output
    assert "no chain source for --network main" in result.stderr


POLICY = """
format = "coldsign-policy/1"
name = "treasury"
version = 1
network = "regtest"
[admins]
threshold = 2
[[approvers]]
name = "Alice Ames"
key = "{alice}"
roles = ["treasurer", "admin"]
[[approvers]]
name = "Bob Brandt"
key = "{bob}"
roles = ["treasurer", "admin"]
[[rules]]
name = "vault-any"
wallets = ["vault"]
destinations = "any"
[rules.approvals]
threshold = 2
group = "treasurer"
"""


def test_verify_names_signers_from_a_policy_file(people, unsigned, tmp_path):
    """alice and bob are in the policy (treasurer, admin); carol, the requester, is not."""
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    for name in ("alice", "bob"):
        assert approve(people, name, bundle).exit_code == 0
    policy = tmp_path / "treasury.toml"
    policy.write_text(POLICY.format(alice=identity("alice").public_hex, bob=identity("bob").public_hex))
    result = verify(people, bundle, "--policy", str(policy))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["policy"] == str(policy)
    assert (report["requester"]["name"], report["requester"]["roles"]) == (None, [])
    assert [(a["name"], a["roles"], a["valid"]) for a in report["approvals"]] == \
        [("Alice Ames", ["admin", "treasurer"], True), ("Bob Brandt", ["admin", "treasurer"], True)]
    human = invoke("--home", str(people["carol"][0]), "request", "verify", str(bundle), "--policy", str(policy))
    assert human.exit_code == 0, human.output
    flat = " ".join(human.stdout.split())
    assert "Alice Ames" in flat and "admin, treasurer" in flat and "not in the policy" in flat
    assert "Every signature verifies." in human.stdout

    missing = verify(people, bundle, "--policy", str(tmp_path / "missing.toml"))
    assert missing.exit_code == 3 and "policy file not found" in missing.stderr


def _rewrite(path, change):
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))


def test_tampered_bundles_exit_5(people, unsigned, tmp_path):
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    assert approve(people, "alice", bundle).exit_code == 0

    memo = tmp_path / "memo.json"
    memo.write_bytes(bundle.read_bytes())
    _rewrite(memo, lambda d: d["request"].update(memo="pay the attacker"))
    result = verify(people, memo)
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)                           # exactly one JSON document on stdout
    assert report["ok"] is False and report["requester"]["valid"] is False
    assert report["approvals"][0]["valid"] is False              # the approval covered the old memo
    assert "the requester's signature does not verify" in result.stderr
    refused = approve(people, "bob", memo)
    assert refused.exit_code == 5 and "the request bundle is not authentic" in refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "bad-requester-signature"

    other = W.honest(fee_rate=3)[1].serialize()
    swapped = tmp_path / "psbt.json"
    swapped.write_bytes(bundle.read_bytes())
    import base64
    _rewrite(swapped, lambda d: d.update(psbt=base64.b64encode(other).decode()))
    result = verify(people, swapped)
    assert result.exit_code == 5
    report = json.loads(result.stdout)
    assert (report["requester"]["valid"], report["psbt_matches"], report["ok"]) == (True, False, False)
    before = swapped.read_bytes()
    refused = approve(people, "bob", swapped)
    assert refused.exit_code == 5 and "the PSBT hashes to" in refused.stderr
    assert swapped.read_bytes() == before                        # nothing written

    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    result = verify(people, broken)
    assert result.exit_code == 3 and "bundle: missing field 'format'" in result.stderr


def test_approve_refuses_an_expired_request(people, unsigned, tmp_path):
    carol = identity("carol")
    raw = unsigned[1].serialize()
    past = datetime.now(timezone.utc) - timedelta(hours=3)
    request = R.new_request(raw, wallet="vault", requester=carol.public_key, now=past, lifetime_seconds=7200,
                            tip_height=1, tip_hash="00" * 32)
    bundle = tmp_path / "old.json"
    bundle.write_bytes(R.encode_bundle(R.bundle_of(request, carol, raw)))
    before = bundle.read_bytes()
    result = approve(people, "alice", bundle)
    assert result.exit_code == 4, result.output
    assert f"the request expired at {request.expires}; nothing was approved" in result.stderr
    assert bundle.read_bytes() == before
    result = verify(people, bundle)
    assert result.exit_code == 0 and json.loads(result.stdout)["expired"] is True


def test_approve_needs_a_terminal_or_yes(people, unsigned, tmp_path):
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    home, words = people["alice"]
    result = invoke("--home", str(home), "request", "approve", str(bundle), "--mnemonic-file", str(words))
    assert result.exit_code == 2 and "approving needs confirmation and there is no terminal" in result.stderr
    assert R.decode_bundle(bundle.read_bytes()).approvals == ()


def test_approve_without_the_wallet_registered_says_so(people, unsigned, tmp_path):
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    out = tmp_path / "approved.json"
    home, words = people["carol"]                                # carol has no "vault" registration
    result = invoke("--home", str(home), "--network", "regtest", "request", "approve", str(bundle),
                    "--mnemonic-file", str(words), "--yes", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["wallet_registered"] is False and doc["review"]["wallet"] is None
    assert "Wallet vault is not registered here" in result.stderr
    assert R.decode_bundle(bundle.read_bytes()).approvals == ()   # --out leaves the original alone
    assert [fingerprint_of(a.approver) for a in R.decode_bundle(out.read_bytes()).approvals] == \
        [identity("carol").fingerprint]


@pytest.mark.parametrize("fmt, qr_type", [("bbqr", "json"), ("ur", "bytes")])
def test_bundle_through_qr_frames(people, unsigned, tmp_path, fmt, qr_type):
    """create --frames-dir → `qr decode --images` gives back the same bundle bytes → approve ×2 → verify."""
    bundle = tmp_path / "b.json"
    frames = tmp_path / "frames"
    doc = create(people, unsigned, bundle, *TIP, "--frames-dir", str(frames), "--qr-format", fmt)
    assert doc["qr"]["format"] == fmt and doc["qr"]["type"] == qr_type and doc["qr"]["frames"] >= 2
    pngs = sorted(frames.glob("frame-*.png"))
    assert len(pngs) == doc["qr"]["frames"] and (frames / "frames.txt").is_file()
    scanned = tmp_path / "scanned.json"
    result = invoke("qr", "decode", "--images", str(frames / "frame-*.png"), "--out", str(scanned), "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert (got["format"], got["type"]) == (fmt, qr_type)
    assert scanned.read_bytes() == bundle.read_bytes() and got["sha256"] == doc["sha256"]
    for name in ("alice", "bob"):
        assert approve(people, name, scanned).exit_code == 0
    result = verify(people, scanned)
    assert result.exit_code == 0 and len(json.loads(result.stdout)["approvals"]) == 2


def test_frames_dir_with_old_frames_is_refused_before_anything(people, unsigned, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frames.txt").write_text("old\n")
    home, words = people["carol"]
    out = tmp_path / "b.json"
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]),
                    "--wallet", "vault", "--mnemonic-file", str(words), "--out", str(out), *TIP,
                    "--frames-dir", str(frames))
    assert result.exit_code == 2 and "already holds frames" in result.stderr
    assert not out.exists()


def test_bundle_decoded_by_library_equals_file(people, unsigned, tmp_path):
    """What the CLI writes is encode_bundle's canonical form: decode + encode gives the same bytes."""
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    assert approve(people, "bob", bundle).exit_code == 0
    data = bundle.read_bytes()
    decoded = R.decode_bundle(data)
    assert R.encode_bundle(decoded) == data
    assert replace(decoded, approvals=()) != decoded


def _create_qr(people, unsigned, out, env, *extra):
    home, words = people["carol"]
    return CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "request", "create",
                                    str(unsigned[0]), "--wallet", "vault", "--mnemonic-file", str(words), *TIP,
                                    "--out", str(out), "--qr", "--cycles", "1", *extra, "--json"], env=env)


def test_qr_in_the_terminal(people, unsigned, tmp_path):
    out = tmp_path / "b.json"
    result = _create_qr(people, unsigned, out, {"COLUMNS": "240", "LINES": "140"}, "--qr-format", "ur")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    shown = doc["qr_shown"]
    assert (shown["format"], shown["type"], shown["stopped_by"]) == ("ur", "bytes", "cycles")
    assert shown["frames_shown"] >= 1 and out.is_file()


def test_qr_in_a_terminal_too_small_writes_nothing(people, unsigned, tmp_path):
    out = tmp_path / "b.json"
    result = _create_qr(people, unsigned, out, {"COLUMNS": "50", "LINES": "30"})
    assert result.exit_code == 7, result.output
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "the terminal is 50x30 characters; a version-11 QR code needs 69x36"
    assert not out.exists()


def test_every_command_has_help_with_an_example():
    for command in ("create", "approve", "verify"):
        result = invoke("request", command, "--help")
        assert result.exit_code == 0 and "Example: coldsign" in result.stdout


@pytest.mark.parametrize("answer, status, added", [(b"y\r", 0, True), (b"n\r", 4, False)])
def test_approve_asks_on_a_terminal(people, unsigned, tmp_path, answer, status, added):
    """On a real terminal (a pty running `python -m coldsign`), approve shows the review and asks."""
    import sys

    from terminal import run_on_terminal

    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    home, words = people["alice"]
    argv = [sys.executable, "-m", "coldsign", "--home", str(home), "request", "approve", str(bundle),
            "--mnemonic-file", str(words)]
    code, screen = run_on_terminal(argv, [(b"Approve this request?", answer, True)])
    assert code == status, screen.decode(errors="replace")
    assert b"Pays" in screen and b"0.00150000 BTC" in screen          # the review came first
    approvals = R.decode_bundle(bundle.read_bytes()).approvals
    assert [a.approver for a in approvals] == ([identity("alice").public_key] if added else [])
    if not added:
        assert b"declined at the prompt" in screen


def test_verify_names_signers_from_the_installed_policy(people, unsigned, tmp_path):
    """Without --policy, names come from the policy installed in the home folder (alice+bob signed it)."""
    from coldsign.policy import document
    from coldsign.policy import installed as I
    from coldsign.policy import signatures as S

    home = people["carol"][0]
    text = POLICY.format(alice=identity("alice").public_hex, bob=identity("bob").public_hex).encode()
    policy = document.parse_policy(text)
    signatures = [(name, S.sign_policy(policy, identity(name))) for name in ("alice", "bob")]
    I.install(home, text, signatures, first=True, now=datetime.now(timezone.utc))
    bundle = tmp_path / "b.json"
    create(people, unsigned, bundle, *TIP)
    assert approve(people, "bob", bundle).exit_code == 0
    result = verify(people, bundle)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["policy"] == "installed"
    assert [(a["name"], a["valid"]) for a in report["approvals"]] == [("Bob Brandt", True)]


def test_the_requester_names_their_keystore(tmp_path, unsigned):
    """`--requester KEYSTORE` (the issue's name; `--keystore` works too): carol's identity key in her
    keystore signs the request, after the password."""
    home, words, password = tmp_path / "carol", W.write_mnemonic(tmp_path, "carol"), tmp_path / "password"
    password.write_text("correct horse battery staple\n")
    assert invoke("--home", str(home), "key", "restore", "--keystore", "carol", "--mnemonic-file", str(words),
                  "--password-file", str(password), "--json").exit_code == 0
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]), "--wallet",
                    "vault", "--requester", "carol", "--password-file", str(password), "--expires", "2h",
                    "--out", str(tmp_path / "w.request.json"), *TIP, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requester"] == identity("carol").public_hex


def test_an_impossible_tip_height_is_a_usage_error_naming_the_option(people, unsigned, tmp_path):
    from coldsign.policy.request import MAX_TIP_HEIGHT

    home, words = people["carol"]
    result = invoke("--home", str(home), "--network", "regtest", "request", "create", str(unsigned[0]), "--wallet",
                    "vault", "--mnemonic-file", str(words), "--tip-height", str(MAX_TIP_HEIGHT + 1), "--tip-hash",
                    "00" * 32, "--out", str(tmp_path / "w.json"))
    assert result.exit_code == 2 and "--tip-height" in result.output and str(MAX_TIP_HEIGHT) in result.output
    assert not (tmp_path / "w.json").exists()
