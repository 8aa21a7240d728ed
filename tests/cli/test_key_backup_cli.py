"""`coldsign key split | combine | seedqr` run as a custodian would, exit codes and JSON included.

Seeds: alice's test words (tests/walletkit.py: BIP-39 entropy 0x01 * 16, 12 words, master
fingerprint computed with SeedKey) and a 24-word seed of entropy 0x07 * 32. Shares are random on
every split, so each test splits afresh and checks the round trip, never fixed share words.
Every test also checks that no mnemonic word sequence and no xprv reaches stdout or stderr.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.keys import seedqr, shares
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey

ALICE = W.mnemonic("alice")
ALICE_FP = W.seed("alice").fingerprint_hex


def words_of_24() -> str:
    from embit import bip39

    return bip39.mnemonic_from_bytes(bytes([7]) * 32)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def assert_no_secrets(result, *secrets: str) -> None:
    """No two consecutive words of any secret, and no xprv/tprv, in what the user saw."""
    seen = (result.stdout or "") + (result.stderr or "")
    for secret in secrets:
        parts = secret.split()
        for a, b in zip(parts, parts[1:]):
            assert f"{a} {b}" not in seen, "secret words were echoed"
    assert "xprv" not in seen and "tprv" not in seen


def write_seed(tmp_path: Path, words: str = ALICE, name: str = "seed.txt") -> Path:
    path = tmp_path / name
    path.write_text(words + "\n")
    return path


def split_to(tmp_path: Path, out_dir: str, *extra: str, words: str = ALICE):
    seed = write_seed(tmp_path, words, f"{out_dir}-seed.txt")
    result = run("key", "split", "--mnemonic-file", str(seed), "--out-dir", str(tmp_path / out_dir), "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result


def share_texts(doc: dict) -> list[str]:
    return [Path(f["file"]).read_text() for f in doc["files"]]


# --- split + combine ---------------------------------------------------------------------------

def test_split_two_of_three_writes_0600_files_and_json_without_words(tmp_path):
    doc, result = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    assert doc["fingerprint"] == ALICE_FP
    assert doc["words"] == 12
    assert doc["group_threshold"] == 1
    assert doc["groups"] == [{"group": 1, "threshold": 2, "shares": 3}]
    assert doc["share_count"] == 3
    assert [(f["group"], f["member"], Path(f["file"]).name) for f in doc["files"]] == [
        (1, 1, "share-1-1.txt"), (1, 2, "share-1-2.txt"), (1, 3, "share-1-3.txt")]
    for number, item in enumerate(doc["files"], 1):
        path = Path(item["file"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        info = shares.inspect_share(Secret(path.read_text()))
        assert (info.identifier, info.group, info.member, info.member_threshold) == (doc["identifier"], 1, number, 2)
    assert sorted(os.listdir(tmp_path / "shares")) == ["share-1-1.txt", "share-1-2.txt", "share-1-3.txt"]
    assert_no_secrets(result, ALICE, *share_texts(doc))


def test_combine_two_of_three_gives_the_same_fingerprint_and_words(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    files = [f["file"] for f in doc["files"]]
    recovered = tmp_path / "recovered.txt"
    result = run("key", "combine", files[2], files[0], "--mnemonic-out", str(recovered), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["fingerprint"] == ALICE_FP
    assert out["identifier"] == doc["identifier"]
    assert out["words"] == 12 and out["passphrase"] is False
    assert out["groups_used"] == [1]
    assert out["used"] == [{"position": 1, "file": files[2], "group": 1, "member": 3},
                           {"position": 2, "file": files[0], "group": 1, "member": 1}]
    assert out["unused"] == []
    assert out["mnemonic_out"] == str(recovered)
    assert recovered.read_text() == ALICE + "\n"
    assert stat.S_IMODE(recovered.stat().st_mode) == 0o600
    assert_no_secrets(result, ALICE, *share_texts(doc))


def test_a_keystore_seed_gets_its_shares_and_seedqr_after_the_password(tmp_path):
    """A seed that lives only in a keystore (e.g. `key new --keystore` off a terminal) is backed up
    from it: shares that combine to the same words, and a SeedQR of them; a wrong password, nothing."""
    home, password, phrase = tmp_path / "home", tmp_path / "password", tmp_path / "phrase"
    password.write_text("correct horse battery staple\n")
    phrase.write_text("vault 7\n")
    assert run("--home", str(home), "key", "restore", "--keystore", "alice", "--mnemonic-file", str(write_seed(tmp_path)),
               "--passphrase-file", str(phrase), "--password-file", str(password), "--json").exit_code == 0
    with_phrase = SeedKey.from_mnemonic(Secret(ALICE), Secret("vault 7")).fingerprint_hex

    result = run("--home", str(home), "key", "split", "--keystore", "alice", "--password-file", str(password),
                 "--threshold", "2", "--shares", "3", "--out-dir", str(tmp_path / "shares"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["fingerprint"], doc["fingerprint_without_passphrase"]) == (with_phrase, ALICE_FP)
    recovered = tmp_path / "recovered.txt"
    files = [f["file"] for f in doc["files"]]
    assert run("key", "combine", files[0], files[2], "--mnemonic-out", str(recovered)).exit_code == 0
    assert recovered.read_text() == ALICE + "\n"
    assert_no_secrets(result, ALICE, *share_texts(doc))

    qr = tmp_path / "seedqr.png"
    result = run("--home", str(home), "key", "seedqr", "--keystore", "alice", "--password-file", str(password),
                 "--out", str(qr), "--json")
    assert result.exit_code == 0, result.output
    assert decode_png(qr, compact=False) == ALICE

    wrong = tmp_path / "wrong"
    wrong.write_text("battery staple\n")
    result = run("--home", str(home), "key", "seedqr", "--keystore", "alice", "--password-file", str(wrong),
                 "--out", str(tmp_path / "nope.png"))
    assert result.exit_code == 6 and not (tmp_path / "nope.png").exists()
    result = run("--home", str(home), "key", "split", "--keystore", "alice", "--mnemonic-file", str(recovered),
                 "-m", "2", "-n", "3", "--out-dir", str(tmp_path / "more"))
    assert result.exit_code == 2 and "--keystore and --mnemonic-file" in result.output


def test_combine_human_output_names_the_shares_used_but_not_the_words(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    files = [f["file"] for f in doc["files"]]
    result = run("key", "combine", files[0], files[1])
    assert result.exit_code == 0, result.output
    assert f"master fingerprint {ALICE_FP}" in result.stdout
    assert "used share 2" in result.stdout and "member 2" in result.stdout
    assert_no_secrets(result, ALICE, *share_texts(doc))


def test_groups_split_and_combine_reports_groups_used_and_unused_shares(tmp_path):
    words = words_of_24()
    doc, _ = split_to(tmp_path, "groups", "--group", "2/3", "--group", "2/2", "--group", "1/1",
                      "--group-threshold", "2", words=words)
    assert doc["group_threshold"] == 2 and doc["share_count"] == 6 and doc["words"] == 24
    assert doc["groups"] == [{"group": 1, "threshold": 2, "shares": 3}, {"group": 2, "threshold": 2, "shares": 2},
                             {"group": 3, "threshold": 1, "shares": 1}]
    by_name = {Path(f["file"]).name: f["file"] for f in doc["files"]}
    assert sorted(by_name) == ["share-1-1.txt", "share-1-2.txt", "share-1-3.txt", "share-2-1.txt",
                               "share-2-2.txt", "share-3-1.txt"]
    given = [by_name["share-2-1.txt"], by_name["share-1-3.txt"], by_name["share-3-1.txt"], by_name["share-1-1.txt"]]
    result = run("key", "combine", *given, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["fingerprint"] == SeedKey.from_mnemonic(Secret(words)).fingerprint_hex
    assert out["groups_used"] == [1, 3]
    assert [(u["position"], u["group"], u["member"]) for u in out["used"]] == [(2, 1, 3), (3, 3, 1), (4, 1, 1)]
    assert out["unused"] == [{"position": 1, "file": by_name["share-2-1.txt"]}]
    assert_no_secrets(result, words, *share_texts(doc))


def test_combine_with_passphrase_file_shows_that_seeds_fingerprint(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "2")
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("correct horse\n")
    files = [f["file"] for f in doc["files"]]
    result = run("key", "combine", *files, "--passphrase-file", str(passphrase), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    expected = SeedKey.from_mnemonic(Secret(ALICE), Secret("correct horse")).fingerprint_hex
    assert out["fingerprint"] == expected != ALICE_FP
    assert out["fingerprint_without_passphrase"] == ALICE_FP
    assert out["passphrase"] is True
    human = run("key", "combine", *files, "--passphrase-file", str(passphrase))
    assert human.exit_code == 0, human.output
    assert f"master fingerprint {expected} (with the BIP-39 passphrase; {ALICE_FP} without it)" in human.stdout


def test_combine_one_of_two_needed_exits_3_and_names_the_shortfall(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    result = run("key", "combine", doc["files"][1]["file"], "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {"error": {"code": "bad-input", "exit": 3,
                                                   "message": "not enough shares: 1 given, 2 needed"}}
    assert "error: not enough shares: 1 given, 2 needed" in result.stderr
    assert_no_secrets(result, ALICE, *share_texts(doc))


def test_combine_shares_of_two_splits_exits_3(tmp_path):
    first, _ = split_to(tmp_path, "first", "--threshold", "2", "--shares", "3")
    second, _ = split_to(tmp_path, "second", "--threshold", "2", "--shares", "3")
    assert first["identifier"] != second["identifier"]  # 1 in 32768 chance of a clash
    result = run("key", "combine", first["files"][0]["file"], second["files"][1]["file"])
    assert result.exit_code == 3
    assert "error: share 2 is from a different share set than share 1 (identifiers differ)" in result.stderr
    assert "combine only shares made in the same split" in result.stderr
    assert result.stdout == ""
    assert_no_secrets(result, ALICE, *share_texts(first), *share_texts(second))


def test_combine_altered_share_exits_3_naming_the_share_not_the_word(tmp_path):
    from embit.wordlists.slip39 import SLIP39_WORDS

    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    path = Path(doc["files"][1]["file"])
    words = path.read_text().split()
    words[10] = SLIP39_WORDS[(SLIP39_WORDS.index(words[10]) + 1) % len(SLIP39_WORDS)]
    path.write_text(" ".join(words) + "\n")
    result = run("key", "combine", doc["files"][0]["file"], str(path), "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "share 2: the checksum does not match (a word is wrong or out of order)"
    assert words[10] not in result.stderr.split()
    assert_no_secrets(result, ALICE, " ".join(words), *share_texts(doc))


def test_combine_missing_share_file_exits_3(tmp_path):
    result = run("key", "combine", str(tmp_path / "nope.txt"))
    assert result.exit_code == 3
    assert "nope.txt: share file 1 not found" in result.stderr


def test_combine_show_refuses_a_pipe_and_json(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "2")
    files = [f["file"] for f in doc["files"]]
    result = run("key", "combine", *files, "--show")
    assert result.exit_code == 2
    assert "error: refusing to print the recovered words to a pipe or file" in result.stderr
    result = run("key", "combine", *files, "--show", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["message"] == "--json never shows the words"
    assert_no_secrets(result, ALICE)


# --- split refusals ------------------------------------------------------------------------------

def test_split_refuses_to_print_shares_to_a_pipe(tmp_path):
    seed = write_seed(tmp_path)
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "2", "--shares", "3")
    assert result.exit_code == 2
    assert "error: refusing to print shares to a pipe or file" in result.stderr
    assert "--out-dir" in result.stderr
    assert result.stdout == ""
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "2", "--shares", "3", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == {"code": "usage", "exit": 2, "hint": "pass --out-dir DIR",
                                                  "message": "--json never shows share words; say where to write them"}


def test_split_without_mnemonic_file_and_no_terminal_names_the_option(tmp_path):
    result = run("key", "split", "--threshold", "2", "--shares", "3", "--out-dir", str(tmp_path / "s"),
                 input=ALICE + "\n")
    assert result.exit_code == 2
    assert "error: no --mnemonic-file and no terminal to ask for the words on" in result.stderr
    assert not (tmp_path / "s").exists()
    assert_no_secrets(result, ALICE)


def test_split_never_overwrites_shares_in_the_folder(tmp_path):
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    before = share_texts(doc)
    seed = write_seed(tmp_path)
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "2", "--shares", "3",
                 "--out-dir", str(tmp_path / "shares"))
    assert result.exit_code == 2
    assert "3 share file(s) already exist in the folder; nothing was written" in result.stderr
    assert share_texts(doc) == before


def test_split_bad_threshold_and_bad_mnemonic(tmp_path):
    seed = write_seed(tmp_path)
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "4", "--shares", "3",
                 "--out-dir", str(tmp_path / "s"), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["message"] == \
        "the threshold must be between 1 and the share count (3), not 4"
    assert not (tmp_path / "s").exists()
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "2", "--out-dir", str(tmp_path / "s"))
    assert result.exit_code == 2 and "give --threshold M and --shares N" in result.output
    bad = ALICE.split()
    bad[2] = "notaword"
    seed.write_text(" ".join(bad) + "\n")
    result = run("key", "split", "--mnemonic-file", str(seed), "--threshold", "2", "--shares", "3",
                 "--out-dir", str(tmp_path / "s"))
    assert result.exit_code == 6
    assert f"error: {seed}: word 3 is not in the BIP-39 English word list" in result.stderr
    assert_no_secrets(result, ALICE, " ".join(bad))
    result = run("key", "split", "--mnemonic-file", str(seed), "--group", "2-3", "--out-dir", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "--group '2-3' is not of the form M/N" in result.stderr


# --- seedqr --------------------------------------------------------------------------------------

def decode_png(path: Path, compact: bool) -> str:
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(path), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1
    payload = Secret(found[0].bytes) if compact else Secret(found[0].text)
    return seedqr.decode(payload).reveal()


@pytest.mark.parametrize("words, compact, version", [
    (ALICE, False, 2), (ALICE, True, 1), (words_of_24(), False, 3), (words_of_24(), True, 2)],
    ids=["standard-12", "compact-12", "standard-24", "compact-24"])
def test_seedqr_png_decodes_back_to_the_words(tmp_path, words, compact, version):
    seed = write_seed(tmp_path, words)
    out = tmp_path / "seed.png"
    args = ["key", "seedqr", "--mnemonic-file", str(seed), "--out", str(out), "--json"]
    result = run(*args, *(["--compact"] if compact else []))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"out": str(out), "format": "compact" if compact else "standard",
                                         "words": len(words.split()), "qr_version": version, "mode": "0600"}
    assert "this image IS the seed" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_png(out, compact) == words
    assert_no_secrets(result, words)


def test_seedqr_standard_payload_is_numeric_word_indexes(tmp_path):
    seed = write_seed(tmp_path)
    out = tmp_path / "seed.png"
    assert run("key", "seedqr", "--mnemonic-file", str(seed), "--out", str(out)).exit_code == 0
    import zxingcpp
    from PIL import Image

    (found,) = zxingcpp.read_barcodes(Image.open(out), formats=zxingcpp.BarcodeFormat.QRCode)
    text = found.text
    assert text == seedqr.encode_standard(Secret(ALICE)).reveal()
    assert len(text) == 48 and text.isdigit()


def test_seedqr_bad_mnemonic_writes_nothing(tmp_path):
    seed = write_seed(tmp_path, " ".join(ALICE.split()[:11] + ["zoo"]))
    out = tmp_path / "seed.png"
    result = run("key", "seedqr", "--mnemonic-file", str(seed), "--out", str(out))
    assert result.exit_code == 6
    assert "checksum does not match" in result.stderr
    assert not out.exists()


# --- on a real terminal ---------------------------------------------------------------------------

def test_split_shows_shares_once_on_a_terminal_and_they_combine(tmp_path):
    from terminal import run_on_terminal

    seed = write_seed(tmp_path)
    argv = [sys.executable, "-m", "coldsign", "key", "split", "--mnemonic-file", str(seed),
            "--threshold", "2", "--shares", "3"]
    status, screen = run_on_terminal(argv, [])
    text = screen.decode(errors="replace")
    assert status == 0, text
    assert "WARNING: the shares below are secrets" in text
    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\r", "").splitlines()
    found = [lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("group 1 share ")]
    assert len(found) == 3
    assert all(len(share.split()) == 20 for share in found)
    result = shares.combine([Secret(found[0]), Secret(found[2])])
    assert result.mnemonic.reveal() == ALICE
    assert ALICE.split()[0] + " " + ALICE.split()[1] not in text  # the seed words themselves are not shown


def test_combine_show_on_a_terminal_shows_the_words_after_a_warning(tmp_path):
    from terminal import run_on_terminal

    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "3")
    argv = [sys.executable, "-m", "coldsign", "key", "combine", doc["files"][0]["file"], doc["files"][1]["file"],
            "--show"]
    status, screen = run_on_terminal(argv, [])
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))
    assert status == 0, text
    assert f"master fingerprint {ALICE_FP}" in text
    assert text.index("WARNING: the words below are the seed.") < text.index(ALICE)


def test_seedqr_with_words_typed_at_a_no_echo_prompt(tmp_path):
    from terminal import run_on_terminal

    out = tmp_path / "seed.png"
    argv = [sys.executable, "-m", "coldsign", "key", "seedqr", "--out", str(out), "--compact"]
    status, screen = run_on_terminal(argv, [(b"Mnemonic words", ALICE.encode() + b"\r"),
                                            (b"Write the SeedQR image now?", b"y\r", True)])
    text = screen.decode(errors="replace")
    assert status == 0, text
    assert "this image IS the seed" in text and "a printer's memory" in text
    assert text.index("this image IS the seed") < text.index("Write the SeedQR image now?")
    assert ALICE.split()[0] + " " + ALICE.split()[1] not in text
    assert decode_png(out, compact=True) == ALICE


def test_seedqr_declined_at_the_warning_screen_writes_nothing(tmp_path):
    from terminal import run_on_terminal

    out = tmp_path / "seed.png"
    argv = [sys.executable, "-m", "coldsign", "key", "seedqr", "--mnemonic-file", str(write_seed(tmp_path)),
            "--out", str(out)]
    status, screen = run_on_terminal(argv, [(b"Write the SeedQR image now?", b"\r", True)])
    assert status == 4, screen
    assert b"the SeedQR was not written" in screen and not out.exists()


@pytest.mark.parametrize("command", ["split", "combine", "seedqr"])
def test_help_has_an_example(command):
    result = run("key", command, "--help")
    assert result.exit_code == 0
    assert f"Example: coldsign key {command}" in result.stdout
    assert "--json" in result.stdout


@pytest.mark.parametrize("command", ["combine", "seedqr"])
def test_a_secret_file_that_exists_is_never_replaced(tmp_path, command):
    """The file there may hold another seed's words: exit 4, its content untouched (as `key new`)."""
    doc, _ = split_to(tmp_path, "shares", "--threshold", "2", "--shares", "2")
    existing = tmp_path / "old-words.txt"
    existing.write_text("another seed's words\n")
    if command == "combine":
        args = ["key", "combine", *[f["file"] for f in doc["files"]], "--mnemonic-out", str(existing), "--json"]
    else:
        args = ["key", "seedqr", "--mnemonic-file", str(W.write_mnemonic(tmp_path, "alice")), "--out",
                str(existing), "--json"]
    result = run(*args)
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "file-exists" and "may hold another seed's words" in error["message"]
    assert existing.read_text() == "another seed's words\n"
