"""`coldsign qr decode` and `coldsign qr scan` as users run them (Typer's runner): exit codes,
the JSON of ARCHITECTURE §4, the file written (or not), progress lines on stderr.

Transmissions come from the transport's real encoder; image frames are rendered with qrcode
and degraded into camera-like 1280×720 frames by tests/camera.py (seeded).
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

import camera as C
import walletkit as W
from coldsign.cli.main import app
from coldsign.qr.transport import encode


def _bytes(n: int, *, seed: int) -> bytes:
    """Replayable message bytes (fountain parts depend on the message, so tests fix it)."""
    return random.Random(seed).randbytes(n)


def run(*args: str):
    return CliRunner().invoke(app, ["qr", *args])


def _lines_file(path, payloads):
    path.write_text("\n".join(payloads) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["ur", "bbqr"])
def test_text_round_trip_shuffled_duplicated_with_unrelated_lines(tmp_path, fmt):
    data = b"psbt\xff" + _bytes(4000, seed=1)
    sent = encode(data, format=fmt, type="psbt", density="low")
    lines = sent.payloads * 2 + ["https://example.com/not-ours", "WIFI:S:lobby;T:WPA;P:x;;"]
    random.Random(11).shuffle(lines)
    # frames_seen counts lines read until the message completed: find that line
    needed, complete_at = set(sent.payloads), None
    for n, line in enumerate(lines, start=1):
        needed.discard(line)
        if not needed:
            complete_at = n
            break
    out = tmp_path / "received.psbt"
    result = run("decode", "--text", str(_lines_file(tmp_path / "frames.txt", lines)), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["format"] == fmt and doc["type"] == "psbt"
    assert doc["frames_seen"] == complete_at
    assert doc["bytes"] == len(data) and doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["out"] == str(out) and out.read_bytes() == data
    assert doc["frames_useful"] == len(sent.payloads)
    assert f"qr: {fmt} 100%: {complete_at} frame(s) seen" in result.stderr


def test_a_base64_psbt_in_one_frame_is_written_as_binary(tmp_path):
    import base64

    _, psbt = W.honest()
    raw = psbt.serialize()
    out = tmp_path / "p.psbt"
    text = _lines_file(tmp_path / "one.txt", [base64.b64encode(raw).decode()])
    result = run("decode", "--text", str(text), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["format"], doc["type"], doc["frames_seen"]) == ("base64", "psbt", 1)
    assert out.read_bytes() == raw


# zbar reads fewer degraded frames than zxing-cpp (issue 3's measurements), so its frames are
# drawn a little larger; both must read every frame here.
@pytest.mark.parametrize("decoder, px_per_module", [("zxing", 3.5), ("zbar", 5.0)])
def test_images_round_trip_through_camera_like_frames(tmp_path, decoder, px_per_module):
    rng = np.random.default_rng(5)
    data = _bytes(1200, seed=2)
    sent = encode(data, format="ur", type="bytes", density="low")
    k = len(sent.payloads)
    stream = sent.frames()
    payloads = [next(stream) for _ in range(k + 4)][2:]   # joins late: 2 pure parts missed, fountain parts cover
    frames = [C.camera_frame(C.qr_modules(p, version=sent.qr_version), rng, px_per_module=px_per_module)
              for p in payloads]
    C.write_pngs(tmp_path / "shots", frames)
    out = tmp_path / "out.bin"
    result = run("decode", "--images", str(tmp_path / "shots" / "*.png"), "--out", str(out),
                 "--decoder", decoder, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["format"] == "ur" and doc["type"] == "bytes"
    assert out.read_bytes() == data
    assert k <= doc["frames_seen"] <= k + 2


def test_a_truncated_stream_is_exit_3_says_how_far_and_writes_nothing(tmp_path):
    sent = encode(_bytes(3000, seed=3), format="bbqr", type="psbt", density="low")
    total = len(sent.payloads)
    shown = sent.payloads[: total - 2]
    out = tmp_path / "never.psbt"
    result = run("decode", "--text", str(_lines_file(tmp_path / "f.txt", shown)), "--out", str(out), "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "qr-incomplete"
    assert error["message"] == (f"the frames ended before the bbqr message was complete: "
                                f"{(total - 2) / total:.0%} received after {total - 2} frame(s) "
                                f"({total - 2} useful); nothing was written")
    assert not out.exists()


def test_a_frame_of_a_second_transmission_is_exit_3_and_nothing_is_written(tmp_path):
    first = encode(_bytes(2000, seed=4), format="ur", type="psbt", density="low")
    second = encode(_bytes(2000, seed=5), format="ur", type="psbt", density="low")
    lines = first.payloads[:3] + [second.payloads[0]] + first.payloads[3:]
    out = tmp_path / "mixed.psbt"
    result = run("decode", "--text", str(_lines_file(tmp_path / "f.txt", lines)), "--out", str(out), "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert "part of another message" in error["message"]
    assert error["where"].startswith(f"line 4 of {tmp_path / 'f.txt'}")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "f.txt"]  # no temp file left behind either


def test_scan_without_a_camera_is_exit_7(tmp_path):
    out = tmp_path / "x.psbt"
    result = run("scan", "--out", str(out), "--json")
    assert result.exit_code == 7
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "no camera 0" and error["code"] == "environment"
    result = run("decode", "--camera", "3", "--resolution", "1280x720", "--out", str(out))
    assert result.exit_code == 7
    assert "error: no camera 3" in result.output
    assert not out.exists()


def test_decode_needs_exactly_one_source(tmp_path):
    result = run("decode", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "give exactly one of --images, --video, --text or --camera" in result.output
    result = run("decode", "--text", "a.txt", "--video", "b.avi", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "(got --video, --text)" in result.output or "(got --text, --video)" in result.output
    result = run("decode", "--text", "a.txt", "--preview", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "--preview goes with --camera or --video" in result.output
    result = run("scan", "--resolution", "big", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "bad resolution 'big'" in result.output


def test_missing_inputs_are_exit_3(tmp_path):
    result = run("decode", "--images", str(tmp_path / "*.png"), "--out", str(tmp_path / "o"), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["message"] == f"no image file matches {str(tmp_path / '*.png')!r}"
    result = run("decode", "--video", str(tmp_path / "v.avi"), "--out", str(tmp_path / "o"), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["message"] == "video file not found"


def test_missing_libzbar_is_exit_7_through_the_cli(tmp_path, monkeypatch):
    import sys

    import pyzbar.zbar_library as zbar_library

    for module in ("pyzbar.pyzbar", "pyzbar.wrapper"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(zbar_library, "find_library", lambda name: None)
    C.write_pngs(tmp_path, [C.empty_frame(np.random.default_rng(1))])
    result = run("decode", "--images", str(tmp_path / "*.png"), "--decoder", "zbar",
                 "--out", str(tmp_path / "o"), "--json")
    assert result.exit_code == 7
    error = json.loads(result.stdout)["error"]
    assert "libzbar" in error["message"] and "apt-get install libzbar0" in error["hint"]


def test_help_has_examples():
    for command in ("decode", "scan"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "Example: coldsign qr " in result.output


def test_progress_on_a_terminal_is_a_rich_bar():
    import io

    from coldsign.console import ScanProgress
    from coldsign.qr.scan import MemoryFrames, receive
    from coldsign.qr.transport import Assembler

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    sent = encode(_bytes(2000, seed=9), format="ur", type="bytes", density="low")
    screen = Terminal()
    with ScanProgress("frames.txt", stream=screen) as display:
        receipt = receive(MemoryFrames(sent.payloads), Assembler(),
                          on_frame=lambda f, p, n: display.update(p, n))
        display.done(receipt)
    drawn = screen.getvalue()
    assert display.tty and "ur from frames.txt" in drawn and "100%" in drawn
    assert f"frames {len(sent.payloads)} · useful {len(sent.payloads)}" in drawn
    assert "qr: " not in drawn   # no plain lines on a terminal
