"""`coldsign qr encode` and `coldsign qr show`: one file out as animated QR codes.

Both read the file once (a PSBT in binary, base64 or hex; or, with `--type`, a transaction or raw
bytes), split it with the transport (`coldsign.qr.transport.encode`: UR or BBQr payloads and the
one QR version they all fit), and draw every frame at that version (`coldsign.qr.render`).
`encode` writes the frames to files (ARCHITECTURE §4); `show` animates them in the terminal or
in a window (`coldsign.qr.display`). Registered on coldsign.cli.qr.app.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, settings_of
from coldsign.cli.qr import app
from coldsign.errors import BadInput, EnvironmentProblem, TransactionDecodeError, UsageProblem
from coldsign.limits import LIMITS
from coldsign.qr.media import stale_frames, write_frames, write_gif, write_mp4



class QRFormat(str, Enum):
    ur = "ur"
    bbqr = "bbqr"


class Density(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"
    max = "max"


class Kind(str, Enum):
    psbt = "psbt"
    transaction = "transaction"
    bytes = "bytes"
    json = "json"


# --- shared helpers ----------------------------------------------------------------------------

FileArg = Annotated[Path, typer.Argument(help="the file to send: a PSBT (binary, base64 or hex), or what "
                                         "--type says")]
TypeOpt = Annotated[Kind, typer.Option("--type", help="what FILE holds: psbt (default), transaction (binary "
                                       "or hex), json (a signing request bundle, log export: BBQr type J) or "
                                       "bytes (sent as they are)")]
MaxFragmentOpt = Annotated[Optional[int], typer.Option("--max-fragment", min=10, help="frame size: bytes of "
                           "a UR fragment, characters of a BBQr part (instead of --density)")]
DensityOpt = Annotated[Optional[Density], typer.Option("--density", help="QR size: low (version 12, small "
                       "screens like SeedSigner), medium (20), high (30), max (40, laptop to laptop)")]


def read_message(path: Path, kind: Kind) -> bytes:
    """The bytes to send, read once and bounded: a PSBT's binary serialization (byte for byte what
    was given, whatever its text encoding), a transaction's network serialization, or the file."""
    from coldsign.store import read_limited

    if kind is Kind.psbt:
        from coldsign.cli.psbt import read_psbt

        psbt, _raw, _binary = read_psbt(path)
        data = psbt.serialize()
    elif kind is Kind.transaction:
        from coldsign.psbt.fields import FieldProblem, parse_transaction

        raw = read_limited(path, 2 * LIMITS.transaction_max_bytes + 4096, what="transaction file")
        text = raw.translate(None, b" \t\r\n")
        data = raw
        if text and all(c in b"0123456789abcdefABCDEF" for c in text):
            try:
                data = binascii.unhexlify(text)
            except binascii.Error as err:
                raise TransactionDecodeError("odd-length hex", where=str(path)) from err
        if len(data) > LIMITS.transaction_max_bytes:
            raise TransactionDecodeError(f"transaction is over {LIMITS.transaction_max_bytes} bytes", where=str(path))
        try:
            parse_transaction(data, allow_witness=True, max_count=100_000)
        except (FieldProblem, ValueError) as err:
            raise TransactionDecodeError(f"not a transaction: {err}", where=str(path),
                                         hint="give a raw transaction in binary or hex, or use --type bytes") from err
    else:
        data = read_limited(path, LIMITS.qr_message_max_bytes, what="file")
        if kind is Kind.json:
            import json

            try:
                json.loads(data)
            except ValueError as err:
                raise BadInput(f"--type json but the file is not JSON: {err}", where=str(path)) from None
    if not data:
        raise BadInput("the file is empty", where=str(path))
    if len(data) > LIMITS.qr_message_max_bytes:
        raise BadInput(f"{len(data)} bytes is more than a receiver accepts ({LIMITS.qr_message_max_bytes})",
                       where=str(path))
    return data


def transmission_of(data: bytes, fmt: str, kind: str, max_fragment: int | None = None,
                    density: str | None = None):
    """The transport's frames for `data` (its errors are already ColdsignErrors). `fmt` and `kind`
    are the transport's names ("ur"/"bbqr"; "psbt", "json", "bytes" …): a str Enum member works too."""
    from coldsign.qr.transport import encode

    return encode(data, format=_name(fmt), type=_name(kind), max_fragment=max_fragment, density=density)


def _name(value) -> str:
    return value.value if isinstance(value, Enum) else value


def json_kind(fmt: str) -> str:
    """The transport type of a JSON document: BBQr carries JSON as its own file type (J); UR has
    no JSON type, so the document goes as `bytes`."""
    return "json" if _name(fmt) == "bbqr" else "bytes"


def describe(transmission) -> str:
    name = {"ur": "UR", "bbqr": "BBQr"}[transmission.format]
    return f"{name} {transmission.type}, {len(transmission.payloads)} part(s), QR version {transmission.qr_version}"


# --- frames to files, frames to a screen: the one way every command does it -----------------------

def write_transmission_frames(transmission, folder: Path, overwrite: bool, *, extra: int = 0,
                              scale: int | None = None, gif: Path | None = None, mp4: Path | None = None,
                              fps: float = 5.0) -> dict:
    """Draw a transmission's frames at its one QR version and write them as `coldsign qr encode`
    does: frame-0001.png … then frames.txt last (frames of an earlier run only with `overwrite`).

    `extra` UR fountain parts follow the pure parts (none for a one-part message); `scale` is
    pixels per module (default: frames about 960 pixels wide); `gif`/`mp4` also write an animation
    of the same frames. Returns the JSON facts: format, type, frames, qr_version, frames_dir (and
    gif, mp4)."""
    from coldsign.qr.render import FrameRenderer, scale_for

    stale = stale_frames(folder, overwrite)
    count = len(transmission.payloads)
    if transmission.format == "ur" and count > 1:
        count += extra
    payloads = itertools.islice(transmission.frames(), count)
    renderer = FrameRenderer(transmission.qr_version, cache_frames=1)
    frames = [renderer.frame(p, i) for i, p in enumerate(payloads)]
    pixels = scale or scale_for(frames[0].side)
    doc: dict = {"format": transmission.format, "type": transmission.type, "frames": len(frames),
                 "qr_version": transmission.qr_version, "frames_dir": str(folder)}
    try:
        write_frames(folder, frames, pixels, stale)
        if gif is not None:
            write_gif(gif, frames, pixels, fps)
            doc["gif"] = str(gif)
        if mp4 is not None:
            write_mp4(mp4, frames, pixels, fps)
            doc["mp4"] = str(mp4)
    except OSError as err:
        raise EnvironmentProblem(f"cannot write the frames: {err.strerror or err}",
                                 where=str(err.filename or folder),
                                 hint="check that the folder exists and is writable, and that the disk has room") from err
    return doc


def animate_message(data: bytes, fmt: str, kind: str, sink, *, label: str | None = None,
                    max_fragment: int | None = None, density: str | None = None,
                    densities: list[str] | None = None, fps: float = 8.0, seconds: float | None = None,
                    cycles: int | None = None) -> tuple[dict, object]:
    """Animate `data` on `sink` until a key, `seconds` or `cycles` stops it; d/s switch among
    `densities`. Returns (the JSON facts of what was shown, the last transmission shown)."""
    from coldsign.qr import display as D
    from coldsign.qr.render import LIVE_MASK, FrameRenderer, prefetch

    shown: dict[str, object] = {}

    def stream_for(name: str | None) -> D.FrameStream:
        transmission = transmission_of(data, fmt, kind, max_fragment, name)
        shown["transmission"] = transmission
        # A BBQr cycle (and the pure parts of UR) stays cached: each frame is drawn once.
        renderer = FrameRenderer(transmission.qr_version, mask=LIVE_MASK,
                                 cache_frames=len(transmission.payloads) + 16)
        frames = prefetch(renderer.frames(transmission.frames()), ahead=8)
        status = f"{label}: {describe(transmission)}" if label else describe(transmission)
        return D.FrameStream(frames, len(transmission.payloads), status, transmission.qr_version, frames.close)

    report = D.animate(stream_for, sink, fps=fps, density=density, seconds=seconds, cycles=cycles,
                       densities=densities if densities is not None else list(D.DENSITIES))
    last = shown["transmission"]
    doc = {"format": last.format, "type": last.type, "qr_version": last.qr_version,
           "cycle_frames": len(last.payloads), "frames_shown": report.frames_shown, "density": report.density,
           "fps": round(report.fps, 2), "seconds": round(report.seconds, 3), "stopped_by": report.stopped_by}
    return doc, last


class TerminalQR:
    """`data` as animated QR in the terminal (on stderr when `stderr`, e.g. with --json).

    `__init__` works out which densities fit the terminal and refuses (EnvironmentProblem, exit 7,
    naming the size needed) when the asked one or every one is too large, so a command can check
    this before it writes anything; `show` animates (keys: +/- speed, d/s density, space, q)."""

    def __init__(self, data: bytes, fmt: str, kind: str, *, label: str | None = None, stderr: bool = False,
                 max_fragment: int | None = None, density: str | None = None, sink=None):
        from coldsign.qr import display as D

        self.data, self.fmt, self.kind, self.label, self.max_fragment = data, fmt, kind, label, max_fragment
        if sink is None:
            from rich.console import Console

            sink = D.TerminalSink(Console(stderr=stderr, highlight=False, markup=False))
        self.sink = sink
        self.last = None
        if max_fragment is not None:
            self.densities, self.density = [], None
            version = transmission_of(data, fmt, kind, max_fragment, None).qr_version
            if not sink.fits(version):
                sink.open(version)                                  # raises: says the size it needs
            return
        versions = {name: transmission_of(data, fmt, kind, None, name).qr_version for name in D.DENSITIES}
        self.densities = [name for name in D.DENSITIES if sink.fits(versions[name])]
        if density is not None and density not in self.densities:
            sink.open(versions[density])                            # raises: says the size it needs
        if not self.densities:
            sink.open(versions["low"])
        self.density = density or self.densities[-1]               # the densest that fits

    def show(self, *, fps: float = 8.0, seconds: float | None = None, cycles: int | None = None) -> dict:
        """Animate until q, `seconds` or `cycles`; the JSON facts of what was shown."""
        doc, self.last = animate_message(self.data, self.fmt, self.kind, self.sink, label=self.label,
                                         max_fragment=self.max_fragment, density=self.density,
                                         densities=self.densities, fps=fps, seconds=seconds, cycles=cycles)
        return doc

    def summary(self, doc: dict) -> str:
        """One line for the person at the terminal after `show`."""
        return f"showed {doc['frames_shown']} frame(s) of {describe(self.last)} in {doc['seconds']:.1f} s"


# --- coldsign qr encode ------------------------------------------------------------------------

@app.command("encode")
def encode(
    ctx: typer.Context,
    file: FileArg,
    frames_dir: Annotated[Path, typer.Option("--frames-dir", help="folder for frame-0001.png … and frames.txt "
                                             "(one payload a line)")],
    fmt: Annotated[QRFormat, typer.Option("--format", help="ur (Sparrow, SeedSigner, Keystone, Passport, "
                                          "Jade) or bbqr (Coldcard Q)")],
    kind: TypeOpt = Kind.psbt,
    max_fragment: MaxFragmentOpt = None,
    density: DensityOpt = None,
    extra: Annotated[int, typer.Option("--extra", min=0, max=100_000, help="UR only: fountain parts to add "
                                       "after the pure parts (for a receiver that misses frames; none when "
                                       "the message fits one frame)")] = 0,
    gif: Annotated[Optional[Path], typer.Option("--gif", help="also write an animated GIF")] = None,
    mp4: Annotated[Optional[Path], typer.Option("--mp4", help="also write an MP4 video")] = None,
    fps: Annotated[float, typer.Option("--fps", min=0.5, max=60, help="frames per second of --gif/--mp4")] = 5.0,
    scale: Annotated[Optional[int], typer.Option("--scale", min=1, max=64, help="pixels per QR module "
                                                 "(default: frames about 960 pixels wide)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace frames already in --frames-dir")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Write a file's animated QR frames as PNG images and a text file of payloads (and a GIF or MP4).

    UR writes the k pure parts (plus --extra fountain parts); BBQr writes every part. All frames
    share one QR version, so they have the same size. frames.txt is written last: when it exists,
    the frames are complete.

    Example: coldsign qr encode withdrawal.psbt --format ur --density high --frames-dir out/ --gif out/w.gif --json
    """
    settings = settings_of(ctx, json_flag)
    if fmt is QRFormat.bbqr and extra:
        raise UsageProblem("--extra adds UR fountain parts; BBQr has none", hint="drop --extra or use --format ur")
    stale_frames(frames_dir, overwrite)                 # refuse old frames before reading anything
    data = read_message(file, kind)
    transmission = transmission_of(data, fmt, kind, max_fragment, density.value if density else None)
    written = write_transmission_frames(transmission, frames_dir, overwrite, extra=extra, scale=scale, gif=gif,
                                        mp4=mp4, fps=fps)
    doc = {key: written.pop(key) for key in ("format", "type", "frames", "qr_version")}
    doc.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), **written)   # then frames_dir, gif, mp4

    def human() -> None:
        typer.echo(f"{describe(transmission)}: wrote {doc['frames']} frame(s) of {len(data)} bytes to {frames_dir}/"
                   + "".join(f", {p}" for p in (gif, mp4) if p is not None))

    emit(settings, doc, human)


# --- coldsign qr show --------------------------------------------------------------------------

@app.command("show")
def show(
    ctx: typer.Context,
    file: FileArg,
    fmt: Annotated[QRFormat, typer.Option("--format", help="ur (default) or bbqr")] = QRFormat.ur,
    kind: TypeOpt = Kind.psbt,
    max_fragment: MaxFragmentOpt = None,
    density: DensityOpt = None,
    fps: Annotated[float, typer.Option("--fps", min=1, max=60, help="frames per second (+/- change it)")] = 8.0,
    window: Annotated[bool, typer.Option("--window", help="show in an OpenCV window instead of the "
                                         "terminal")] = False,
    fullscreen: Annotated[bool, typer.Option("--fullscreen", help="with --window: full screen")] = False,
    seconds: Annotated[Optional[float], typer.Option("--seconds", min=0, help="stop after this many "
                                                     "seconds")] = None,
    cycles: Annotated[Optional[int], typer.Option("--cycles", min=1, help="stop after this many cycles of "
                                                  "the frames (UR: k frames each)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Animate a file as QR codes for another device's camera, in the terminal or a window.

    UR shows the k pure parts first, then fountain parts forever (a receiver may join at any
    time); BBQr cycles its parts. Keys: +/- faster/slower, d/s denser/sparser, space pause,
    q or Esc quit. In the terminal the code is drawn with half blocks at the densest size that
    fits (exit 7 names the size needed when none does).

    Example: coldsign qr show withdrawal.psbt --format bbqr --window --fullscreen --fps 10
    """
    settings = settings_of(ctx, json_flag)
    if fullscreen and not window:
        raise UsageProblem("--fullscreen goes with --window")
    if max_fragment is not None and density is not None:
        raise UsageProblem("give --max-fragment or --density, not both")
    data = read_message(file, kind)
    chosen = density.value if density else None

    if window:
        from coldsign.qr import display as D

        if chosen is None and max_fragment is None:
            chosen = "medium"
        shown, last = animate_message(data, fmt, kind, D.WindowSink(fullscreen=fullscreen),
                                      max_fragment=max_fragment, density=chosen, fps=fps, seconds=seconds,
                                      cycles=cycles)
    else:
        terminal = TerminalQR(data, fmt, kind, stderr=settings.json, max_fragment=max_fragment, density=chosen)
        shown = terminal.show(fps=fps, seconds=seconds, cycles=cycles)
        last = terminal.last
    doc = {**shown, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    emit(settings, doc, lambda: typer.echo(f"showed {shown['frames_shown']} frame(s) of {describe(last)} "
                                           f"in {shown['seconds']:.1f} s", err=True))
