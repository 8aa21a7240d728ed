"""`coldsign key new`, as users run it: off a terminal (files only) and on a real pseudo-terminal.

The CSPRNG is replaced by fixed bytes (monkeypatching `coldsign.cli.key_new.csprng_bytes`; on the pty,
a tiny `python -c` launcher does the same in the child) so the expected words are known. They are
computed here from the formula documented in coldsign/keys/entropy.py with hashlib directly:
SHA-256(b"coldsign/key-new/entropy/v1\\0" || u32be(len c) || c || u32be(len r) || r)[:16 or 32].
Keystores use libsodium's INTERACTIVE Argon2id limits to keep the tests quick.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import struct
import sys
from pathlib import Path

import pytest
from embit import bip39
from typer.testing import CliRunner

from coldsign.cli import key_new
from coldsign.cli.main import app
from coldsign.keys import keystore
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from terminal import run_on_terminal

CSPRNG = bytes(range(100, 132))
ROLLS = "351624462135526413365214425163315264143625512364421536631425"  # 60 fair-looking rolls
ROLLS_99 = ROLLS + "246135514236316524351426615342136524142"  # 99 rolls
PASSWORD = "correct horse"
PASSPHRASE = "TREZOR"


def expected_words(csprng: bytes, rolls: str, nbytes: int) -> str:
    dice = rolls.encode()
    entropy = hashlib.sha256(b"coldsign/key-new/entropy/v1\x00" + struct.pack(">I", len(csprng)) + csprng
                             + struct.pack(">I", len(dice)) + dice).digest()[:nbytes]
    return bip39.mnemonic_from_bytes(entropy)


@pytest.fixture(autouse=True)
def fixed_csprng_and_fast_kdf(monkeypatch, fast_kdf):
    monkeypatch.setattr(key_new, "csprng_bytes", lambda n: CSPRNG[:n])


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def assert_no_words(text: str, words: str) -> None:
    parts = words.split()
    for pair in zip(parts, parts[1:]):
        assert " ".join(pair) not in text
    root = SeedKey.from_mnemonic(Secret(words)).root.reveal()
    assert root.to_base58() not in text
    assert PASSWORD not in text


# ---------------------------------------------------------------- off a terminal

def test_mnemonic_out_with_dice_file_gives_the_documented_mix(tmp_path):
    assert len(ROLLS_99) == 99
    dice = write(tmp_path, "dice.txt", " ".join(ROLLS[i:i + 10] for i in range(0, 60, 10)))
    out = tmp_path / "backup" / "words.txt"
    result = invoke("--home", str(tmp_path / "home"), "key", "new", "--words", "12", "--dice-file", str(dice),
                    "--mnemonic-out", str(out), "--json")
    assert result.exit_code == 0, result.output
    words = expected_words(CSPRNG[:16], ROLLS, 16)
    assert out.read_text() == words + "\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(result.stdout)
    assert doc == {"fingerprint": SeedKey.from_mnemonic(Secret(words)).fingerprint_hex, "words": 12,
                   "dice_rolls": 60, "entropy_bits": 128, "dice_entropy_bits": 155.1, "mnemonic_out": str(out)}
    assert_no_words(result.stdout + result.stderr, words)
    assert not [p for p in out.parent.iterdir() if p.name != "words.txt"]  # no temp file left


def test_24_words_without_dice_still_go_through_the_hash(tmp_path):
    out = tmp_path / "words.txt"
    result = invoke("key", "new", "--words", "24", "--mnemonic-out", str(out), "--json")
    assert result.exit_code == 0, result.output
    words = expected_words(CSPRNG, "", 32)
    assert out.read_text() == words + "\n"
    assert words != bip39.mnemonic_from_bytes(CSPRNG)
    doc = json.loads(result.stdout)
    assert (doc["words"], doc["dice_rolls"], doc["entropy_bits"]) == (24, 0, 256)
    assert_no_words(result.stdout + result.stderr, words)


def test_keystore_opens_to_the_same_fingerprint(tmp_path):
    home = tmp_path / "home"
    dice = write(tmp_path, "dice.txt", ROLLS_99)
    password = write(tmp_path, "pw.txt", PASSWORD)
    phrase = write(tmp_path, "phrase.txt", PASSPHRASE)
    result = invoke("--home", str(home), "key", "new", "--words", "24", "--dice-file", str(dice),
                    "--keystore", "treasury-1", "--password-file", str(password), "--passphrase-file", str(phrase),
                    "--json")
    assert result.exit_code == 0, result.output
    words = expected_words(CSPRNG, ROLLS_99, 32)
    doc = json.loads(result.stdout)
    with_phrase = SeedKey.from_mnemonic(Secret(words), Secret(PASSPHRASE)).fingerprint_hex
    assert doc["fingerprint"] == with_phrase
    assert doc["fingerprint_without_passphrase"] == SeedKey.from_mnemonic(Secret(words)).fingerprint_hex
    assert (doc["keystore"], doc["dice_rolls"], doc["dice_entropy_bits"]) == ("treasury-1", 99, 255.9)
    assert keystore.open_seed(home, "treasury-1", Secret(PASSWORD)).fingerprint_hex == with_phrase
    assert_no_words(result.stdout + result.stderr, words)
    again = invoke("--home", str(home), "key", "new", "--words", "12", "--keystore", "treasury-1",
                   "--password-file", str(password), "--json")
    assert again.exit_code == 4
    assert "a keystore named 'treasury-1' already exists" in again.stderr
    assert keystore.open_seed(home, "treasury-1", Secret(PASSWORD)).fingerprint_hex == with_phrase


@pytest.mark.parametrize("words, rolls, message", [
    (12, ROLLS[:49], "49 dice rolls are too few for 12 words: at least 50 are needed"),
    (24, ROLLS_99[:98], "98 dice rolls are too few for 24 words: at least 99 are needed"),
])
def test_too_few_rolls_exit_3_and_nothing_written(tmp_path, words, rolls, message):
    dice = write(tmp_path, "dice.txt", rolls)
    out = tmp_path / "words.txt"
    result = invoke("key", "new", "--words", str(words), "--dice-file", str(dice), "--mnemonic-out", str(out))
    assert result.exit_code == 3, result.output
    assert message in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("rolls, message", [
    ("4" * 60, "all 60 dice rolls are 4"),
    ("123456" * 9, "the dice rolls repeat the cycle 123456"),
    (ROLLS[:20] + "2" * 9 + ROLLS[29:], "rolls 21 to 29 are all 2 (9 in a row)"),
    (ROLLS.replace("1", "2"), "face 1 never comes up in 60 dice rolls"),
    (ROLLS[:30] + "7" + ROLLS[30:], "character 31 is '7'"),
])
def test_patterned_or_bad_rolls_exit_3(tmp_path, rolls, message):
    dice = write(tmp_path, "dice.txt", rolls)
    home = tmp_path / "home"
    password = write(tmp_path, "pw.txt", PASSWORD)
    result = invoke("--home", str(home), "key", "new", "--words", "12", "--dice-file", str(dice),
                    "--keystore", "k", "--password-file", str(password))
    assert result.exit_code == 3, result.output
    assert message in result.stderr
    assert keystore.list_keystores(home) == []


def test_errors_are_json_with_json_flag(tmp_path):
    dice = write(tmp_path, "dice.txt", "5" * 60)
    result = invoke("--json", "key", "new", "--words", "12", "--dice-file", str(dice), "--mnemonic-out",
                    str(tmp_path / "w.txt"))
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {"error": {"code": "dice-pattern", "exit": 3,
                                                   "hint": "roll the dice again and type every roll",
                                                   "message": "all 60 dice rolls are 5: that is not a fair die"}}
    assert not (tmp_path / "w.txt").exists()


@pytest.mark.parametrize("args, status, message", [
    (["--words", "12"], 2, "--keystore NAME or --mnemonic-out FILE"),
    (["--words", "12", "--keystore", "k", "--mnemonic-out", "w.txt"], 2, "--keystore NAME or --mnemonic-out"),
    (["--words", "18", "--mnemonic-out", "w.txt"], 3, "12 or 24 words, not 18"),
    (["--words", "12", "--dice", "--mnemonic-out", "w.txt"], 2, "--dice types the rolls at a prompt"),
    (["--words", "12", "--keystore", "k"], 2, "no --password-file and no terminal"),
    (["--words", "12", "--mnemonic-out", "w.txt", "--password-file", "pw.txt"], 2, "needs --keystore NAME"),
])
def test_usage_problems(tmp_path, monkeypatch, args, status, message):
    monkeypatch.chdir(tmp_path)
    result = invoke("--home", str(tmp_path / "home"), "key", "new", *args)
    assert result.exit_code == status, result.output
    assert message in result.stderr
    assert not (tmp_path / "w.txt").exists()
    assert keystore.list_keystores(tmp_path / "home") == []


def test_an_existing_mnemonic_out_is_never_overwritten(tmp_path):
    out = write(tmp_path, "words.txt", "old words")
    result = invoke("key", "new", "--words", "12", "--mnemonic-out", str(out))
    assert result.exit_code == 4
    assert "already exists" in result.stderr
    assert out.read_text() == "old words\n"


def test_help_has_an_example_and_says_the_file_is_the_backup():
    result = invoke("key", "new", "--help")
    assert result.exit_code == 0
    assert "Example: coldsign key new" in result.stdout
    assert "IS the backup" in result.stdout


# ---------------------------------------------------------------- on a terminal

LAUNCHER = ("import sys; import coldsign.cli.key_new as k; "
            f"k.csprng_bytes = lambda n: {CSPRNG!r}[:n]; "
            "k.pick_positions = lambda words, count=3: [2, 7, 11]; "
            "from coldsign.keys import keystore as s; "
            "s.DEFAULT_OPSLIMIT, s.DEFAULT_MEMLIMIT = s.OPSLIMIT_INTERACTIVE, s.MEMLIMIT_INTERACTIVE; "
            "from coldsign.cli.main import main; raise SystemExit(main())")


def on_terminal(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    return run_on_terminal([sys.executable, "-c", LAUNCHER, *args], answers)


def test_terminal_shows_words_once_and_stores_after_confirmation(tmp_path):
    dice = write(tmp_path, "dice.txt", ROLLS)
    out = tmp_path / "words.txt"
    words = expected_words(CSPRNG[:16], ROLLS, 16).split()
    status, screen = on_terminal(
        ["--home", str(tmp_path / "home"), "key", "new", "--words", "12", "--dice-file", str(dice),
         "--mnemonic-out", str(out)],
        [(b"passphrase", b"\r"), (b"Press Enter", b"\r"),
         (b"Type word #2 ", words[1].encode() + b"\r"), (b"Type word #7 ", words[6].encode() + b"\r"),
         (b"Type word #11 ", words[10].encode() + b"\r")])
    text = screen.decode(errors="replace")
    assert status == 0, text
    assert out.read_text() == " ".join(words) + "\n"
    assert "WRITE THESE WORDS DOWN" in text
    for position, word in enumerate(words, 1):
        assert text.count(f"{position:>2}. {word}") == 1, (position, text)  # shown once
    after = text.split("Type word #2 ", 1)[1]
    for typed in (words[1], words[6], words[10]):
        assert not re.search(rf"\b{typed}\b", after), (typed, text)  # typed without echo
    assert "\x1b[2J" in text  # the words are cleared before they are asked back
    assert "stored in file" in text


def test_terminal_wrong_word_exits_6_and_stores_nothing(tmp_path):
    home = tmp_path / "home"
    password = write(tmp_path, "pw.txt", PASSWORD)
    words = expected_words(CSPRNG, "", 32).split()
    wrong = "zoo" if words[6] != "zoo" else "abandon"
    status, screen = on_terminal(
        ["--home", str(home), "key", "new", "--words", "24", "--keystore", "treasury-1", "--password-file",
         str(password)],
        [(b"passphrase", b"\r"), (b"Press Enter", b"\r"),
         (b"Type word #2 ", words[1].encode() + b"\r"), (b"Type word #7 ", wrong.encode() + b"\r")])
    text = screen.decode(errors="replace")
    assert status == 6, text
    assert "word #7 does not match: nothing was stored" in text
    assert "Type word #11" not in text
    assert keystore.list_keystores(home) == []
    assert wrong not in text.split("Type word #7", 1)[1]  # the typed word is not echoed


def test_terminal_dice_typed_at_the_prompt_are_mixed(tmp_path):
    out = tmp_path / "words.txt"
    words = expected_words(CSPRNG[:16], ROLLS, 16).split()
    status, screen = run_on_terminal(
        [sys.executable, "-c", LAUNCHER, "key", "new", "--words", "12", "--dice", "--mnemonic-out", str(out),
         "--passphrase-file", str(write(tmp_path, "phrase.txt", PASSPHRASE)), "--json"],
        [(b"(0 so far, at least 50", ROLLS[:30].encode() + b"\r", True),
         (b"(30 so far, at least 50", " ".join(ROLLS[30:]).encode() + b"\r", True),
         (b"Press Enter", b"\r", False),
         (b"Type word #2 ", words[1].encode() + b"\r", False), (b"Type word #7 ", words[6].encode() + b"\r", False),
         (b"Type word #11 ", words[10].encode() + b"\r", False)])
    text = screen.decode(errors="replace")
    assert status == 0, text
    assert out.read_text() == " ".join(words) + "\n"
    assert "60 so far" not in text  # 60 ≥ 50 rolls: no further prompt
    doc = json.loads(text[text.index('{"fingerprint"'):].splitlines()[0])
    assert doc["fingerprint"] == SeedKey.from_mnemonic(Secret(" ".join(words)), Secret(PASSPHRASE)).fingerprint_hex
    assert (doc["dice_rolls"], doc["dice_entropy_bits"]) == (60, 155.1)
