"""`coldsign qr decode` and `coldsign qr scan`: animated QR in, one file out.

Both commands run the same path: a frame source (coldsign.qr.scan), a QR decoder
(coldsign.qr.decoders), the transport's Assembler, a progress display on stderr, and an
atomic write of the message once, and only once, it is complete. Registered on
coldsign.cli.qr.app.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from coldsign.console import ScanProgress
from coldsign.cli.app import JsonFlag, Settings, emit, settings_of
from coldsign.cli.qr import app
from coldsign.errors import UsageProblem


class DecoderName(str, Enum):
    zxing = "zxing"
    zbar = "zbar"


OutOpt = Annotated[Path, typer.Option("--out", help="where to write the received file (a PSBT is written "
                                      "as binary)")]
DecoderOpt = Annotated[DecoderName, typer.Option("--decoder", help="QR decoder: zxing (zxing-cpp, fast) or "
                                                 "zbar (the system libzbar)")]
ResolutionOpt = Annotated[Optional[str], typer.Option("--resolution", help="camera resolution WIDTHxHEIGHT, "
                                                      "e.g. 1280x720")]
ImagesOpt = Annotated[Optional[str], typer.Option("--images", help="image files, a glob read in name order "
                                                "(quote it: 'frames/*.png')")]
VideoOpt = Annotated[Optional[Path], typer.Option("--video", help="a video file (AVI, MP4, MKV)")]
CameraOpt = Annotated[Optional[int], typer.Option("--camera", help="camera number (0 = the first)")]
PreviewOpt = Annotated[bool, typer.Option("--preview", help="show the camera's view with the progress in a "
                                          "window (q or Esc stops)")]


@app.command("decode")
def decode(
    ctx: typer.Context,
    out: OutOpt,
    images: ImagesOpt = None,
    video: VideoOpt = None,
    text: Annotated[Optional[Path], typer.Option("--text", help="a text file, one QR payload a line "
                                                 "(frames.txt)")] = None,
    camera: CameraOpt = None,
    resolution: ResolutionOpt = None,
    preview: PreviewOpt = False,
    decoder: DecoderOpt = DecoderName.zxing,
    json_flag: JsonFlag = False,
) -> None:
    """Read an animated QR (UR, BBQr, Specter) or a one-frame PSBT/transaction QR; write the file it carries.

    Sources: --images GLOB, --video FILE, --text FILE (one payload a line) or --camera N.

    Stops at the frame that completes the message. Any order, repeats and unrelated QR codes are fine.

    A frame of a different transmission is refused (exit 3) and nothing is written.

    Example: coldsign qr decode --video signed.avi --out signed.psbt --json
    """
    settings = settings_of(ctx, json_flag)
    source = frame_source(images, video, text, camera, resolution, preview,
                          example="coldsign qr decode --video signed.avi --out signed.psbt")
    receive_to_file(settings, source, out, decoder=decoder.value, preview=preview)


def frame_source(images: str | None, video: Path | None, text: Path | None, camera: int | None,
                 resolution: str | None, preview: bool, *, example: str) -> Any:
    """The one frame source the options name (--images, --video, --text or --camera)."""
    from coldsign.qr import scan as frames

    chosen = [name for name, value in (("--images", images), ("--video", video), ("--text", text),
                                        ("--camera", camera)) if value is not None]
    if len(chosen) != 1:
        raise UsageProblem("give exactly one of --images, --video, --text or --camera"
                           + (f" (got {', '.join(chosen)})" if chosen else ""), hint=f"e.g. {example}")
    if resolution and camera is None:
        raise UsageProblem("--resolution goes with --camera")
    if preview and camera is None and video is None:
        raise UsageProblem("--preview goes with --camera or --video")
    if images is not None:
        return frames.ImageFiles(images)
    if video is not None:
        return frames.VideoFile(video)
    if text is not None:
        return frames.TextLines(text)
    return frames.Camera(camera, resolution=frames.parse_resolution(resolution) if resolution else None)


@app.command("scan")
def scan(
    ctx: typer.Context,
    out: OutOpt,
    camera: Annotated[int, typer.Option("--camera", help="camera number (0 = the first)")] = 0,
    resolution: ResolutionOpt = None,
    preview: PreviewOpt = False,
    decoder: DecoderOpt = DecoderName.zxing,
    json_flag: JsonFlag = False,
) -> None:
    """Scan an animated QR with the camera and write the file it carries (`qr decode --camera`).

    Hold the camera on the other screen until the bar reaches 100%; joining at any point is fine.

    No camera: exit 7.

    Example: coldsign qr scan --preview --resolution 1280x720 --out withdrawal.psbt
    """
    from coldsign.qr import scan as frames

    settings = settings_of(ctx, json_flag)
    size = frames.parse_resolution(resolution) if resolution else None
    receive_to_file(settings, frames.Camera(camera, resolution=size), out, decoder=decoder.value,
                    preview=preview)


def receive_to_file(settings: Settings, source: Any, out: Path, *, decoder: str, preview: bool) -> None:
    """Read `source` to a complete message, write it atomically to `out`, report it."""
    from coldsign.store import atomic_write

    if out.is_dir():
        raise UsageProblem(f"--out {out} is a folder", hint="give a file name, e.g. --out signed.psbt")
    receipt = receive_message(source, decoder=decoder, preview=preview)
    message = receipt.message
    atomic_write(out, message.data)
    doc = {"format": message.format, "type": message.type, "frames_seen": receipt.frames_seen,
           "bytes": len(message.data), "sha256": hashlib.sha256(message.data).hexdigest(), "out": str(out),
           "frames_useful": receipt.frames_useful, "seconds": round(receipt.seconds, 3)}

    def render() -> None:
        typer.echo(f"Received a {message.type} ({message.format}) of {len(message.data)} bytes from "
                   f"{receipt.frames_seen} frame(s) in {receipt.seconds:.1f} s")
        typer.echo(f"  wrote {out}  sha256 {doc['sha256']}")

    emit(settings, doc, render)


def receive_message(source: Any, *, decoder: str = "zxing", preview: bool = False,
                    ur_types: tuple[str, ...] | None = None):
    """Read `source` to one complete message with a progress bar (and the preview window);
    `ur_types` widens the UR types accepted (account exports). Returns the scan's Receipt."""
    from coldsign.qr.decoders import make_decoder
    from coldsign.qr.preview import PreviewWindow
    from coldsign.qr.scan import receive
    from coldsign.qr.transport import Assembler

    reader = make_decoder(decoder) if source.yields_images else None
    assembler = Assembler() if ur_types is None else Assembler(ur_types=ur_types)
    display = ScanProgress(source.description)
    window = PreviewWindow() if preview else None

    def on_frame(frame, progress, frames_seen) -> None:
        display.update(progress, frames_seen)
        if window is not None:
            window.show(frame, progress, frames_seen)

    with display:
        if window is not None:
            with window:
                receipt = receive(source, assembler, reader, on_frame=on_frame)
        else:
            receipt = receive(source, assembler, reader, on_frame=on_frame)
        display.done(receipt)
    return receipt
