"""`coldsign qr encode` and `coldsign qr show` as users run them: files written, JSON, exit codes.

The file sent is walletkit's honest PSBT (alice's wpkh account spending two 100,000-sat coins to an
external P2WPKH and change 1/0; 585 bytes) or, for multi-part BBQr, the same PSBT at a small
--max-fragment. Every written frame (PNG, GIF frame, MP4 frame) is decoded with zxing-cpp and
must give back exactly its line of frames.txt; frames.txt assembled by the transport must give
back the PSBT's bytes. `show` runs in the test's terminal size (COLUMNS/LINES) and in an OpenCV
window on a private Xvfb display, stopped by --cycles.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
import zxingcpp
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.qr.transport import Assembler

BIG_TERMINAL = {"COLUMNS": "240", "LINES": "140"}


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def read_qr(pixels) -> tuple[str, str]:
    found = zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0].text, found[0].extra["Version"]


@pytest.fixture()
def psbt_file(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "withdrawal.psbt"
    path.write_bytes(base64.b64encode(psbt.serialize()) + b"\n")
    return path, psbt.serialize()


def assemble(payloads: list[str]):
    assembler = Assembler()
    for payload in payloads:
        assembler.add(payload)
    return assembler.message()


# --- encode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,extra_args", [("ur", ["--density", "low"]), ("bbqr", ["--max-fragment", "200"])])
def test_encode_writes_frames_that_decode_to_frames_txt_and_the_psbt(psbt_file, tmp_path, fmt, extra_args):
    from PIL import Image

    path, raw = psbt_file
    out = tmp_path / "frames"
    result = invoke("qr", "encode", str(path), "--format", fmt, *extra_args, "--frames-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["format", "type", "frames", "qr_version", "bytes", "sha256", "frames_dir"]
    assert (doc["format"], doc["type"], doc["bytes"], doc["sha256"], doc["frames_dir"]) == \
        (fmt, "psbt", len(raw), hashlib.sha256(raw).hexdigest(), str(out))
    lines = (out / "frames.txt").read_text().splitlines()
    pngs = sorted(out.glob("frame-*.png"))
    assert doc["frames"] == len(lines) == len(pngs) >= 3
    assert [p.name for p in pngs] == [f"frame-{i:04d}.png" for i in range(1, len(lines) + 1)]
    sizes = set()
    for png, line in zip(pngs, lines):
        image = Image.open(png)
        sizes.add(image.size)
        assert read_qr(image) == (line, str(doc["qr_version"]))   # every frame at the transmission's version
    assert len(sizes) == 1
    assert all(line.startswith("UR:CRYPTO-PSBT/" if fmt == "ur" else "B$") for line in lines)
    message = assemble(lines)
    assert (message.type, message.data) == ("psbt", raw)


def test_encode_ur_extra_adds_fountain_parts_after_the_pure_ones(psbt_file, tmp_path):
    path, raw = psbt_file
    out = tmp_path / "frames"
    result = invoke("qr", "encode", str(path), "--format", "ur", "--density", "low", "--extra", "3",
                    "--frames-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    lines = (out / "frames.txt").read_text().splitlines()
    k = int(lines[0].split("/")[1].split("-")[1])
    assert json.loads(result.stdout)["frames"] == len(lines) == k + 3
    assert [int(line.split("/")[1].split("-")[0]) for line in lines] == list(range(1, k + 4))
    assert assemble(lines[::-1]).data == raw                     # any order


def test_encode_gif_and_mp4_hold_the_same_frames(psbt_file, tmp_path):
    import cv2
    from PIL import Image, ImageSequence

    path, _ = psbt_file
    out, gif, mp4 = tmp_path / "frames", tmp_path / "w.gif", tmp_path / "w.mp4"
    result = invoke("qr", "encode", str(path), "--format", "bbqr", "--max-fragment", "300", "--frames-dir",
                    str(out), "--gif", str(gif), "--mp4", str(mp4), "--fps", "10", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["gif"], doc["mp4"]) == (str(gif), str(mp4))
    lines = (out / "frames.txt").read_text().splitlines()
    animation = Image.open(gif)
    assert animation.n_frames == len(lines) and animation.info["duration"] == 100
    assert [read_qr(frame.convert("L"))[0] for frame in ImageSequence.Iterator(animation)] == lines
    video = cv2.VideoCapture(str(mp4))
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    seen = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        seen.append(read_qr(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))[0])
    video.release()
    assert seen == lines
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temp files left


def test_encode_refuses_a_folder_of_old_frames_unless_overwrite(psbt_file, tmp_path):
    path, _ = psbt_file
    out = tmp_path / "frames"
    first = invoke("qr", "encode", str(path), "--format", "bbqr", "--max-fragment", "100", "--frames-dir", str(out))
    assert first.exit_code == 0, first.output
    many = len(list(out.glob("frame-*.png")))
    again = invoke("qr", "encode", str(path), "--format", "ur", "--frames-dir", str(out), "--json")
    assert again.exit_code == 2
    error = json.loads(again.stdout)["error"]
    assert error["message"] == f"{out} already holds frames ({many + 1} file(s): frame-0001.png …)"
    assert "--overwrite" in error["hint"]
    replaced = invoke("qr", "encode", str(path), "--format", "ur", "--frames-dir", str(out), "--overwrite", "--json")
    assert replaced.exit_code == 0, replaced.output
    frames = json.loads(replaced.stdout)["frames"]
    assert frames < many and len(list(out.glob("frame-*.png"))) == frames   # stale frames removed
    assert (out / "frames.txt").read_text().startswith("UR:CRYPTO-PSBT/")


def test_encode_transaction_and_raw_bytes(psbt_file, tmp_path):
    tx = bytes.fromhex(W.previous_tx(W.EXTERNAL_SCRIPT, 50_000, 7).hex())
    tx_file = tmp_path / "tx.hex"
    tx_file.write_text(tx.hex() + "\n")
    result = invoke("qr", "encode", str(tx_file), "--type", "transaction", "--format", "bbqr", "--frames-dir",
                    str(tmp_path / "t"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["type"], doc["bytes"], doc["sha256"]) == ("transaction", len(tx), hashlib.sha256(tx).hexdigest())
    message = assemble((tmp_path / "t" / "frames.txt").read_text().splitlines())
    assert (message.type, message.data) == ("transaction", tx)

    blob = tmp_path / "notes.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    result = invoke("qr", "encode", str(blob), "--type", "bytes", "--format", "ur", "--frames-dir",
                    str(tmp_path / "b"), "--json")
    assert result.exit_code == 0, result.output
    assert assemble((tmp_path / "b" / "frames.txt").read_text().splitlines()).data == blob.read_bytes()

    doc_file = tmp_path / "bundle.json"
    doc_file.write_text(json.dumps({"format": "coldsign-request-bundle", "memo": "é" * 50}))
    result = invoke("qr", "encode", str(doc_file), "--type", "json", "--format", "bbqr", "--frames-dir",
                    str(tmp_path / "j"), "--json")
    assert result.exit_code == 0, result.output
    frames = (tmp_path / "j" / "frames.txt").read_text().splitlines()
    assert frames[0][:6] in ("B$ZJ01", "B$2J01")  # BBQr file type J, compressed or base32
    message = assemble(frames)
    assert (message.type, message.data) == ("json", doc_file.read_bytes())
    (tmp_path / "broken.json").write_text("{not json")
    result = invoke("qr", "encode", str(tmp_path / "broken.json"), "--type", "json", "--format", "bbqr",
                    "--frames-dir", str(tmp_path / "k"))
    assert result.exit_code == 3 and "--type json but the file is not JSON" in result.output


@pytest.mark.parametrize("content,args,code,message", [
    (b"hello, not a psbt\n", [], 3, "not a PSBT: tried"),
    (b"0200000001", ["--type", "transaction"], 3, "not a transaction:"),
    (b"", ["--type", "bytes"], 3, "the file is empty"),
    (None, [], 3, "PSBT file not found"),
    (b"x", ["--type", "bytes", "--extra", "2", "--format", "bbqr"], 2, "--extra adds UR fountain parts; BBQr has none"),
    (b"x", ["--type", "bytes", "--density", "low", "--max-fragment", "50"], 2,
     "give --max-fragment or --density, not both"),
])
def test_encode_errors_exit_with_their_code_and_write_nothing(tmp_path, content, args, code, message):
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "frames"
    if "--format" not in args:
        args = [*args, "--format", "ur"]
    result = invoke("qr", "encode", str(path), *args, "--frames-dir", str(out), "--json")
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["error"]["message"].startswith(message)
    assert not out.exists() or not any(out.iterdir())


def test_encode_into_an_unwritable_place_is_an_environment_problem(psbt_file):
    path, _ = psbt_file
    out = path / "frames"                   # a folder under a file: cannot be created (also as root)
    result = invoke("qr", "encode", str(path), "--format", "ur", "--frames-dir", str(out), "--json")
    assert result.exit_code == 7, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["message"]) == ("environment", "cannot write the frames: Not a directory")
    assert "writable" in error["hint"]


def test_encode_help_has_an_example():
    for command in ("encode", "show"):
        result = invoke("qr", command, "--help")
        assert result.exit_code == 0 and "Example: coldsign qr " + command in result.stdout


# --- show --------------------------------------------------------------------------------------

def test_show_in_the_terminal_for_two_cycles(psbt_file):
    path, raw = psbt_file
    result = invoke("qr", "show", str(path), "--density", "low", "--fps", "50", "--cycles", "2", "--json",
                    env=BIG_TERMINAL)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["format"], doc["type"], doc["density"], doc["stopped_by"]) == ("ur", "psbt", "low", "cycles")
    assert doc["cycle_frames"] >= 3 and doc["frames_shown"] == 2 * doc["cycle_frames"]
    assert doc["sha256"] == hashlib.sha256(raw).hexdigest()


def test_show_picks_the_densest_size_the_terminal_fits(psbt_file, tmp_path):
    path, _ = psbt_file
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6000))
    result = invoke("qr", "show", str(big), "--type", "bytes", "--format", "bbqr", "--cycles", "1", "--fps", "60",
                    "--json", env={"COLUMNS": "100", "LINES": "60"})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # v20 needs 105 columns; v12 (low) needs 73x38: the terminal fits low only
    assert (doc["density"], doc["qr_version"]) == ("low", 12)


def test_show_in_a_terminal_too_small_exits_7_with_the_size_needed(psbt_file):
    path, _ = psbt_file
    result = invoke("qr", "show", str(path), "--density", "low", "--json", env={"COLUMNS": "50", "LINES": "30"})
    assert result.exit_code == 7
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "the terminal is 50x30 characters; a version-11 QR code needs 69x36"
    assert "--window" in error["hint"]


def test_show_usage_errors(psbt_file):
    path, _ = psbt_file
    result = invoke("qr", "show", str(path), "--fullscreen", "--json", env=BIG_TERMINAL)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["message"] == "--fullscreen goes with --window"


def test_show_window_without_a_display_exits_7(psbt_file, monkeypatch):
    path, _ = psbt_file
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    result = invoke("qr", "show", str(path), "--window", "--cycles", "1", "--json")
    assert result.exit_code == 7
    assert json.loads(result.stdout)["error"]["message"] == "no display to open a window on (DISPLAY is not set)"


def test_show_in_a_full_screen_window(psbt_file, x_display):
    path, _ = psbt_file
    child = subprocess.run([sys.executable, "-m", "coldsign", "qr", "show", str(path), "--format", "bbqr",
                            "--max-fragment", "200", "--window", "--fullscreen", "--fps", "30", "--cycles", "1",
                            "--json"], env=x_display, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    doc = json.loads(child.stdout)
    assert doc["format"] == "bbqr" and doc["stopped_by"] == "cycles"
    assert doc["frames_shown"] == doc["cycle_frames"] >= 3 and doc["density"] is None
