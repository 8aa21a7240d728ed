"""`coldsign ceremony rehearse`: the whole 2-of-3 withdrawal ceremony, and each injected fault caught.

The rehearsal, in words (coldsign.cli.rehearsal_steps): custodians alice, bob, carol restore the fixed
test seeds (entropy 0x01/0x02/0x03 * 16; Olivia, operations, 0x04 * 16) into keystores, add identity
keys to a roster, register the 2-of-3 wsh(sortedmulti) vault (48h/1h/0h/2h) from a BSMS file on each
signer and import it on the coordinator; policy "treasury" v1 (only to the exchange's address, at most
1 BTC a transaction, fee at most 0.001 BTC and 200 sat/vB, 2 approvals of group "approver", the
requester not counted) is signed by alice and bob and installed on all three, each in its log. The
embedded chain (101 blocks) pays 0.6 and 0.5 BTC to receive 0 and 1 (heights 102, 103). Olivia's
request for 0.7 BTC to the exchange at 5 sat/vB, change to 1/0, is approved by carol and bob; the
bundle crosses to alice and bob as photographed BBQr frames; they sign and answer as photographed UR
frames; the coordinator collects, finalizes, broadcasts (mined at 104), mines 105 and syncs; each
signer closes and exports its log; the auditor verifies all three against the roster and its copy of
the chain and writes HTML reports.

The full run uses coldsign's real Argon2id defaults; the attacks use `--fast-kdf` (INTERACTIVE
limits) to keep the file under ~90 s; each attack must be caught by the named role and check, and
the command exits 0 only then.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldsign.cli.main import app


def rehearse(*args: str):
    return CliRunner().invoke(app, ["ceremony", "rehearse", *args, "--json"])


def test_the_whole_ceremony_reaches_the_chain_and_the_audit(tmp_path):
    from coldsign.chain.regtest import RegtestChain

    work = tmp_path / "rehearsal"
    result = rehearse("--workdir", str(work))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert re.fullmatch(r"[0-9a-f]{64}", doc["txid"])
    assert (doc["confirmed_height"], doc["tip_height"]) == (104, 105)
    assert doc["signers"] == ["alice", "bob"]
    assert doc["frames_out"] > 0 and doc["frames_back"] > 0
    assert doc["audit_ok"] is True
    assert {who: v["ok"] for who, v in doc["audit"].items()} == {"alice": True, "bob": True, "carol": True}
    assert doc["kdf"] == "argon2id moderate (default)"
    # the fixed test seeds' master fingerprints
    assert doc["fingerprints"] == {"alice": "397a4a50", "bob": "c8e3b3d3", "carol": "70ecd03a"}

    # The transaction is in block 104 of the coordinator's chain, paying 0.7 BTC to the exchange.
    with RegtestChain.open(work / "coordinator" / "regtest") as chain:
        assert chain.height == 105
        raw = chain.get_transaction(doc["txid"])
    from embit.transaction import Transaction

    from coldsign.cli.rehearsal_steps import EXCHANGE_TAG, tagged_address
    from coldsign.network import Network
    from coldsign.psbt.review import address_of

    tx = Transaction.parse(raw)
    paid = {address_of(out.script_pubkey.data, Network.REGTEST): out.value for out in tx.vout}
    assert paid[tagged_address(EXCHANGE_TAG)] == 70_000_000

    # What crossed the gap were camera pictures, and the auditor's reports name the withdrawal.
    assert len(list((work / "transfer" / "w1-bundle-camera").glob("camera-*.png"))) == doc["frames_out"] // 2
    for who in ("alice", "bob"):
        assert list((work / "transfer" / f"w1-signed-{who}-camera").glob("camera-*.png"))
        report = (work / "auditor" / f"{who}-report.html").read_text()
        assert doc["txid"] in report
        assert f"{tagged_address(EXCHANGE_TAG)}</code> &quot;exchange&quot;: 70,000,000 sat" in report
        # ... and each signer's log says so: the bundle came by QR, the answer left as UR frames.
        logged = [json.loads(line) for line in json.loads((work / "auditor" / f"{who}-log.json").read_text())["entries"]]
        received = [e["payload"] for e in logged if e["event"] == "psbt-received"]
        exported = [e["payload"] for e in logged if e["event"] == "exported"]
        answer = list((work / "transfer" / f"w1-signed-{who}-qr").glob("frame-*.png"))
        assert [r["source"] for r in received] == ["qr"]
        assert [(x["format"], x["frames"]) for x in exported] == [("ur", len(answer))]
    # the narration went to stderr, one line per step at least
    assert "bundle across the air gap" in result.stderr


ATTACKS = [
    # name, where, by, exit of the refusing command
    ("destination-swapped", "alice/sign", "psbt-digest", 4),
    ("foreign-change", "alice/sign", "foreign-change", 4),
    ("fee-inflated", "alice/sign", "fee", 4),
    ("request-replayed", "alice/sign-again", "nonce", 4),
    ("frame-mixed", "alice/sign", "qr-decode", 3),
    ("log-edited", "auditor/audit", "bad-signature", 5),
]


@pytest.mark.parametrize("name, where, by, exit_code", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_each_attack_is_caught_by_the_right_check(tmp_path, name, where, by, exit_code):
    result = rehearse("--workdir", str(tmp_path / "rehearsal"), "--attack", name, "--fast-kdf")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["attack"], doc["caught"], doc["by"], doc["where"], doc["exit"]) == (name, True, by, where, exit_code)
    assert doc["kdf"] == "argon2id interactive (--fast-kdf: rehearsal only)"
    assert "txid" not in doc
    if name == "destination-swapped":
        assert doc["message"].startswith('policy "treasury" v1 refuses this request (no rule allows it): psbt digest: '
                                         "request names ")
        assert "not the same PSBT" in doc["message"]
    if name == "request-replayed":
        assert re.search(r"nonce: nonce [0-9a-f]{32} was already signed: a replay$", doc["message"])
    if name == "frame-mixed":
        assert doc["message"] == "part of another message: header B$ZP02 after B$ZJ04 (different file type, " \
                                 "part count)"
        # nothing was written by the refused decode
        assert not (tmp_path / "rehearsal" / "alice" / "w1-signed.psbt").exists()
    if name == "log-edited":
        assert (doc["edited_index"], doc["failed_index"]) == (6, 6)
        assert doc["message"] == "entry 6: the signature does not verify against the actor's key"
    if name == "fee-inflated":
        assert "[high-fee] fee of 501470 sat" in doc["message"]


def test_an_unknown_attack_is_a_usage_error_and_wipes_nothing(tmp_path):
    work = tmp_path / "rehearsal"
    work.mkdir()
    (work / ".coldsign-rehearsal").write_text("")
    (work / "keep.txt").write_text("still here")
    result = rehearse("--workdir", str(work), "--attack", "teleport")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "no attack named 'teleport'"
    assert error["hint"] == ("choose one of: destination-swapped, foreign-change, fee-inflated, request-replayed, "
                             "frame-mixed, log-edited")
    assert (work / "keep.txt").read_text() == "still here"


@pytest.mark.parametrize("layout", ["notes", "role folders without the marker", "marker and a foreign file"])
def test_a_folder_that_is_not_a_rehearsal_is_refused_and_nothing_is_deleted(tmp_path, layout):
    work = tmp_path / "keep"
    (work / "alice").mkdir(parents=True)
    (work / "coordinator").mkdir()
    (work / "alice" / "seed-backup.txt").write_text("precious")
    if layout != "role folders without the marker":
        (work / "notes.txt").write_text("my notes")
    if layout == "marker and a foreign file":
        (work / ".coldsign-rehearsal").write_text("")
    result = rehearse("--workdir", str(work))
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "workdir-not-empty"
    assert error["message"].startswith(f"{work} is not empty and was not made by a rehearsal")
    assert (work / "alice" / "seed-backup.txt").read_text() == "precious"
    if layout != "role folders without the marker":
        assert error["message"].endswith("(it holds notes.txt)") and (work / "notes.txt").read_text() == "my notes"


def test_a_workdir_that_is_a_file_or_cannot_be_made_is_a_clear_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    # /proc takes no new folders, even from root
    for workdir, code in ((afile, 2), (afile / "sub", 7), (Path("/proc/coldsign-rehearsal"), 7)):
        result = rehearse("--workdir", str(workdir))
        assert result.exit_code == code, result.output
        assert json.loads(result.stdout)["error"]["message"]


def test_random_seeds_on_a_machine_whose_environment_names_another_chain(tmp_path, monkeypatch):
    """--random: fresh seeds, other fingerprints. COLDSIGN_SOURCE (here an address nothing answers on)
    is ignored: the rehearsal plays on the embedded chain only."""
    monkeypatch.setenv("COLDSIGN_SOURCE", "esplora://127.0.0.1:9/api")
    result = rehearse("--workdir", str(tmp_path / "rehearsal"), "--random", "--fast-kdf")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["audit_ok"] is True and doc["random_seeds"] is True
    assert set(doc["fingerprints"].values()).isdisjoint({"397a4a50", "c8e3b3d3", "70ecd03a"})


def test_scripts_rehearse_the_readme_first_command_narrates_each_step(tmp_path):
    """`scripts/rehearse` as the README runs it (here with --fast-kdf and a workdir of the test's):
    the narration names each step's role and title, what crossed the air gap with its frames, and
    the time; the last two lines are the txid and the audit verdict."""
    import os
    import subprocess

    from coldsign.cli.rehearsal_steps import STEPS

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([str(root / "scripts" / "rehearse"), "--fast-kdf", "--workdir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stdout + done.stderr
    *_, txid, verdict = done.stdout.splitlines()
    assert re.fullmatch(r"txid [0-9a-f]{64} \(confirmed at height 104\)", txid) and verdict == "audit_ok: true"
    for step in STEPS:
        assert f"{step.role:<12} {step.title}" in done.stderr, step.name
    assert re.search(r"⇄ approved bundle as \d+ BBQr frames, photographed \(\d+ frames\)  \d+\.\d s", done.stderr)
    assert re.search(r"⇄ 2 signers read the bundle from the camera pictures.* \(\d+ frames\)", done.stderr)
