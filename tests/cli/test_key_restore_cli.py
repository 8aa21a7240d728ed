"""`coldsign key restore` from a SeedQR (picture, video, camera) and from typed words with typos.

SeedQR pictures are drawn here with `qrcode` straight from SeedSigner's published vectors
(tests/vectors/seedqr: Standard digits in numeric mode, Compact bytes in byte mode — vectors 2 and 6
hold a NUL, 7-9 hold CR/LF bytes), so nothing of coldsign's own SeedQR writer is trusted. Expected
fingerprints are computed with PBKDF2 + bip-utils, not with coldsign's derivation.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import camera as C
import walletkit as W
from coldsign.cli.key_store import read_seedqr
from coldsign.cli.main import app
from coldsign.errors import BadInput
from test_key_store_cli import PASSWORD, RUN, assert_no_secret, secret_file

sys.path.insert(0, str(Path(__file__).parents[1] / "vectors"))
from test_seedqr import VECTORS  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_kdf")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def fingerprint_of(words: str, passphrase: str = "") -> str:
    from bip_utils import Bip32Slip10Secp256k1

    seed = hashlib.pbkdf2_hmac("sha512", words.encode(), b"mnemonic" + passphrase.encode(), 2048)
    return Bip32Slip10Secp256k1.FromSeed(seed).FingerPrint().ToBytes().hex()


def seedqr_modules(payload: str | bytes, scale: int = 1) -> np.ndarray:
    """The SeedQR as SeedSigner draws it: digits in numeric mode, bytes in byte mode; 0 dark, 255 light."""
    import qrcode
    from qrcode.util import MODE_8BIT_BYTE, MODE_NUMBER, QRData

    data = QRData(payload.encode(), mode=MODE_NUMBER) if isinstance(payload, str) \
        else QRData(payload, mode=MODE_8BIT_BYTE)
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, box_size=1, border=4)
    code.add_data(data)
    code.make(fit=True)
    matrix = np.where(np.array(code.get_matrix(), dtype=bool), 0, 255).astype(np.uint8)
    return np.kron(matrix, np.ones((scale, scale), dtype=np.uint8))


def write_png(path: Path, image: np.ndarray) -> Path:
    import cv2

    assert cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize("number", range(1, len(VECTORS) + 1))
@pytest.mark.parametrize("form", ["standard", "compact"])
def test_every_published_seedqr_reads_back_from_a_picture(tmp_path, number, form):
    mnemonic, digits, _bits, raw = VECTORS[number - 1]
    picture = write_png(tmp_path / "seedqr.png", seedqr_modules(digits if form == "standard" else raw, 8))
    words, where = read_seedqr(picture, None)
    assert words.reveal() == mnemonic and where == f"SeedQR {picture}"


def test_restore_from_a_compact_seedqr_filmed_beside_another_code(tmp_path):
    """A camera-like recording: empty frames, an unrelated code alone, then the CompactSeedQR of vector 2
    (it holds a NUL byte) with the unrelated code beside it. The words and fingerprint come out right."""
    mnemonic, _digits, _bits, raw = VECTORS[1]
    assert b"\x00" in raw
    rng = np.random.default_rng(42)
    other = C.qr_modules("ur:bytes/hdcxdwinvezm")  # any code that is not a SeedQR
    frames = [C.empty_frame(rng) for _ in range(3)] + [C.camera_frame(other, rng)]
    frames += [C.camera_frame(seedqr_modules(raw), rng, px_per_module=8, others=[other]) for _ in range(3)]
    clip = C.write_avi(tmp_path / "clip.avi", frames)
    password = secret_file(tmp_path, "password.txt", PASSWORD)
    home = tmp_path / "home"
    result = invoke("--home", str(home), "--json", "key", "restore", "--keystore", "backup", "--seedqr", str(clip),
                    "--password-file", str(password))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["fingerprint"] == fingerprint_of(mnemonic) and doc["has_passphrase"] is False
    assert (home / "keystores" / "backup.json").exists()


def test_restore_from_a_seedqr_with_a_passphrase_shows_both_fingerprints(tmp_path):
    mnemonic, digits, _bits, _raw = VECTORS[0]
    picture = write_png(tmp_path / "seedqr.png", seedqr_modules(digits, 6))
    password = secret_file(tmp_path, "password.txt", PASSWORD)
    phrase = secret_file(tmp_path, "passphrase.txt", "TREZOR")
    result = invoke("--home", str(tmp_path / "home"), "--json", "key", "restore", "--keystore", "k", "--seedqr",
                    str(picture), "--passphrase-file", str(phrase), "--password-file", str(password))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["fingerprint"] == fingerprint_of(mnemonic, "TREZOR")
    assert doc["fingerprint_without_passphrase"] == fingerprint_of(mnemonic)


def test_pictures_without_a_seedqr_are_refused_naming_what_was_seen(tmp_path):
    blank = write_png(tmp_path / "blank.png", np.full((200, 200), 255, dtype=np.uint8))
    with pytest.raises(BadInput) as err:
        read_seedqr(blank, None)
    assert err.value.message == "no QR code found (looking for a SeedQR)" and err.value.where == str(blank)

    other = write_png(tmp_path / "other.png", np.kron(C.qr_modules("hello"), np.ones((6, 6), dtype=np.uint8)))
    with pytest.raises(BadInput) as err:
        read_seedqr(other, None)
    assert err.value.message == "1 QR code(s) found, none is a SeedQR: a Standard SeedQR holds only digits"

    # 48 digits whose last word index breaks the BIP-39 checksum
    _mnemonic, digits, _bits, _raw = VECTORS[3]
    broken = digits[:-4] + f"{(int(digits[-4:]) + 1) % 2048:04d}"
    damaged = write_png(tmp_path / "damaged.png", seedqr_modules(broken, 6))
    password = secret_file(tmp_path, "password.txt", PASSWORD)
    result = invoke("--home", str(tmp_path / "home"), "key", "restore", "--keystore", "k", "--seedqr", str(damaged),
                    "--password-file", str(password))
    assert result.exit_code == 3
    assert "none is a SeedQR: the SeedQR's BIP-39 checksum does not match" in result.output
    assert not (tmp_path / "home" / "keystores").exists() or not any((tmp_path / "home" / "keystores").iterdir())


def test_seedqr_options_errors(tmp_path, ):
    words = W.write_mnemonic(tmp_path, "alice")
    result = invoke("--home", str(tmp_path / "h"), "key", "restore", "--keystore", "k", "--seedqr", "x.png",
                    "--mnemonic-file", str(words))
    assert result.exit_code == 2 and "--mnemonic-file, --seedqr and --seedqr-camera each give the words" in result.output
    result = invoke("--home", str(tmp_path / "h"), "--json", "key", "restore", "--keystore", "k",
                    "--seedqr-camera", "7")
    assert result.exit_code == 7
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "no camera 7" and error["hint"].endswith("or pick another camera number")


@pytest.mark.parametrize("name, content", [("empty.png", b""), ("notes.txt", b"abandon ability")])
def test_a_seedqr_file_that_is_no_picture_or_video_says_what_seedqr_takes(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    result = invoke("--home", str(tmp_path / "h"), "--json", "key", "restore", "--keystore", "k", "--seedqr", str(path))
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error["hint"] == "--seedqr takes a picture (PNG, JPEG) or a video (AVI, MP4, MKV) of the SeedQR"
    assert "object at 0x" not in error["message"] and error["where"] == str(path)


def test_typed_words_with_a_typo_and_four_letter_starts_are_fixed_at_the_prompt(tmp_path):
    """On a real pseudo-terminal: word 3 mistyped ("docter") is asked again with close words shown, words
    1 and 2 typed as their first four letters; the keystore gets alice's seed. No typed word echoes."""
    from terminal import run_on_terminal

    words = W.mnemonic("alice").split()
    assert words[2] == "doctor"
    typed = ["absu", "amou", "docter"] + words[3:]
    pw = PASSWORD.encode() + b"\r"
    status, screen = run_on_terminal(
        [sys.executable, "-c", RUN, "none", "--home", str(tmp_path / "home"), "key", "restore", "--keystore", "a"],
        [(b"Mnemonic words", " ".join(typed).encode() + b"\r"), (b"Retype word 3", b"doctor\r"),
         (b"passphrase", b"\r"), (b"Keystore password", pw), (b"Repeat", pw)])
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))
    assert status == 0, text
    assert "Word 3 is not in the BIP-39 English list. Close words: doctor" in text
    assert "master fingerprint: " + fingerprint_of(W.mnemonic("alice")) in text
    assert "docter" not in text and "absu" not in text
    assert_no_secret(text)


def test_a_word_mistyped_three_times_stores_nothing(tmp_path):
    from terminal import run_on_terminal

    typed = W.mnemonic("alice").split()
    typed[5] = "qqqqq"
    status, screen = run_on_terminal(
        [sys.executable, "-c", RUN, "none", "--home", str(tmp_path / "home"), "key", "restore", "--keystore", "a"],
        [(b"Mnemonic words", " ".join(typed).encode() + b"\r")] + [(b"Retype word 6", b"zzzzz\r")] * 3)
    text = screen.decode(errors="replace")
    assert status == 6, text
    assert "word 6 is still not in the BIP-39 English word list" in text
    assert not (tmp_path / "home" / "keystores").exists()
