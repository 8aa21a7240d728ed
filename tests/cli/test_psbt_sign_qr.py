"""`psbt sign` across the air gap by light: the PSBT scanned from QR pictures, the signed PSBT
written back as QR frames, and what the ceremony log says about both.

Fixture, in words: alice's wpkh wallet "vault" (tests/walletkit.py) registered in her home folder;
walletkit's honest withdrawal (two 100,000-sat coins, 150,000 sat out, change 1/0) shown by the
coordinator as UR frames (`qr encode`), which alice's signer reads from the PNG pictures.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.psbt import fields as F
from coldsign.psbt.codec import Psbt, combine, signatures_only


def invoke(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def ok(*args, env=None) -> dict:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


@pytest.fixture()
def shown(tmp_path):
    """(the unsigned PSBT, the folder of its UR frames as the coordinator's screen drew them)."""
    _, psbt = W.honest()
    path = tmp_path / "withdrawal.psbt"
    path.write_bytes(psbt.serialize())
    frames = tmp_path / "to-signer"
    ok("qr", "encode", path, "--format", "ur", "--max-fragment", "120", "--frames-dir", frames, "--json")
    return psbt, frames


def decode_frames(folder, out) -> bytes:
    ok("qr", "decode", "--images", f"{folder}/frame-*.png", "--out", out, "--json")
    return out.read_bytes()


def test_a_scanned_psbt_is_signed_and_answered_as_frames_and_logged(alice, shown, tmp_path):
    home, words = alice
    psbt, frames = shown
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    signed_path, answer = tmp_path / "signed.psbt", tmp_path / "answer"
    doc = ok("--home", home, "psbt", "sign", "-", "--images", f"{frames}/frame-*.png", "--mnemonic-file", words,
             "--out", signed_path, "--frames-dir", answer, "--qr-format", "bbqr", "--json")

    raw = psbt.serialize()
    assert doc["received"] == {"source": "qr", "kind": "psbt", "format": "ur",
                               "frames_seen": doc["received"]["frames_seen"], "bytes": len(raw),
                               "sha256": hashlib.sha256(raw).hexdigest()}
    assert doc["received"]["frames_seen"] >= 2
    signed = signed_path.read_bytes()
    assert Psbt.parse(signed).txid() == psbt.txid() and doc["signed"] == [0, 1]
    frame_files = sorted(answer.glob("frame-*.png"))
    assert doc["qr"]["format"] == "bbqr" and doc["qr"]["frames"] == len(frame_files) >= 1
    # The coordinator's camera reads the answer back: the signatures and the transaction, no more;
    # combined with the coordinator's own PSBT they make the signed PSBT's inputs.
    back = decode_frames(answer, tmp_path / "back.psbt")
    assert doc["qr"]["content"] == "signatures" and doc["qr"]["sha256"] == hashlib.sha256(back).hexdigest()
    assert back == signatures_only(Psbt.parse(signed), psbt).serialize() and len(back) < len(signed)
    merged = combine([psbt, Psbt.parse(back)])
    assert [m.items(F.PSBT_IN_PARTIAL_SIG) for m in merged.inputs] == \
           [m.items(F.PSBT_IN_PARTIAL_SIG) for m in Psbt.parse(signed).inputs]

    entries = ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]
    assert [e["event"] for e in entries] == ["ceremony-opened", "psbt-received", "review-shown",
                                             "signatures-produced", "exported"]
    assert entries[1]["payload"] == {"sha256": hashlib.sha256(raw).hexdigest(), "source": "qr", "bytes": len(raw)}
    assert entries[4]["payload"] == {"format": "bbqr", "frames": len(frame_files),
                                     "sha256": hashlib.sha256(back).hexdigest()}
    assert entries[3]["payload"]["psbt_sha256_after"] == hashlib.sha256(signed).hexdigest()


def test_the_whole_signed_psbt_when_asked_and_without_a_log(alice, shown, tmp_path):
    home, words = alice
    psbt, frames = shown
    answer = tmp_path / "answer"
    doc = ok("--home", home, "psbt", "sign", "-", "--images", f"{frames}/frame-*.png", "--mnemonic-file", words,
             "--out", tmp_path / "signed.psbt", "--frames-dir", answer, "--full-psbt", "--json")
    assert (doc["qr"]["format"], doc["qr"]["content"]) == ("ur", "psbt") and not (home / "ceremony").exists()
    assert decode_frames(answer, tmp_path / "back.psbt") == (tmp_path / "signed.psbt").read_bytes()


def test_a_file_psbt_answered_as_frames_is_logged_as_received_from_a_file(alice, shown, tmp_path):
    home, words = alice
    psbt, _ = shown
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    ok("--home", home, "psbt", "sign", tmp_path / "withdrawal.psbt", "--mnemonic-file", words,
       "--out", tmp_path / "signed.psbt", "--frames-dir", tmp_path / "answer", "--json")
    entries = ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]
    assert entries[1]["payload"]["source"] == "file"
    assert entries[-1]["event"] == "exported" and entries[-1]["payload"]["format"] == "ur"


@pytest.mark.parametrize("case", ["named-file", "old-frames", "transaction", "two-sources"])
def test_what_cannot_be_scanned_or_answered_is_refused_before_the_seed(alice, shown, tmp_path, case):
    home, _ = alice
    psbt, frames = shown
    answer = tmp_path / "answer"
    source = ["--images", f"{frames}/frame-*.png"]
    file = "-"
    if case == "named-file":
        file = tmp_path / "withdrawal.psbt"
    elif case == "old-frames":
        answer.mkdir()
        (answer / "frames.txt").write_text("old\n")
    elif case == "transaction":
        tx = tmp_path / "tx.hex"
        tx.write_text(psbt.unsigned_tx().serialize().hex())
        ok("qr", "encode", tx, "--type", "transaction", "--format", "bbqr", "--frames-dir", tmp_path / "tx-frames", "--json")
        source = ["--images", f"{tmp_path}/tx-frames/frame-*.png"]
    elif case == "two-sources":
        source += ["--video", tmp_path / "clip.avi"]
    # NOTE: no seed option: a refusal before the seed is read never prompts (CliRunner has no input).
    result = invoke("--home", home, "psbt", "sign", file, *source, "--out", tmp_path / "signed.psbt",
                    "--frames-dir", answer, "--json")
    assert result.exit_code == 2, result.output
    message = json.loads(result.stdout)["error"]["message"]
    expected = {"named-file": "the PSBT comes from the QR frames: give '-'",
                "old-frames": "already holds frames",
                "transaction": "the QR frames carry a transaction, not a PSBT or a signing request bundle",
                "two-sources": "give exactly one of --images, --video, --text or --camera"}[case]
    assert expected in message
    assert not (tmp_path / "signed.psbt").exists()


@pytest.fixture()
def approved(alice, shown, tmp_path):
    """alice's home under policykit's treasury policy (installed first, signed by alice and bob), and
    the withdrawal's request bundle: requested by carol, approved by alice and bob."""
    import policykit

    home, _ = alice
    psbt, _ = shown
    keys = {name: policykit.IDENTITIES[name] for name in ("alice", "bob", "carol")}
    policy = tmp_path / "policy.toml"
    policy.write_text(policykit.treasury_policy(keys))
    sigs = []
    for name in ("alice", "bob"):
        sigs.append(tmp_path / f"{name}.sig.json")
        ok("--home", tmp_path / f"{name}-admin", "policy", "approve-doc", policy, "--mnemonic-file",
           W.write_mnemonic(tmp_path, name), "--out", sigs[-1], "--json")
    ok("--home", home, "policy", "install", policy, *sigs, "--first", "--json")
    bundle = tmp_path / "approved.bundle"
    policykit.write_bundle(bundle, psbt.serialize(), keys["carol"], [keys["alice"], keys["bob"]],
                           tip_height=840_000, tip_hash="00" * 31 + "0a", memo="exchange top-up")
    return bundle


def test_the_custodian_sees_what_the_policy_checked(alice, approved, tmp_path):
    home, words = alice
    result = invoke("--home", home, "psbt", "sign", "-", "--request", approved, "--mnemonic-file", words,
                    "--out", tmp_path / "signed.psbt", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert 'policy "treasury" v1: ALLOWED (rule exchange-daily)' in result.stdout
    rows = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "exchange-daily approvals ok 2 of 2 required approvals from role 'treasurer': alice, bob" in rows
    assert result.stdout.index("ALLOWED") < result.stdout.index("Signed 2 input(s)")


def test_a_scanned_request_bundle_is_evaluated_and_its_psbt_signed(alice, shown, approved, tmp_path):
    home, words = alice
    psbt, _ = shown
    bundle = approved
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    ok("qr", "encode", bundle, "--type", "json", "--format", "bbqr", "--frames-dir", tmp_path / "bundle-qr", "--json")
    source = ["--images", f"{tmp_path}/bundle-qr/frame-*.png"]

    # The scanned bundle is the request: a second one named by --request is refused before anything.
    result = invoke("--home", home, "psbt", "sign", "-", *source, "--request", bundle, "--mnemonic-file", words,
                    "--out", tmp_path / "signed.psbt", "--json")
    assert result.exit_code == 2 and "drop --request" in json.loads(result.stdout)["error"]["hint"]

    doc = ok("--home", home, "psbt", "sign", "-", *source, "--mnemonic-file", words,
             "--out", tmp_path / "signed.psbt", "--qr-format", "ur", "--frames-dir", tmp_path / "answer", "--json")
    assert doc["received"]["kind"] == "bundle" and doc["received"]["format"] == "bbqr"
    assert doc["received"]["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert doc["policy"]["rule"] == "exchange-daily" and doc["signed"] == [0, 1]
    entries = ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]
    assert [e["event"] for e in entries] == ["ceremony-opened", "psbt-received", "review-shown", "approvals-checked",
                                             "policy-decision", "signatures-produced", "exported"]
    raw = psbt.serialize()
    assert entries[1]["payload"] == {"sha256": hashlib.sha256(raw).hexdigest(), "source": "qr", "bytes": len(raw)}
    assert entries[-1]["payload"]["format"] == "ur"


def test_the_answer_shown_in_the_terminal_is_logged_with_the_frames_shown(alice, shown, tmp_path):
    home, words = alice
    _, frames = shown
    ok("--home", home, "log", "open", "--participants", "alice", "--mnemonic-file", words, "--json")
    args = ("--home", home, "psbt", "sign", "-", "--images", f"{frames}/frame-*.png", "--mnemonic-file", words,
            "--out", tmp_path / "signed.psbt", "--qr", "--cycles", "2", "--density", "low", "--json")
    # Too small a terminal is known before anything is signed: exit 7, nothing written, nothing logged.
    small = invoke(*args, env={"COLUMNS": "50", "LINES": "30"})
    assert small.exit_code == 7 and "a version-" in json.loads(small.stdout)["error"]["message"]
    assert not (tmp_path / "signed.psbt").exists()
    assert len(ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]) == 1

    doc = ok(*args, env={"COLUMNS": "240", "LINES": "140"})
    shown_frames = doc["qr"]["frames_shown"]
    assert doc["qr"]["format"] == "ur" and shown_frames >= 2 and shown_frames % 2 == 0
    entries = ok("--home", home, "log", "show", "--tail", "0", "--json")["entries"]
    assert entries[-1]["event"] == "exported"
    assert entries[-1]["payload"]["frames"] == shown_frames and entries[-1]["payload"]["format"] == "ur"


def test_qr_options_go_with_a_qr_answer(alice, tmp_path):
    home, words = alice
    result = invoke("--home", home, "psbt", "sign", tmp_path / "withdrawal.psbt", "--mnemonic-file", words,
                    "--out", tmp_path / "signed.psbt", "--cycles", "2", "--json")
    assert result.exit_code == 2 and "--cycles goes with --qr" in result.output
    result = invoke("--home", home, "psbt", "sign", tmp_path / "withdrawal.psbt", "--mnemonic-file", words,
                    "--out", tmp_path / "signed.psbt", "--full-psbt", "--json")
    assert result.exit_code == 2 and "--full-psbt goes with --frames-dir or --qr" in result.output


def test_frames_of_two_bundles_mixed_say_so(alice, shown, approved, tmp_path):
    """BBQr has no checksum: frame 2 of another bundle of the same type and part count joins the
    scan unnoticed; then either the deflate stream or the bundle's JSON breaks (which one depends on
    the bytes): exit 3 either way, saying frames may be mixed."""
    import shutil

    import policykit

    home, words = alice
    psbt, _ = shown
    keys = policykit.IDENTITIES
    other = tmp_path / "other.bundle"
    policykit.write_bundle(other, psbt.serialize(), keys["carol"], [keys["bob"], keys["alice"]],
                           tip_height=840_001, tip_hash="00" * 31 + "0b", memo="another top-up")
    docs = [ok("qr", "encode", bundle, "--type", "json", "--format", "bbqr", "--max-fragment", "400",
               "--frames-dir", tmp_path / name, "--json") for bundle, name in ((approved, "mine"), (other, "theirs"))]
    assert docs[0]["frames"] == docs[1]["frames"] >= 3
    shutil.copyfile(tmp_path / "theirs" / "frame-0002.png", tmp_path / "mine" / "frame-0002.png")
    result = invoke("--home", home, "psbt", "sign", "-", "--images", f"{tmp_path}/mine/frame-*.png",
                    "--mnemonic-file", words, "--out", tmp_path / "signed.psbt", "--json")
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error.get("hint") == ("the frames may mix two transmissions (BBQr carries no checksum): scan again with "
                             "only this one on the screen"), error
    assert not (tmp_path / "signed.psbt").exists()
