"""Frame sources and the receiving loop: from camera, video, images or text lines to one message.

A *frame source* yields :class:`Frame` objects, each either an image (a numpy array as
OpenCV gives it) or a QR payload already in text form (a line of a ``frames.txt``). The
sources are:

- :class:`TextLines` — one payload a line (blank lines skipped);
- :class:`ImageFiles` — the files a glob matches, in name order;
- :class:`VideoFile` and :class:`Camera` — both read through :class:`Capture`, the one
  OpenCV ``VideoCapture`` loop, so tests drive the camera code path with video files;
- :class:`MemoryFrames` — the in-memory twin, for tests and for callers holding frames.

:func:`receive` feeds the payloads a :class:`~coldsign.qr.decoders.QRDecoder` reads from
each frame into a transport ``Assembler`` and stops the moment the message is complete, so
a frame of another transmission shown *after* completion is never read. It reports each
frame to an optional callback (progress bar, preview window) and returns a
:class:`Receipt`; an exhausted source raises :class:`QRDecodeError` saying how far it got.

Adapters: OpenCV and Pillow are imported inside the functions that use them.
"""

from __future__ import annotations

import glob
import os
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol

from coldsign.errors import BadInput, ColdsignError, EnvironmentProblem, ExitStatus, NotFound, UsageProblem
from coldsign.limits import LIMITS
from coldsign.qr.errors import QRDecodeError

if TYPE_CHECKING:
    from coldsign.qr.decoders import QRDecoder
    from coldsign.qr.transport import Assembler, Message, Progress

# NOTE: hard limits on untrusted frames (coldsign.limits has no QR fields; candidates for it).
# A line of frames.txt: a QR holds at most 4,296 alphanumeric characters, but a single-frame
# base64 PSBT copied into a text file may be as large as the assembler's 4 MB (+ base64's third).
MAX_LINE_CHARS = LIMITS.qr_text_line_max_chars
# One image file, and the pixels of any frame (8K UHD is 33 Mpx; a 1 GB bitmap is not a photo).
MAX_IMAGE_FILE_BYTES = LIMITS.qr_image_file_max_bytes
MAX_FRAME_PIXELS = LIMITS.qr_frame_max_pixels
# A webcam may fail a few reads while it warms up or re-exposes; after this many failures in a
# row (about half a second) it is treated as gone.
CAMERA_READ_RETRIES = 25
CAMERA_RETRY_PAUSE_S = 0.02


@dataclass(frozen=True)
class Frame:
    """One frame of a source: an image to decode, or a payload already read as text."""

    index: int                 # 1-based position in the source
    where: str                 # for messages: "line 3 of frames.txt", "frame 12 of clip.avi"
    image: Any = None          # numpy array (grayscale, BGR or BGRA, uint8)
    text: str | None = None


class FrameSource(Protocol):
    """Anything that yields frames. ``count_every_frame``: whether a frame without a QR code
    still counts toward ``frames_seen`` (images and lines do; camera and video frames only
    count when a QR code was read in them)."""

    description: str
    count_every_frame: bool
    yields_images: bool       # False: every frame is text, no QR decoder is needed

    def frames(self) -> Iterator[Frame]: ...


# --- sources -------------------------------------------------------------------------------

class MemoryFrames:
    """The in-memory twin: strings become text frames, arrays become image frames."""

    yields_images = True

    def __init__(self, items: Iterable[Any], *, description: str = "frames in memory",
                 count_every_frame: bool = True):
        self._items = list(items)
        self.description = description
        self.count_every_frame = count_every_frame

    def frames(self) -> Iterator[Frame]:
        for index, item in enumerate(self._items, start=1):
            where = f"frame {index} of {self.description}"
            if isinstance(item, str):
                yield Frame(index, where, text=item)
            else:
                _check_pixels(item, where)
                yield Frame(index, where, image=item)


class TextLines:
    """One QR payload a line (as `coldsign qr encode` writes frames.txt); blank lines skipped."""

    count_every_frame = True
    yields_images = False

    def __init__(self, path: Path | str, *, max_line_chars: int = MAX_LINE_CHARS):
        self.path = Path(path)
        self.description = str(self.path)
        self._max = max_line_chars

    def frames(self) -> Iterator[Frame]:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            raise NotFound("text file of QR payloads not found", where=str(self.path)) from None
        except IsADirectoryError:
            raise BadInput("is a folder, not a text file of QR payloads", where=str(self.path)) from None
        with handle:
            number = 0
            while True:
                raw = handle.readline(self._max + 2)
                if not raw:
                    return
                number += 1
                where = f"line {number} of {self.path}"
                if len(raw.rstrip(b"\r\n")) > self._max:
                    raise BadInput(f"the line is longer than {self._max} characters", where=where,
                                   hint="one QR payload a line, as `coldsign qr encode` writes frames.txt")
                try:
                    text = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise BadInput("the line is not UTF-8 text", where=where,
                                   hint="pass image files with --images, not --text") from None
                if text:
                    yield Frame(number, where, text=text)


class ImageFiles:
    """The image files a glob matches, read one by one in name order (PNG, JPEG, GIF, BMP...)."""

    count_every_frame = True
    yields_images = True

    def __init__(self, pattern: str, *, max_file_bytes: int = MAX_IMAGE_FILE_BYTES):
        self.pattern = pattern
        self.description = f"images {pattern}"
        self._max = max_file_bytes

    def paths(self) -> list[Path]:
        expanded = os.path.expanduser(self.pattern)
        found = sorted(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
        if not found:
            raise NotFound(f"no image file matches {self.pattern!r}",
                           hint="quote the pattern so the shell does not expand it, e.g. --images 'frames/*.png'")
        return [Path(p) for p in found]

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths(), start=1):
            yield Frame(index, f"image {path}", image=read_image(path, max_file_bytes=self._max))


# Codes of a frame source that cannot be read at all: a command reading one source its own way
# (e.g. `key restore --seedqr`) gives its own hint for them.
UNREADABLE_IMAGE, UNREADABLE_VIDEO = "unreadable-image", "unreadable-video"


def read_image(path: Path, *, max_file_bytes: int = MAX_IMAGE_FILE_BYTES) -> Any:
    """An image file as a grayscale uint8 array, its size checked before its pixels are decoded."""
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from coldsign.store import read_limited

    data = read_limited(path, max_file_bytes, what="image file")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > MAX_FRAME_PIXELS:
                raise BadInput(f"the image is {width}×{height} pixels, over the limit of "
                               f"{MAX_FRAME_PIXELS} pixels", where=str(path))
            return np.asarray(picture.convert("L"))
    except UnidentifiedImageError:
        raise BadInput("not a picture in a format coldsign reads (PNG, JPEG, BMP, TIFF)", where=str(path),
                       code=UNREADABLE_IMAGE, hint="pass PNG or JPEG files; a text file of payloads goes with --text") \
            from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BadInput(f"not an image that can be read ({err})", where=str(path), code=UNREADABLE_IMAGE,
                       hint="pass PNG or JPEG files; a text file of payloads goes with --text") from None


def _check_pixels(image: Any, where: str) -> None:
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) < 2:
        raise BadInput("a frame must be an image array", where=where)
    if int(shape[0]) * int(shape[1]) > MAX_FRAME_PIXELS:
        raise BadInput(f"the frame is {shape[1]}×{shape[0]} pixels, over the limit of "
                       f"{MAX_FRAME_PIXELS} pixels", where=where)


class Capture:
    """The one OpenCV ``VideoCapture`` loop under both :class:`VideoFile` and :class:`Camera`."""

    count_every_frame = False
    yields_images = True
    description = "capture"

    def _open(self) -> Any:
        raise NotImplementedError

    def _read_failed(self, capture: Any, frames_read: int) -> Any:
        """Called when ``read()`` fails: return an image to go on, or None to end the stream."""
        return None

    def frames(self) -> Iterator[Frame]:
        capture = self._open()
        try:
            index = 0
            while True:
                ok, image = capture.read()
                if not ok or image is None:
                    image = self._read_failed(capture, index)
                    if image is None:
                        return
                index += 1
                where = f"frame {index} of {self.description}"
                _check_pixels(image, where)
                yield Frame(index, where, image=image)
        finally:
            capture.release()


def _quiet_capture(device: int | str, *args: Any) -> Any:
    """Open a VideoCapture without OpenCV's backend-by-backend warnings on stderr (an absent
    camera makes V4L2, FFmpeg and Orbbec each complain); the caller reports the failure."""
    import cv2

    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(device, *args)
    finally:
        logging.setLogLevel(previous)


class VideoFile(Capture):
    """Every frame of a video file (AVI, MP4, MKV... whatever OpenCV's FFmpeg reads)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.description = str(self.path)

    def _open(self) -> Any:
        if not self.path.is_file():
            raise NotFound("video file not found", where=str(self.path))
        capture = _quiet_capture(str(self.path))
        if not capture.isOpened():
            raise BadInput("not a video file OpenCV can read", where=str(self.path), code=UNREADABLE_VIDEO,
                           hint="pass a video (AVI, MP4, MKV); images go with --images")
        return capture


class Camera(Capture):
    """A camera by number (``/dev/videoN``), at an optional resolution.

    ``device`` may also be a video file or stream URL, which OpenCV opens the same way: that
    is how the tests run this exact loop on a machine without a camera.
    """

    def __init__(self, device: int | str = 0, *, resolution: tuple[int, int] | None = None):
        self.device = device
        self.resolution = resolution
        self.description = f"camera {device}"

    def _open(self) -> Any:
        import cv2

        capture = _quiet_capture(self.device)
        if not capture.isOpened():
            raise EnvironmentProblem(f"no camera {self.device}",
                                     hint="connect a camera (Linux: it appears as /dev/video*) or pick another "
                                          "camera number")
        if self.resolution is not None:
            width, height = self.resolution
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of stale ones
        return capture

    def _read_failed(self, capture: Any, frames_read: int) -> Any:
        for _ in range(CAMERA_READ_RETRIES):
            time.sleep(CAMERA_RETRY_PAUSE_S)
            ok, image = capture.read()
            if ok and image is not None:
                return image
        raise EnvironmentProblem(f"{self.description} stopped delivering frames after {frames_read} frame(s)",
                                 hint="check the camera's cable and that no other program holds it; "
                                      "then scan again (nothing was written)")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        width, height = (int(p) for p in parts)
        if 0 < width <= 7680 and 0 < height <= 4320:
            return width, height
    raise UsageProblem(f"bad resolution {text!r}", hint="give WIDTHxHEIGHT, e.g. --resolution 1280x720")


# --- the receiving loop --------------------------------------------------------------------

class ScanCancelled(ColdsignError):
    """The person scanning stopped it (the preview window's q or Esc key); nothing was written."""

    exit_status = ExitStatus.INTERRUPTED
    code = "cancelled"


@dataclass(frozen=True)
class Receipt:
    """A completed message and what it took to read it."""

    message: "Message"
    frames_seen: int           # frames read until completion (see FrameSource.count_every_frame)
    frames_useful: int         # payloads that moved the message forward
    payloads: int              # QR payloads handed to the assembler (unrelated ones included)
    seconds: float


FrameCallback = Callable[[Frame, "Progress | None", int], None]


def receive(source: FrameSource, assembler: "Assembler", decoder: "QRDecoder | None" = None, *,
            on_frame: FrameCallback | None = None, clock: Callable[[], float] = time.monotonic) -> Receipt:
    """Read ``source`` into ``assembler`` until the message is complete.

    ``decoder`` reads image frames (text frames need none). ``on_frame(frame, progress,
    frames_seen)`` is called after every frame, QR or not (``progress`` is None until the first
    payload); it may raise to stop. A payload of a second transmission raises the assembler's
    QRDecodeError, located at its frame. A source that ends first raises QRDecodeError.
    """
    started = clock()
    frames_seen = 0
    payloads = 0
    progress: Progress | None = None
    with closing(source.frames()) as frames:  # releases a camera the moment we stop
        for frame in frames:
            texts = _payloads_of(frame, decoder)
            if texts or source.count_every_frame:
                frames_seen += 1
            for text in texts:
                payloads += 1
                try:
                    progress = assembler.add(text)
                except ColdsignError as err:
                    err.where = f"{frame.where}, {err.where}" if err.where else frame.where
                    raise
                if assembler.complete:
                    break
            if on_frame is not None:
                on_frame(frame, progress, frames_seen)
            if assembler.complete:
                return Receipt(assembler.message(), frames_seen,
                               progress.frames_useful if progress else 0, payloads, clock() - started)
    raise _incomplete(source, progress, frames_seen, payloads)


def _payloads_of(frame: Frame, decoder: "QRDecoder | None") -> list[str]:
    if frame.text is not None:
        return [frame.text]
    if decoder is None:
        raise UsageProblem(f"{frame.where} is an image and no QR decoder was given")
    return decoder.decode(frame.image)


def _incomplete(source: FrameSource, progress: "Progress | None", frames_seen: int,
                payloads: int) -> QRDecodeError:
    if progress is None or progress.format is None:
        what = "no QR code" if payloads == 0 else f"no QR code of a known format ({payloads} unrelated)"
        error = QRDecodeError(f"{what} found in {frames_seen} frame(s)", where=source.description,
                              hint="check that these are the frames of an animated QR (UR or BBQr) "
                                   "or a single PSBT/transaction QR")
    else:
        error = QRDecodeError(
            f"the frames ended before the {progress.format} message was complete: "
            f"{progress.fraction:.0%} received after {frames_seen} frame(s) "
            f"({progress.frames_useful} useful); nothing was written",
            where=source.description,
            hint="capture more of the animation (let it loop at least once more) and decode again")
    error.code = "qr-incomplete"
    return error


# --- one still code (a SeedQR) -------------------------------------------------------------

def first_code(source: FrameSource, decoder: "QRDecoder", accept: Callable[[bytes], Any], *, what: str) -> Any:
    """The first QR code in ``source`` that ``accept(raw_bytes)`` takes (returns non-None), e.g. a
    SeedQR among other codes in view. Codes it rejects are skipped; when the source ends, BadInput
    says how many codes were seen and ``accept``'s last complaint (a ColdsignError it raised)."""
    seen, complaint = 0, None
    with closing(source.frames()) as frames:  # releases a camera the moment we stop
        for frame in frames:
            for raw in decoder.decode_bytes(frame.image):
                seen += 1
                try:
                    value = accept(raw)
                except ColdsignError as err:
                    complaint = err
                    continue
                if value is not None:
                    return value
    if seen == 0:
        raise BadInput(f"no QR code found (looking for {what})", where=source.description,
                       hint="hold the code flat, well lit and filling most of the picture")
    raise BadInput(f"{seen} QR code(s) found, none is {what}"
                   + (f": {complaint.message}" if complaint else ""), where=source.description,
                   hint=complaint.hint if complaint and complaint.hint else None)
