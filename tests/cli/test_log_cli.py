"""`coldsign log` as users run it: show, checkpoint, witness, export (file, QR frames decoded
back with `coldsign qr decode`, QR animated in the test's terminal size: COLUMNS/LINES), repair;
exit codes and JSON asserted.

Identity keys come from the walletkit seeds' words in files: alice keeps the log, bob witnesses.
"""

from __future__ import annotations

import json

import walletkit
from typer.testing import CliRunner

from coldsign.ceremony import events
from coldsign.ceremony.checkpoint import parse_checkpoint, parse_export, verify_checkpoint, verify_export
from coldsign.ceremony.log import CeremonyLog
from coldsign.cli.main import app
from coldsign.keys.identity import IdentityKey

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
ROSTER = [ALICE.public_key, BOB.public_key]


def run(home, *args):
    result = CliRunner().invoke(app, ["--home", str(home), "log", *args])
    return result, (json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None)


def fill(home, count):
    log = CeremonyLog(home)
    for i in range(count):
        log.append(events.PSBT_RECEIVED, events.psbt_received(f"{i:064x}", "file"), ALICE)
    return log


def test_help_has_examples():
    for command in ("show", "repair", "checkpoint", "witness", "export"):
        result = CliRunner().invoke(app, ["log", command, "--help"])
        assert result.exit_code == 0 and "Example: coldsign log" in result.stdout


def test_checkpoint_witness_export_round_trip(tmp_path):
    home = tmp_path / "home"
    words = walletkit.write_mnemonic(tmp_path, "alice")
    bob_words = walletkit.write_mnemonic(tmp_path, "bob")
    fill(home, 5)
    result, doc = run(home, "checkpoint", "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    assert doc["size"] == 5 and doc["signers"] == [ALICE.fingerprint]
    first = home / "ceremony" / "checkpoints" / "5.txt"
    assert first.read_text() == doc["text"]

    fill(home, 3)
    result, doc = run(home, "export", "--out", str(tmp_path / "x.json"), "--json")
    assert result.exit_code == 4 and doc["error"]["code"] == "checkpoint-stale"
    assert "newest checkpoint covers 5" in doc["error"]["message"]

    result, doc = run(home, "export", "--since", str(first), "--out", str(tmp_path / "x.json"),
                      "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    assert (doc["from_size"], doc["to_size"], doc["entries"], doc["checkpoint_made"]) == (5, 8, 3, True)
    export = parse_export((tmp_path / "x.json").read_bytes())
    check = verify_export(export, ROSTER, previous=parse_checkpoint(first.read_text()))
    assert check.ok and check.signers == [ALICE.fingerprint]

    result, doc = run(home, "witness", str(home / "ceremony" / "checkpoints" / "8.txt"), "--previous", str(first),
                      "--mnemonic-file", str(bob_words), "--out", str(tmp_path / "w.txt"), "--json")
    assert result.exit_code == 0, result.output
    assert doc["consistent_with"] == 5 and doc["signers"] == [ALICE.fingerprint, BOB.fingerprint]
    assert verify_checkpoint(parse_checkpoint((tmp_path / "w.txt").read_text()), ROSTER) == doc["signers"]

    result, doc = run(home, "show", "--tail", "2", "--json")
    assert result.exit_code == 0 and doc["size"] == 8 and [e["seq"] for e in doc["entries"]] == [6, 7]
    assert doc["checkpoint"]["size"] == 8 and doc["torn_bytes"] == 0


def test_witness_refuses_a_fork(tmp_path):
    home, other = tmp_path / "home", tmp_path / "other"
    words = walletkit.write_mnemonic(tmp_path, "alice")
    fill(home, 4)
    run(home, "checkpoint", "--mnemonic-file", str(words))
    fill(other, 2)                                               # another history under the same key
    CeremonyLog(other).append(events.REFUSAL, events.refusal("fee", "forked"), ALICE)
    fill(other, 2)
    run(other, "checkpoint", "--mnemonic-file", str(words))
    result, doc = run(home, "witness", str(other / "ceremony" / "checkpoints" / "5.txt"),
                      "--previous", str(home / "ceremony" / "checkpoints" / "4.txt"),
                      "--log", str(other / "ceremony" / "log.jsonl"),
                      "--mnemonic-file", str(walletkit.write_mnemonic(tmp_path, "bob")),
                      "--out", str(tmp_path / "w.txt"), "--json")
    assert result.exit_code == 5 and doc["error"]["code"] == "inconsistent"
    assert doc["error"]["message"].startswith("the checkpoint does not extend the previous one (size 4)")
    assert not (tmp_path / "w.txt").exists()


def test_export_through_qr_frames(tmp_path):
    home = tmp_path / "home"
    words = walletkit.write_mnemonic(tmp_path, "alice")
    fill(home, 30)
    result, doc = run(home, "export", "--frames-dir", str(tmp_path / "frames"), "--mnemonic-file", str(words),
                      "--json")
    assert result.exit_code == 0, result.output
    assert doc["format"] == "bbqr" and doc["frames"] >= 1
    assert len(list((tmp_path / "frames").glob("frame-*.png"))) == doc["frames"]
    decoded = CliRunner().invoke(app, ["qr", "decode", "--text", str(tmp_path / "frames" / "frames.txt"),
                                       "--out", str(tmp_path / "back.json"), "--json"])
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.stdout)["sha256"] == doc["sha256"]
    assert verify_export(parse_export((tmp_path / "back.json").read_bytes()), ROSTER).ok


def test_torn_log_show_refuse_repair(tmp_path):
    home = tmp_path / "home"
    words = walletkit.write_mnemonic(tmp_path, "alice")
    log = fill(home, 2)
    with open(log.path, "ab") as f:
        f.write(b'{"actor":"da7')
    result, doc = run(home, "show", "--json")
    assert result.exit_code == 0 and doc["size"] == 2 and doc["torn_bytes"] == 13
    result, doc = run(home, "checkpoint", "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 4 and doc["error"]["code"] == "log-torn"
    result, doc = run(home, "repair", "--json")
    assert result.exit_code == 0 and doc["repaired"] and doc["bytes"] == 13
    assert (home / "ceremony" / "log.jsonl.torn-1").read_bytes() == b'{"actor":"da7'
    result, doc = run(home, "checkpoint", "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0 and doc["size"] == 2


def test_usage_and_bad_checkpoint(tmp_path):
    home = tmp_path / "home"
    fill(home, 1)
    result, _ = run(home, "export")
    assert result.exit_code == 2 and "give one of --out FILE, --frames-dir DIR or --qr" in result.output
    for args in (["--qr", "--out", str(tmp_path / "x")], ["--qr", "--frames-dir", str(tmp_path / "f")],
                 ["--out", str(tmp_path / "x"), "--frames-dir", str(tmp_path / "f")]):
        result, doc = run(home, "export", *args, "--json")
        assert (result.exit_code, doc["error"]["message"]) == (2, "give one of --out FILE, --frames-dir DIR or --qr")
    result, doc = run(home, "export", "--out", str(tmp_path / "x"), "--cycles", "1", "--json")
    assert (result.exit_code, doc["error"]["message"]) == (2, "--cycles goes with --qr")
    assert not (tmp_path / "x").exists()
    (tmp_path / "bad.txt").write_text("not a checkpoint\n")
    result, doc = run(home, "export", "--since", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "x"), "--json")
    assert result.exit_code == 3 and doc["error"]["code"] == "checkpoint"


def qr_texts(screen: str) -> list[str]:
    """The texts of the QR codes drawn with half blocks on `screen`, as a camera would read them."""
    import numpy as np
    import zxingcpp

    from coldsign.qr.render import modules_from_half_blocks, to_array

    block_lines = [line for line in screen.splitlines() if set(line) <= set(" ▀▄█") and line.strip()]
    image = to_array(modules_from_half_blocks(block_lines), 4)
    return [r.text for r in zxingcpp.read_barcodes(np.ascontiguousarray(image), formats=zxingcpp.BarcodeFormat.QRCode)]


def test_checkpoint_as_qr_scans_back(tmp_path):
    home = tmp_path / "home"
    fill(home, 3)
    result = CliRunner().invoke(app, ["--home", str(home), "log", "checkpoint", "--mnemonic-file",
                                      str(walletkit.write_mnemonic(tmp_path, "alice")), "--qr"])
    assert result.exit_code == 0, result.output
    text = (home / "ceremony" / "checkpoints" / "3.txt").read_text()
    assert qr_texts(result.output) == [text]


def test_close_draws_its_checkpoint_as_qr(tmp_path):
    home, words = tmp_path / "home", walletkit.write_mnemonic(tmp_path, "alice")
    opened = CliRunner().invoke(app, ["--home", str(home), "log", "open", "--participants", "alice",
                                      "--mnemonic-file", str(words)])
    assert opened.exit_code == 0, opened.output
    result = CliRunner().invoke(app, ["--home", str(home), "log", "close", "--mnemonic-file", str(words), "--qr"])
    assert result.exit_code == 0, result.output
    text = (home / "ceremony" / "checkpoints" / "2.txt").read_text()
    assert qr_texts(result.stderr) == [text]


def _export_qr(home, env, *extra):
    return CliRunner().invoke(app, ["--home", str(home), "log", "export", "--qr", "--cycles", "1", *extra],
                              env=env)


def _checkpointed(tmp_path, count):
    """A home whose log of `count` entries has a checkpoint of all of it: exports are then the same
    bytes every time (no new checkpoint is signed), so a file export names what the QR carried."""
    home = tmp_path / "home"
    fill(home, count)
    result, _ = run(home, "checkpoint", "--mnemonic-file", str(walletkit.write_mnemonic(tmp_path, "alice")))
    assert result.exit_code == 0, result.output
    result, doc = run(home, "export", "--out", str(tmp_path / "export.json"), "--json")
    assert result.exit_code == 0, result.output
    return home, (tmp_path / "export.json").read_bytes(), doc


def test_export_as_qr_in_the_terminal(tmp_path):
    """--qr animates the export document as BBQr file type J (as `qr show --type json`); one cycle."""
    from coldsign.cli.qr_send import transmission_of

    home, data, file_doc = _checkpointed(tmp_path, 30)
    result = _export_qr(home, {"COLUMNS": "240", "LINES": "140"}, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)                                   # the one JSON document; QR on stderr
    assert (doc["sha256"], doc["bytes"], doc["checkpoint_made"]) == (file_doc["sha256"], len(data), False)
    assert "out" not in doc and "frames_dir" not in doc
    shown = doc["qr_shown"]
    assert (shown["format"], shown["type"], shown["stopped_by"]) == ("bbqr", "json", "cycles")
    expected = transmission_of(data, "bbqr", "json", density=shown["density"])
    assert (shown["qr_version"], shown["cycle_frames"]) == (expected.qr_version, len(expected.payloads))
    assert shown["frames_shown"] == len(expected.payloads)


def test_export_as_ur_qr_signs_a_checkpoint_first(tmp_path):
    home = tmp_path / "home"
    fill(home, 4)
    words = walletkit.write_mnemonic(tmp_path, "alice")
    result = _export_qr(home, {"COLUMNS": "240", "LINES": "140"}, "--format", "ur", "--mnemonic-file", str(words),
                        "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["checkpoint_made"] and doc["checkpoint"]["size"] == 4 and (home / "ceremony/checkpoints/4.txt").is_file()
    assert (doc["qr_shown"]["format"], doc["qr_shown"]["type"]) == ("ur", "bytes")


def test_export_as_qr_without_json_says_what_it_shows(tmp_path):
    home, data, _ = _checkpointed(tmp_path, 3)
    result = _export_qr(home, {"COLUMNS": "240", "LINES": "140"})
    assert result.exit_code == 0, result.output
    assert f"exported entries 0..2 ({len(data)} bytes) to the terminal as QR" in result.stdout


def test_export_as_qr_in_a_terminal_too_small(tmp_path):
    from coldsign.cli.qr_send import transmission_of
    from coldsign.qr.display import TerminalSink

    home, data, _ = _checkpointed(tmp_path, 3)
    result = _export_qr(home, {"COLUMNS": "50", "LINES": "30"}, "--json")
    assert result.exit_code == 7, result.output
    version = transmission_of(data, "bbqr", "json", density="low").qr_version
    cols, rows = TerminalSink().needed(version)
    error = json.loads(result.stdout)["error"]
    assert error["message"] == f"the terminal is 50x30 characters; a version-{version} QR code needs {cols}x{rows}"
    assert error["hint"] == "enlarge the window or reduce the font size, or write the frames with --frames-dir DIR"


def test_export_of_nothing_new_says_so(tmp_path):
    home, words = tmp_path / "home", walletkit.write_mnemonic(tmp_path, "alice")
    fill(home, 4)
    result, _doc = run(home, "checkpoint", "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["--home", str(home), "log", "export", "--since",
                                      str(home / "ceremony" / "checkpoints" / "4.txt"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("exported no new entry since checkpoint size 4 (the consistency proof only)")


def test_witness_with_a_roster_needs_the_log_owners_signature(tmp_path):
    """bob (on the roster) signs a checkpoint of alice's log himself; carol, asked to witness with
    the roster, must refuse: a witness's signature alone is not the log owner's checkpoint."""
    from coldsign.ceremony import merkle
    from coldsign.ceremony.checkpoint import origin_for, sign_checkpoint
    from coldsign.keys.roster import Custodian, Roster, save

    home = tmp_path / "home"
    lines = fill(home, 3).read().lines
    roster = tmp_path / "roster.json"
    save(roster, Roster((Custodian("Alice Ng", "custodian", ALICE.public_key),
                         Custodian("Bob Ruiz", "witness", BOB.public_key))))
    carol = walletkit.write_mnemonic(tmp_path, "carol")
    forged = tmp_path / "forged.txt"
    for origin in (origin_for(ALICE.fingerprint), "evil.example/log"):
        forged.write_text(sign_checkpoint(origin, 3, merkle.tree_hash(lines), BOB).text)
        result, doc = run(home, "witness", str(forged), "--roster", str(roster), "--mnemonic-file", str(carol),
                          "--out", str(tmp_path / "w.txt"), "--json")
        assert result.exit_code == 5, (origin, result.output)
        assert doc["error"]["code"] == "checkpoint-unsigned"
        assert doc["error"]["message"] == (f"the checkpoint is not signed by the log's own key (its origin "
                                           f"{origin}) on the roster")
        assert not (tmp_path / "w.txt").exists()
    # under his own name: checked against the log, whose entries alice signed
    forged.write_text(sign_checkpoint(origin_for(BOB.fingerprint), 3, merkle.tree_hash(lines), BOB).text)
    result, doc = run(home, "witness", str(forged), "--roster", str(roster), "--log",
                      str(home / "ceremony" / "log.jsonl"), "--mnemonic-file", str(carol),
                      "--out", str(tmp_path / "w.txt"), "--json")
    assert result.exit_code == 5, result.output
    assert doc["error"]["code"] == "wrong-actor"
    assert doc["error"]["message"] == (f"entry 0 of the log is signed by {ALICE.fingerprint}, not by the log's "
                                       f"owner {BOB.fingerprint} that the checkpoint's origin names")
    assert not (tmp_path / "w.txt").exists()
    good = tmp_path / "good.txt"
    good.write_text(sign_checkpoint(origin_for(ALICE.fingerprint), 3, merkle.tree_hash(lines), ALICE).text)
    result, doc = run(home, "witness", str(good), "--roster", str(roster), "--mnemonic-file", str(carol),
                      "--out", str(tmp_path / "w.txt"), "--json")
    assert result.exit_code == 0, result.output
    assert doc["signers"][0] == ALICE.fingerprint and len(doc["signers"]) == 2
