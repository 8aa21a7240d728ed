"""Animated QR through a camera-like recording, end to end.

What a receiver's webcam would record is built frame by frame: the transport encodes a
file; each payload is drawn with qrcode at the transmission's QR version and degraded by
tests/camera.py into a 1280×720 frame (scaled, slight perspective, blur, sensor noise, a
lit screen's contrast); frames are held for several camera frames, interleaved with frames
showing no code (the camera moving), shown with an unrelated QR code beside them, and
written to a Motion-JPEG AVI at 10 fps. Then `coldsign qr decode --video` (or the camera's
own VideoCapture loop, opened on the file) must give back the exact bytes.

Random choices come from seeded generators, so a failure replays.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import camera as C
from coldsign.cli.main import app
from coldsign.qr import scan
from coldsign.qr.decoders import make_decoder
from coldsign.qr.transport import Assembler, encode

UNRELATED = "https://example.com/lobby-wifi"


def _record(path: Path, payloads: list[str], version: int, rng: np.random.Generator, *, hold: int = 2,
            px_per_module: float = 3.5, blank_every: int = 4, unrelated_every: int = 3) -> tuple[Path, int]:
    """Write the recording; returns (path, number of video frames that show a code of ours)."""
    other = C.qr_modules(UNRELATED)
    frames: list[np.ndarray] = []
    showing = 0
    for i, payload in enumerate(payloads):
        qr = C.qr_modules(payload, version=version)
        others = [other] if unrelated_every and i % unrelated_every == 1 else []
        for _ in range(hold):
            frames.append(C.camera_frame(qr, rng, px_per_module=px_per_module, others=others))
            showing += 1
        if blank_every and i % blank_every == blank_every - 1:
            frames.append(C.empty_frame(rng))
    return C.write_avi(path, frames, fps=10), showing


def _decode_video(video: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["qr", "decode", "--video", str(video), "--out", str(out), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ur_psbt_joined_mid_stream_decodes_from_video(tmp_path):
    data = b"psbt\xff" + random.Random(1).randbytes(6000)
    sent = encode(data, format="ur", type="psbt", density="high")
    k = len(sent.payloads)
    stream = sent.frames()
    shown = [next(stream) for _ in range(k + 8)][3:]   # the camera arrives after 3 pure parts
    video, showing = _record(tmp_path / "ur.avi", shown, sent.qr_version, np.random.default_rng(11))
    out = tmp_path / "received.psbt"
    doc = _decode_video(video, out)
    assert out.read_bytes() == data
    assert (doc["format"], doc["type"], doc["bytes"]) == ("ur", "psbt", len(data))
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    # every useful frame raised the rank by one: exactly k of them, whatever the order
    assert doc["frames_useful"] == k
    # frames_seen counts video frames in which a QR code was read, up to the completing one
    assert k <= doc["frames_seen"] <= showing


def test_bbqr_shuffled_and_repeated_at_density_max_through_the_camera_loop(tmp_path):
    data = random.Random(2).randbytes(9000)
    sent = encode(data, format="bbqr", type="bytes", density="max")
    assert sent.qr_version >= 35   # the BBQr split rule picks the smallest version up to 40 that fits evenly
    order = sent.payloads * 2
    random.Random(3).shuffle(order)
    video, _ = _record(tmp_path / "bbqr.avi", order, sent.qr_version, np.random.default_rng(12), hold=1, px_per_module=3.3)
    # scan.Camera opens the file exactly as it opens a camera: this is the `qr scan` loop
    receipt = scan.receive(scan.Camera(str(video), resolution=(1280, 720)), Assembler(), make_decoder("zxing"))
    assert receipt.message.data == data
    assert (receipt.message.format, receipt.message.type) == ("bbqr", "bytes")
    assert receipt.frames_useful == len(sent.payloads)
    first_complete = max(order.index(p) for p in sent.payloads) + 1
    assert receipt.frames_seen == first_complete   # stops at the completing frame


def test_zbar_decodes_the_video_too(tmp_path):
    data = random.Random(4).randbytes(1500)
    sent = encode(data, format="ur", type="bytes", density="low")
    video, _ = _record(tmp_path / "zbar.avi", sent.payloads, sent.qr_version, np.random.default_rng(13),
                       hold=3, px_per_module=5.0)
    out = tmp_path / "out.bin"
    doc = _decode_video(video, out, "--decoder", "zbar")
    assert out.read_bytes() == data and doc["frames_useful"] == len(sent.payloads)


def test_a_second_transmission_in_the_video_is_refused_and_nothing_written(tmp_path):
    first = encode(random.Random(5).randbytes(3000), format="ur", type="psbt", density="medium")
    second = encode(random.Random(6).randbytes(3000), format="ur", type="psbt", density="medium")
    shown = first.payloads[:2] + second.payloads[:1] + first.payloads[2:]
    video, _ = _record(tmp_path / "mixed.avi", shown, max(first.qr_version, second.qr_version),
                       np.random.default_rng(14), hold=1, blank_every=0, unrelated_every=0)
    out = tmp_path / "mixed.psbt"
    result = CliRunner().invoke(app, ["qr", "decode", "--video", str(video), "--out", str(out), "--json"])
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert "part of another message" in error["message"]
    assert error["where"].startswith(f"frame 3 of {video}")
    assert not out.exists()


def test_a_recording_that_stops_early_is_exit_3_with_the_fraction(tmp_path):
    sent = encode(random.Random(7).randbytes(3000), format="bbqr", type="psbt", density="medium")
    total = len(sent.payloads)
    assert total >= 3
    video, _ = _record(tmp_path / "short.avi", sent.payloads[:-1], sent.qr_version, np.random.default_rng(15),
                       hold=2, blank_every=0, unrelated_every=0)
    out = tmp_path / "short.psbt"
    result = CliRunner().invoke(app, ["qr", "decode", "--video", str(video), "--out", str(out), "--json"])
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["message"] == (f"the frames ended before the bbqr message was complete: "
                                f"{(total - 1) / total:.0%} received after {2 * (total - 1)} frame(s) "
                                f"({total - 1} useful); nothing was written")
    assert not out.exists()


def test_the_preview_window_shows_the_video_being_decoded(tmp_path, x_display):
    """`--preview` opens a real OpenCV window (on a private Xvfb display, in a child process as
    users run it) and the decode still completes with the exact bytes."""
    import subprocess
    import sys

    data = b"psbt\xff" + random.Random(3).randbytes(1500)
    sent = encode(data, format="bbqr", type="psbt", density="high")
    video, _ = _record(tmp_path / "preview.avi", sent.payloads, sent.qr_version, np.random.default_rng(3))
    out = tmp_path / "out.psbt"
    child = subprocess.run([sys.executable, "-m", "coldsign", "qr", "decode", "--video", str(video), "--preview",
                            "--out", str(out), "--json"], env=x_display, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout)["sha256"] == hashlib.sha256(data).hexdigest()
    assert out.read_bytes() == data
