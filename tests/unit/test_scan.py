"""Frame sources, QR decoders and the receiving loop (coldsign.qr.scan, coldsign.qr.decoders).

Sources are exercised on real files (text, PNG, MJPG AVI written by OpenCV) and through the
in-memory twin; decoders read real camera-like frames made by tests/camera.py (seeded); the
loop runs the transport's real Assembler on real UR and BBQr transmissions. The camera class
is driven with a video file: OpenCV opens both the same way, so this is the camera's own loop.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import camera as C
from coldsign.errors import BadInput, EnvironmentProblem, ExitStatus, NotFound, UsageProblem
from coldsign.qr import preview, scan
from coldsign.qr.decoders import ZBAR_INSTALL_HINT, grayscale, make_decoder
from coldsign.qr.errors import QRDecodeError
from coldsign.qr.transport import Assembler, encode


def _bytes(n: int, *, seed: int) -> bytes:
    """Replayable message bytes (fountain parts depend on the message, so tests fix it)."""
    return random.Random(seed).randbytes(n)


@pytest.fixture()
def rng():
    return np.random.default_rng(20240601)


def _frame(payload: str, rng, **kw) -> np.ndarray:
    return C.camera_frame(C.qr_modules(payload), rng, **kw)


# --- text lines ----------------------------------------------------------------------------

def test_text_lines_yield_stripped_payloads_with_their_line_numbers(tmp_path):
    path = tmp_path / "frames.txt"
    path.write_bytes(b"UR:BYTES/ONE\r\n\n   \n  B$2U0100ABC  \nlast-without-newline")
    frames = list(scan.TextLines(path).frames())
    assert [(f.index, f.text) for f in frames] == [(1, "UR:BYTES/ONE"), (4, "B$2U0100ABC"),
                                                   (5, "last-without-newline")]
    assert frames[1].where == f"line 4 of {path}"
    assert all(f.image is None for f in frames)


def test_text_lines_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound) as err:
        list(scan.TextLines(tmp_path / "nope.txt").frames())
    assert err.value.message == "text file of QR payloads not found"
    assert err.value.where == str(tmp_path / "nope.txt")


def test_text_lines_refuse_an_overlong_line_and_binary(tmp_path):
    path = tmp_path / "frames.txt"
    path.write_text("UR:OK\n" + "A" * 101 + "\n")
    with pytest.raises(BadInput) as err:
        list(scan.TextLines(path, max_line_chars=100).frames())
    assert err.value.message == "the line is longer than 100 characters"
    assert err.value.where == f"line 2 of {path}"
    path.write_bytes(b"\xff\xfe\x00binary\n")
    with pytest.raises(BadInput) as err:
        list(scan.TextLines(path).frames())
    assert err.value.message == "the line is not UTF-8 text"


# --- image files ---------------------------------------------------------------------------

def test_image_files_are_read_in_name_order(tmp_path, rng):
    payloads = ["UR:BYTES/FIRST", "UR:BYTES/SECOND", "UR:BYTES/THIRD"]
    # written in reverse so that file-system order and creation order are not name order
    for i in reversed(range(3)):
        C.write_pngs(tmp_path, [_frame(payloads[i], rng)], stem=f"f{i}")
    (tmp_path / "sub.png").mkdir()  # a folder matching the glob is not an image
    source = scan.ImageFiles(str(tmp_path / "*.png"))
    frames = list(source.frames())
    assert [f.where for f in frames] == [f"image {tmp_path / f'f{i}-0001.png'}" for i in range(3)]
    decoder = make_decoder("zxing")
    assert [decoder.decode(f.image) for f in frames] == [[p] for p in payloads]
    assert frames[0].image.ndim == 2 and frames[0].image.shape == (720, 1280)


def test_image_glob_without_match_is_not_found(tmp_path):
    with pytest.raises(NotFound) as err:
        scan.ImageFiles(str(tmp_path / "*.png")).paths()
    assert err.value.message == f"no image file matches {str(tmp_path / '*.png')!r}"


def test_a_file_that_is_not_an_image_is_bad_input(tmp_path):
    (tmp_path / "a.png").write_text("UR:BYTES/NOT-AN-IMAGE")
    with pytest.raises(BadInput) as err:
        list(scan.ImageFiles(str(tmp_path / "*.png")).frames())
    assert err.value.message == "not a picture in a format coldsign reads (PNG, JPEG, BMP, TIFF)"
    assert err.value.where == str(tmp_path / "a.png") and err.value.code == scan.UNREADABLE_IMAGE


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    import cv2

    path = tmp_path / "huge.png"
    cv2.imwrite(str(path), np.zeros((4400, 7700), dtype=np.uint8))  # 33.9 Mpx, compresses to KBs
    with pytest.raises(BadInput) as err:
        scan.read_image(path)
    assert err.value.message == f"the image is 7700×4400 pixels, over the limit of {scan.MAX_FRAME_PIXELS} pixels"


# --- video and camera (one VideoCapture loop) ----------------------------------------------

@pytest.fixture()
def clip(tmp_path, rng):
    """An AVI of 5 frames: QR 'A', nothing, QR 'B', nothing, QR 'C'."""
    frames = [_frame("UR:BYTES/A", rng), C.empty_frame(rng), _frame("UR:BYTES/B", rng),
              C.empty_frame(rng), _frame("UR:BYTES/C", rng)]
    return C.write_avi(tmp_path / "clip.avi", frames)


def test_video_file_yields_every_frame_in_order(clip):
    frames = list(scan.VideoFile(clip).frames())
    assert [f.index for f in frames] == [1, 2, 3, 4, 5]
    assert frames[0].image.shape == (720, 1280, 3)
    decoder = make_decoder("zxing")
    assert [decoder.decode(f.image) for f in frames] == [["UR:BYTES/A"], [], ["UR:BYTES/B"], [], ["UR:BYTES/C"]]
    assert frames[2].where == f"frame 3 of {clip}"


def test_video_file_missing_or_not_a_video(tmp_path):
    with pytest.raises(NotFound) as err:
        list(scan.VideoFile(tmp_path / "none.avi").frames())
    assert err.value.message == "video file not found"
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"RIFF\x00\x00\x00\x00not a video at all" * 10)
    with pytest.raises(BadInput) as err:
        list(scan.VideoFile(bogus).frames())
    assert err.value.message == "not a video file OpenCV can read"


def test_no_camera_is_an_environment_problem():
    # this machine has no camera; number 9 is absent on any ordinary machine as well
    with pytest.raises(EnvironmentProblem) as err:
        list(scan.Camera(9).frames())
    assert err.value.message == "no camera 9"
    assert err.value.exit_status == ExitStatus.ENVIRONMENT
    assert err.value.hint == "connect a camera (Linux: it appears as /dev/video*) or pick another camera number"


def test_camera_loop_reads_a_stream_and_reports_when_it_stops(clip):
    source = scan.Camera(str(clip), resolution=(1280, 720))
    seen = []
    with pytest.raises(EnvironmentProblem) as err:
        for frame in source.frames():
            seen.append(frame.index)
    assert seen == [1, 2, 3, 4, 5]
    assert err.value.message == f"camera {clip} stopped delivering frames after 5 frame(s)"


def test_parse_resolution():
    assert scan.parse_resolution("1280x720") == (1280, 720)
    assert scan.parse_resolution("1920X1080") == (1920, 1080)
    for bad in ("1280", "x720", "0x0", "1280x720x3", "wide", "99999x720"):
        with pytest.raises(UsageProblem) as err:
            scan.parse_resolution(bad)
        assert err.value.message == f"bad resolution {bad!r}"


# --- the in-memory twin --------------------------------------------------------------------

def test_memory_frames_turn_strings_into_text_and_arrays_into_images(rng):
    image = C.empty_frame(rng)
    frames = list(scan.MemoryFrames(["UR:BYTES/X", image], description="twin").frames())
    assert frames[0].text == "UR:BYTES/X" and frames[0].image is None
    assert frames[1].image is image and frames[1].text is None
    assert frames[1].where == "frame 2 of twin"
    with pytest.raises(BadInput) as err:
        list(scan.MemoryFrames([np.zeros((5000, 7000), np.uint8)]).frames())
    assert err.value.message.startswith("the frame is 7000×5000 pixels, over the limit")


# --- decoders ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zxing", "zbar"])
def test_decoders_read_every_qr_code_in_a_camera_like_frame(name, rng):
    frame = C.camera_frame(C.qr_modules("B$2U0100HELLO", version=12), rng,
                           others=[C.qr_modules("https://example.com/unrelated")])
    decoder = make_decoder(name)
    assert decoder.name == name
    assert sorted(decoder.decode(frame)) == ["B$2U0100HELLO", "https://example.com/unrelated"]
    assert decoder.decode(C.empty_frame(rng)) == []
    # grayscale and BGRA frames read the same
    gray = grayscale(frame)
    assert gray.shape == (720, 1280)
    import cv2

    assert sorted(decoder.decode(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))) == sorted(decoder.decode(gray))


def test_decoders_refuse_what_is_not_an_8_bit_image():
    with pytest.raises(BadInput) as err:
        grayscale(np.zeros((10, 10), dtype=np.float32))
    assert err.value.message == "an image must hold 8-bit pixels, not float32"
    with pytest.raises(BadInput) as err:
        grayscale(np.zeros((10, 10, 2), dtype=np.uint8))
    assert err.value.message == "an image must be grayscale or colour, not an array of shape (10, 10, 2)"


def test_unknown_decoder_is_a_usage_error():
    with pytest.raises(UsageProblem) as err:
        make_decoder("opencv")
    assert err.value.message == "unknown QR decoder 'opencv'"


def test_missing_libzbar_is_exit_7_with_the_install_hint(monkeypatch):
    """The system library is present here, so make it unfindable the way a machine without
    libzbar0 does: ctypes' find_library returns None, and pyzbar is imported afresh."""
    import sys

    import pyzbar.zbar_library as zbar_library

    for module in ("pyzbar.pyzbar", "pyzbar.wrapper"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(zbar_library, "find_library", lambda name: None)
    with pytest.raises(EnvironmentProblem) as err:
        make_decoder("zbar")
    assert err.value.message == ("the zbar decoder needs the libzbar system library, which could not be "
                                 "loaded (Unable to find zbar shared library)")
    assert err.value.hint == ZBAR_INSTALL_HINT
    assert "libzbar0" in err.value.hint
    assert err.value.exit_status == 7


# --- the receiving loop --------------------------------------------------------------------

def _ur(data: bytes, density: str = "low"):
    return encode(data, format="ur", type="bytes", density=density)


def test_receive_stops_at_the_completing_frame_and_reads_nothing_after():
    data = _bytes(1500, seed=1)
    sent = _ur(data)
    other = _ur(_bytes(1500, seed=2))
    frames = sent.payloads + [other.payloads[0]]  # another transmission, after completion
    calls = []
    receipt = scan.receive(scan.MemoryFrames(frames), Assembler(),
                           on_frame=lambda f, p, n: calls.append((f.index, n, p.fraction)))
    assert receipt.message.data == data and receipt.message.format == "ur"
    assert receipt.frames_seen == len(sent.payloads) == receipt.frames_useful
    assert calls[-1] == (len(sent.payloads), len(sent.payloads), 1.0)
    assert len(calls) == len(sent.payloads)


def test_receive_shuffled_duplicated_with_unrelated_codes_on_images(rng):
    data = _bytes(900, seed=3)
    sent = encode(data, format="bbqr", type="bytes", density="low")
    order = sent.payloads * 2
    random.Random(7).shuffle(order)
    images = [C.camera_frame(C.qr_modules(p, version=sent.qr_version), rng,
                             others=[C.qr_modules("WIFI:S:lobby;;")] if i % 2 else [])
              for i, p in enumerate(order)]
    receipt = scan.receive(scan.MemoryFrames(images), Assembler(), make_decoder("zxing"))
    assert receipt.message.data == data and receipt.message.format == "bbqr"
    assert receipt.payloads > receipt.frames_seen  # the unrelated codes were read and ignored
    assert receipt.frames_useful == len(sent.payloads)


def test_frames_without_a_qr_count_only_for_sources_that_count_every_frame(rng):
    data = _bytes(200, seed=4)
    sent = _ur(data)
    blank = C.empty_frame(rng)
    items = [blank] + [C.camera_frame(C.qr_modules(p), rng) for p in sent.payloads] + [blank]
    as_video = scan.MemoryFrames(items, count_every_frame=False)
    assert scan.receive(as_video, Assembler(), make_decoder("zxing")).frames_seen == len(sent.payloads)
    as_images = scan.MemoryFrames(items, count_every_frame=True)
    assert scan.receive(as_images, Assembler(), make_decoder("zxing")).frames_seen == len(sent.payloads) + 1


def test_a_stream_that_ends_early_says_how_far_it_got():
    sent = _ur(_bytes(1500, seed=5))
    k = len(sent.payloads)
    with pytest.raises(QRDecodeError) as err:
        scan.receive(scan.MemoryFrames(sent.payloads[:k // 2] + ["hello"], description="half"), Assembler())
    got = k // 2
    assert err.value.code == "qr-incomplete"
    assert err.value.message == (f"the frames ended before the ur message was complete: {got / k:.0%} received "
                                 f"after {got + 1} frame(s) ({got} useful); nothing was written")
    assert err.value.where == "half"


def test_a_stream_without_any_qr_code_says_so(rng):
    with pytest.raises(QRDecodeError) as err:
        scan.receive(scan.MemoryFrames([C.empty_frame(rng)] * 3), Assembler(), make_decoder("zxing"))
    assert err.value.message == "no QR code found in 3 frame(s)"
    with pytest.raises(QRDecodeError) as err:
        scan.receive(scan.MemoryFrames(["https://example.com", "WIFI:S:x;;"]), Assembler())
    assert err.value.message == "no QR code of a known format (2 unrelated) found in 2 frame(s)"


def test_a_frame_of_a_second_transmission_is_refused_at_its_frame():
    first, second = _ur(_bytes(1500, seed=6)), _ur(_bytes(1500, seed=7))
    frames = first.payloads[:2] + [second.payloads[3]] + first.payloads[2:]
    with pytest.raises(QRDecodeError) as err:
        scan.receive(scan.MemoryFrames(frames, description="mix"), Assembler())
    assert "part of another message" in err.value.message
    assert err.value.where == "frame 3 of mix, part 4"


def test_image_frames_need_a_decoder(rng):
    with pytest.raises(UsageProblem) as err:
        scan.receive(scan.MemoryFrames([C.empty_frame(rng)], description="m"), Assembler())
    assert err.value.message == "frame 1 of m is an image and no QR decoder was given"


# --- the preview window's guard and overlay ------------------------------------------------

def test_preview_without_a_display_is_exit_7_not_a_qt_abort(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    with pytest.raises(EnvironmentProblem) as err:
        with preview.PreviewWindow():
            pass
    assert err.value.message == "no display to open a window on (DISPLAY is not set)"
    monkeypatch.setenv("QT_QPA_PLATFORM", "nosuchplugin")
    with pytest.raises(EnvironmentProblem) as err:
        with preview.PreviewWindow():
            pass
    assert "QT_QPA_PLATFORM=nosuchplugin is not available in this OpenCV build" in err.value.message


def test_progress_overlay_draws_the_bar_in_proportion(rng):
    from coldsign.qr.transport import Progress

    image = np.zeros((720, 1280, 3), np.uint8)
    preview.draw_progress(image, Progress("ur", 0.5, 10, 7, False), 10)
    bottom = image[-2]
    assert tuple(bottom[100]) == (60, 200, 60) and tuple(bottom[1200]) == (40, 40, 40)
    assert tuple(bottom[638]) == (60, 200, 60) and tuple(bottom[642]) == (40, 40, 40)
