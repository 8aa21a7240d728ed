"""Rendering and showing QR frames (coldsign.qr.render, coldsign.qr.display).

Every rendered frame is read back with zxing-cpp (the decoder `qr scan` uses), so a test fails if
a code is drawn wrong, at the wrong version, without its quiet zone, or with the half blocks
upside down. Payloads are plain upper-case strings shaped like UR and BBQr parts; the codecs have
their own tests. The animation loop runs on the in-memory sink with a manual clock (no sleeping),
and once in a real OpenCV window on Qt's offscreen platform, quit by a scripted 'q'.
"""

from __future__ import annotations

import io
import itertools
import re
import threading

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from coldsign.errors import BadInput, EnvironmentProblem
from coldsign.qr import display as D
from coldsign.qr.render import (FrameRenderer, FrameTooLarge, half_blocks, modules_from_half_blocks, prefetch,
                                render_modules, side_modules, terminal_cells, to_array, to_image)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def ur_part(seq: int, k: int, length: int = 120) -> str:
    body = "".join(ALPHABET[(seq * 7 + i * 13) % 26] for i in range(length))
    return f"UR:BYTES/{seq}-{k}/{body}"


def decode(pixels) -> list[zxingcpp.Result]:
    return zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)


def decode_one(pixels) -> tuple[str, str]:
    found = decode(pixels)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0].text, found[0].extra["Version"]


# --- render ------------------------------------------------------------------------------------

def test_frames_of_different_lengths_share_one_version_and_size_and_decode_exactly():
    payloads = [ur_part(1, 3, 20), ur_part(2, 3, 200), "B$2P0300" + "Q" * 300]
    renderer = FrameRenderer(10)
    frames = list(renderer.frames(payloads))
    assert {f.modules.shape for f in frames} == {(side_modules(10),) * 2} == {(65, 65)}
    for frame, payload in zip(frames, payloads):
        assert decode_one(frame.to_array(4)) == (payload, "10")
    assert [f.index for f in frames] == [0, 1, 2]


@pytest.mark.parametrize("mask", range(8))
def test_every_fixed_mask_gives_a_code_that_decodes(mask):
    payload = ur_part(3, 40, 900)
    modules = render_modules(payload, 20, mask=mask)
    found = decode(to_array(modules, 3))
    assert [(r.text, r.extra["Version"], r.extra["DataMask"]) for r in found] == [(payload, "20", mask)]


def test_png_frames_decode_back_to_the_payload():
    payload = ur_part(7, 9, 400)
    buffer = io.BytesIO()
    to_image(render_modules(payload, 15), 5).save(buffer, format="PNG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    assert image.size == (side_modules(15) * 5,) * 2 == (425, 425)
    assert decode_one(image) == (payload, "15")


def test_quiet_zone_is_four_light_modules_and_error_correction_is_low():
    modules = render_modules("HELLO", 1)
    assert modules.shape == (29, 29)
    assert not modules[:4].any() and not modules[-4:].any() and not modules[:, :4].any() and not modules[:, -4:].any()
    assert modules[4, 4:11].all()  # the top row of the finder pattern
    found = decode(to_array(modules, 4))
    assert found[0].ec_level == "L"


def test_a_payload_too_long_for_the_version_is_refused_with_advice():
    with pytest.raises(FrameTooLarge) as info:
        render_modules("A" * 200, 2)
    assert info.value.exit_status == 3
    assert info.value.message == "a 200-character frame does not fit a version-2 QR code at error correction L"
    assert "--density" in info.value.hint


def test_renderer_builds_each_payload_once_and_bounds_its_cache():
    renderer = FrameRenderer(3, cache_frames=2)
    a, b, c = "UR:A", "UR:B", "UR:C"
    first = renderer.frame(a)
    assert renderer.frame(a).modules is first.modules and renderer.rendered == 1
    renderer.frame(b), renderer.frame(c)          # evicts a (least recently used)
    assert renderer.rendered == 3
    renderer.frame(c)
    assert renderer.rendered == 3
    renderer.frame(a)
    assert renderer.rendered == 4
    with pytest.raises(ValueError):
        first.modules[0, 0] = True                # cached matrices are read-only


def test_prefetch_keeps_order_and_hands_over_a_build_error():
    renderer = FrameRenderer(2)
    payloads = [f"UR:BYTES/{i}-5/AB" for i in range(1, 6)]
    with prefetch(renderer.frames(payloads), ahead=2) as frames:
        assert [f.payload for f in frames] == payloads
    bad = prefetch(renderer.frames(["OK", "X" * 500, "NEVER"]), ahead=1)
    assert next(bad).payload == "OK"
    with pytest.raises(FrameTooLarge, match="500-character frame does not fit a version-2"):
        next(bad)
    bad.close()


def test_prefetch_stops_its_thread_on_close_even_for_an_endless_stream():
    renderer = FrameRenderer(2)
    endless = prefetch(renderer.frames(f"F{i}" for i in itertools.count()), ahead=3)
    assert next(endless).payload == "F0"
    endless.close()
    assert not any(t.name == "qr-prefetch" and t.is_alive() for t in threading.enumerate())


# --- half blocks -------------------------------------------------------------------------------

def test_half_blocks_have_the_right_dimensions_and_decode_after_rasterising():
    payload = "UR:BYTES/HDCXLKAHSSQZWFVSLOFZOXWKRDCTFYKOEHSNWLIAKNYAZOEEBEDOLIYBKBJ"
    modules = render_modules(payload, 4)
    lines = half_blocks(modules)
    side = side_modules(4)
    assert side == 41 and terminal_cells(4) == (41, 21)
    assert len(lines) == 21 and {len(line) for line in lines} == {41}
    assert set("".join(lines)) <= set("█▀▄ ")
    assert lines[0] == lines[1] == " " * 41       # quiet zone: two text rows = four module rows
    back = modules_from_half_blocks(lines)
    assert back.shape == (42, 41)
    assert np.array_equal(back[:41], modules) and not back[41].any()   # odd row paired with a light one
    assert decode_one(to_array(back, 6)) == (payload, "4")


def test_half_block_text_with_a_foreign_character_is_rejected():
    with pytest.raises(BadInput, match=r"line 2 holds 'x', not a half block"):
        modules_from_half_blocks(["█▀", "▄x"])


# --- the animation loop on the in-memory sink --------------------------------------------------

def bbqr_stream(renderer: FrameRenderer, parts: list[str]) -> D.FrameStream:
    return D.FrameStream(renderer.frames(itertools.cycle(parts)), len(parts), "BBQr test", renderer.version)


def ur_stream(renderer: FrameRenderer, k: int) -> D.FrameStream:
    payloads = (ur_part(seq, k, 30) for seq in itertools.count(1))
    return D.FrameStream(renderer.frames(payloads), k, "UR test", renderer.version)


def test_bbqr_cycles_its_parts_and_stops_after_the_cycles_asked():
    parts = [f"B$2P03{i:02d}ABC" for i in range(3)]
    renderer = FrameRenderer(2)
    sink = D.MemorySink()
    report = D.animate(lambda _d: bbqr_stream(renderer, parts), sink, fps=5, cycles=2, clock=sink.clock)
    assert sink.payloads == parts * 2
    assert report.stopped_by == "cycles" and report.frames_shown == 6
    assert sink.clock.now == pytest.approx(6 / 5)   # each frame stays up 1/fps, the last one too
    assert renderer.rendered == 3                   # the second cycle came from the cache
    assert sink.closed and sink.versions == [2]


def test_ur_shows_the_pure_parts_first_then_fountain_parts():
    renderer = FrameRenderer(3)
    sink = D.MemorySink()
    D.animate(lambda _d: ur_stream(renderer, 4), sink, fps=10, cycles=3, clock=sink.clock)
    assert sink.payloads == [ur_part(seq, 4, 30) for seq in range(1, 13)]
    statuses = [status for _, status in sink.shown]
    assert statuses[0].startswith("UR test  frame 1/4") and statuses[3].startswith("UR test  frame 4/4")
    assert "frame 5 (fountain)" in statuses[4]


def test_seconds_stop_the_loop_at_the_frame_rate():
    sink = D.MemorySink()
    report = D.animate(lambda _d: ur_stream(FrameRenderer(3), 2), sink, fps=10, seconds=1.0, clock=sink.clock)
    assert report.stopped_by == "seconds" and report.frames_shown == 10
    assert report.seconds == pytest.approx(1.0)


def test_keys_quit_pause_and_change_speed():
    renderer = FrameRenderer(2)
    parts = ["P0", "P1", "P2"]
    sink = D.MemorySink(keys={2: "+", 3: "q"})
    report = D.animate(lambda _d: bbqr_stream(renderer, parts), sink, fps=4, clock=sink.clock)
    assert report.stopped_by == "quit" and sink.payloads == ["P0", "P1", "P2"]
    assert report.fps == pytest.approx(5.0)

    sink = D.MemorySink(keys={1: " "})            # pause on the first frame: it stays up
    report = D.animate(lambda _d: bbqr_stream(renderer, parts), sink, fps=4, seconds=3, clock=sink.clock)
    assert sink.payloads == ["P0"] and report.stopped_by == "seconds"


def test_denser_key_encodes_again_at_the_next_density_and_starts_over():
    asked: list[str | None] = []
    versions = {"low": 2, "medium": 3, "high": 4, "max": 5}

    def stream_for(density):
        asked.append(density)
        return bbqr_stream(FrameRenderer(versions[density]), [f"{density.upper()}{i}" for i in range(2)])

    sink = D.MemorySink(keys={1: "d", 3: "s", 4: "q"})
    report = D.animate(stream_for, sink, fps=5, density="medium", clock=sink.clock)
    assert asked == ["medium", "high", "medium"]
    assert sink.payloads == ["MEDIUM0", "HIGH0", "HIGH1", "MEDIUM0"]
    assert sink.versions == [3, 4, 3] and report.restarts == 2 and report.density == "medium"
    assert [f.version for f, _ in sink.shown] == [3, 4, 4, 3]


def test_density_keys_stay_within_the_densities_allowed():
    asked = []

    def stream_for(density):
        asked.append(density)
        return bbqr_stream(FrameRenderer(2), [density])

    sink = D.MemorySink(keys={1: "d", 2: "s", 3: "s", 4: "q"})
    report = D.animate(stream_for, sink, fps=5, density="medium", densities=("low", "medium"), clock=sink.clock)
    assert asked == ["medium", "low"] and sink.payloads == ["medium", "medium", "low", "low"]
    assert report.restarts == 1


def test_density_keys_do_nothing_when_the_size_was_given_by_fragment_length():
    sink = D.MemorySink(keys={1: "d", 2: "q"})
    report = D.animate(lambda _d: bbqr_stream(FrameRenderer(2), ["A", "B"]), sink, fps=5, density=None,
                       clock=sink.clock)
    assert sink.payloads == ["A", "B"] and report.restarts == 0


def test_pick_density_takes_the_densest_that_fits():
    versions = {"low": 12, "medium": 20, "high": 30, "max": 40}
    assert D.pick_density(lambda v: v <= 25, versions) == "medium"
    assert D.pick_density(lambda v: v <= 11, versions) is None


# --- the terminal sink -------------------------------------------------------------------------

def console(width: int, height: int):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, height=height, color_system=None, force_terminal=True)


def screen_lines(output: str) -> list[str]:
    """What a terminal shows after the first full-screen refresh: escape sequences removed."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).splitlines()


def test_terminal_too_small_says_the_size_it_needs():
    sink = D.TerminalSink(console(60, 30))
    assert sink.needed(10) == (65, 34)
    with pytest.raises(EnvironmentProblem) as info:
        sink.open(10)
    assert info.value.exit_status == 7
    assert info.value.message == "the terminal is 60x30 characters; a version-10 QR code needs 65x34"
    assert "--density" in info.value.hint and "--window" in info.value.hint
    sink.close()


def test_terminal_sink_draws_a_code_that_decodes():
    out = console(80, 40)
    sink = D.TerminalSink(out)
    renderer = FrameRenderer(5)
    report = D.animate(lambda _d: bbqr_stream(renderer, ["B$2U0100HELLO"]), sink, fps=50, cycles=1)
    assert report.frames_shown == 1
    cols, rows = terminal_cells(5)
    screen = screen_lines(out.file.getvalue())
    assert all(line[cols:].strip() == "" for line in screen[:rows])     # nothing right of the code
    code = [line[:cols] for line in screen[:rows]]
    assert decode_one(to_array(modules_from_half_blocks(code), 5)) == ("B$2U0100HELLO", "5")
    assert screen[rows].startswith("BBQr test  frame 1/1  50.0 fps")  # the status line under the code


# --- the window sink ---------------------------------------------------------------------------


WINDOW_LOOP = """
import json, cv2
from coldsign.qr import display as D
from coldsign.qr.render import FrameRenderer

calls = []

def keys(milliseconds):
    cv2.waitKey(milliseconds)              # the real wait: the window processes its events
    calls.append(milliseconds)
    return ord("q") if sink.shown == 4 else -1

sink = D.WindowSink(title="coldsign test", keys=keys, target_px=300)
renderer = FrameRenderer(3)
parts = (f"UR:BYTES/{seq}-3/LPADAXCFAOGSCY" for seq in __import__("itertools").count(1))
stream = D.FrameStream(renderer.frames(parts), 3, "UR test", 3)
report = D.animate(lambda _d: stream, sink, fps=50, seconds=20)   # a broken quit key stops by time
print(json.dumps({"stopped_by": report.stopped_by, "frames": report.frames_shown, "shown": sink.shown,
                  "calls": calls, "open": sink._open,
                  "visible": cv2.getWindowProperty("coldsign test", cv2.WND_PROP_VISIBLE) if sink._open else None}))
"""


def test_window_loop_shows_frames_and_quits_on_q(x_display):
    import json
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", WINDOW_LOOP], env=x_display, capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert (report["stopped_by"], report["frames"], report["shown"], report["open"]) == ("quit", 4, 4, False)
    assert report["calls"] and all(1 <= ms <= 20 for ms in report["calls"])   # never longer than a frame at 50 fps


def test_window_without_a_display_is_an_environment_problem(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    sink = D.WindowSink()
    with pytest.raises(EnvironmentProblem) as info:
        D.animate(lambda _d: ur_stream(FrameRenderer(2), 2), sink, fps=5, cycles=1)
    assert info.value.exit_status == 7
    assert info.value.message == "no display to open a window on (DISPLAY is not set)"


def test_an_unavailable_qt_platform_is_refused_before_qt_aborts(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    with pytest.raises(EnvironmentProblem, match=r"QT_QPA_PLATFORM=no-such-platform is not available"):
        D.check_window_platform()


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_a_frame_picture_gives_back_its_modules(tmp_path, scale):
    """The rehearsal's camera photographs the PNG a command drew: its modules, read off the picture
    (the quiet zone tells the pixels a module), are the frame's own. A picture without the quiet
    zone is refused."""
    import numpy as np

    from coldsign.qr import camera_sim
    from coldsign.qr.render import FrameRenderer

    frame = FrameRenderer(8).frame(ur_part(1, 3), 0)
    path = tmp_path / "frame.png"
    frame.to_image(scale).convert("1").save(path)           # as `qr encode` writes it
    assert np.array_equal(camera_sim.picture_modules(path), frame.to_array())
    frame.to_image(scale).crop((4 * scale, 4 * scale, frame.side * scale, frame.side * scale)).save(path)
    with pytest.raises(BadInput, match="not a QR frame picture"):
        camera_sim.picture_modules(path)
