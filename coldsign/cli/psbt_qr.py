"""`psbt sign` across the air gap by light: the PSBT (or the signing request bundle) scanned in,
the signatures shown or written out as animated QR.

The signer's whole turn is then one command, and the ceremony log can say what really happened:
`psbt-received` with source "qr" when the input was scanned, and an `exported` entry (format,
frames, SHA-256 of what left) once the frames are written or shown.

- `scan_input(...)`: the message the frame source (--images, --video or --camera) carries; a PSBT,
  or a request bundle (BBQr J, or UR bytes) whose PSBT is then the one signed;
- `QRAnswer`: checked before anything is signed (old frames in --frames-dir, a terminal too
  small for --qr), delivered after the signed PSBT is on disk; what it carries (by default only
  the signatures: `coldsign.psbt.codec.signatures_only`) is the caller's choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from coldsign.errors import ColdsignError, UsageProblem
from coldsign.qr.bbqr import MIXED_FRAMES_HINT

SCAN_EXAMPLE = "coldsign psbt sign - --images 'camera/*.png' --keystore treasury-1 --out signed.psbt"


def decoded(scanned: "Scanned", decode):
    """`decode(scanned.data)`; a message that does not decode says frames may have been mixed."""
    try:
        return decode(scanned.data)
    except ColdsignError as err:
        err.where = err.where or "the scanned QR frames"
        err.hint = MIXED_FRAMES_HINT
        raise


@dataclass(frozen=True)
class Scanned:
    """What the signer read from the camera: a PSBT, or a request bundle (`kind` "bundle")."""

    kind: str                  # "psbt" | "bundle"
    data: bytes
    format: str                # the transport's: "ur", "bbqr", ...
    frames_seen: int

    def to_json(self) -> dict:
        return {"source": "qr", "kind": self.kind, "format": self.format, "frames_seen": self.frames_seen,
                "bytes": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


def scan_input(file: Path, images: str | None, video: Path | None, camera: int | None, decoder: str,
               request_given: bool) -> Scanned | None:
    """The scanned message, or None when no frame source is given (FILE is read as before)."""
    from coldsign.cli.qr_receive import frame_source, receive_message

    if images is None and video is None and camera is None:
        return None
    if str(file) != "-":
        raise UsageProblem(f"the PSBT comes from the QR frames: give '-' instead of {file}",
                           hint=f"e.g. {SCAN_EXAMPLE}")
    source = frame_source(images, video, None, camera, None, False, example=SCAN_EXAMPLE)
    receipt = receive_message(source, decoder=decoder)
    message = receipt.message
    if message.type == "psbt":
        return Scanned("psbt", message.data, message.format, receipt.frames_seen)
    if message.type in ("json", "bytes"):
        if request_given:
            raise UsageProblem("the QR frames carry a signing request bundle, and --request gives another",
                               hint="drop --request: the scanned bundle is the request")
        return Scanned("bundle", message.data, message.format, receipt.frames_seen)
    raise UsageProblem(f"the QR frames carry a {message.type}, not a PSBT or a signing request bundle",
                       where=source.description)


class QRAnswer:
    """The answer (the signatures, or the whole signed PSBT) as animated QR: frames to --frames-dir
    and/or shown in the terminal (--qr)."""

    def __init__(self, frames_dir: Path | None, show: bool, fmt: str, density: str | None, *, stderr: bool,
                 cycles: int | None = None):
        from coldsign.qr.media import stale_frames

        self.frames_dir, self.show_it, self.fmt, self.density, self.stderr = frames_dir, show, fmt, density, stderr
        self.cycles = cycles
        if frames_dir is not None:
            try:
                stale_frames(frames_dir, False)     # old frames refuse now, before the seed is read
            except UsageProblem as err:
                err.hint = "choose an empty folder for the signed PSBT's frames"
                raise

    @property
    def wanted(self) -> bool:
        return self.frames_dir is not None or self.show_it

    def check_terminal(self, psbt) -> None:
        """With --qr: refuse now (exit 7) when the terminal cannot show a PSBT of this size."""
        if self.show_it:
            from coldsign.cli.qr_send import TerminalQR

            TerminalQR(psbt.serialize(), self.fmt, "psbt", stderr=self.stderr, density=self.density)

    def deliver(self, signed: bytes) -> tuple[dict, int]:
        """Write and/or show the PSBT `signed` (serialized); (the JSON facts, the number of frames
        written or shown)."""
        from coldsign.cli.qr_send import TerminalQR, transmission_of, write_transmission_frames

        doc: dict = {"format": self.fmt, "bytes": len(signed), "sha256": hashlib.sha256(signed).hexdigest()}
        frames = 0
        if self.frames_dir is not None:
            written = write_transmission_frames(transmission_of(signed, self.fmt, "psbt", None, self.density),
                                                self.frames_dir, False)
            doc.update(frames=written["frames"], qr_version=written["qr_version"], frames_dir=written["frames_dir"])
            frames = written["frames"]
        if self.show_it:
            terminal = TerminalQR(signed, self.fmt, "psbt", stderr=self.stderr, density=self.density)
            shown = terminal.show(cycles=self.cycles)
            doc["frames_shown"] = shown["frames_shown"]
            frames = max(frames, shown["frames_shown"])
        return doc, frames
