"""QR frames as pixels and as terminal text: the rendering adapter of the QR transport.

A sender shows one payload string per frame. Every frame of a transmission is drawn at the same
QR version (the `Transmission.qr_version`), never "fit" per frame, so the code keeps its size and
position on screen and a camera need not refocus. Error correction is L by default: a screen is a
clean medium and L leaves the most room for data.

A frame is kept as its module matrix (`QRFrame.modules`, quiet zone included, True = dark), from
which the pixel image, the numpy array and the half-block text are cheap to derive. Building the
matrix is the expensive part (qrcode in pure Python: ~150 ms for a version-40 frame here), so
`FrameRenderer` builds each payload's matrix once and keeps a bounded cache, and `prefetch` builds
the endless fountain frames of a UR stream ahead of the display on a background thread.

qrcode is imported inside the functions that need it; Pillow likewise.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from coldsign.errors import BadInput

QUIET_ZONE = 4                   # modules of light border on each side (ISO/IEC 18004 asks for 4)
ERROR_CORRECTION_LEVELS = ("L", "M", "Q", "H")
# NOTE: frames built while an animation runs use this fixed mask pattern. Letting qrcode pick the
# lowest-penalty mask tries all eight: ~155 ms for a version-40 frame here against ~45 ms with one,
# which caps endless UR fountain frames at about 6 fps instead of over 10. Any mask gives a valid
# code that every decoder reads; the penalty rule only avoids finder-like runs, which are rare in
# the pseudo-random text of fountain parts. Files (`qr encode`) keep the standard's choice.
LIVE_MASK = 0
# NOTE: 256 v40 matrices are ~9 MB: enough for the pure parts of a large UR message plus the
# fountain frames queued ahead, without letting an endless stream grow memory.
DEFAULT_CACHE_FRAMES = 256
# Terminal cells with half blocks: (top dark, bottom dark) -> character, drawn dark on light.
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
_FROM_HALF_BLOCKS = {char: pair for pair, char in _HALF_BLOCKS.items()}


class FrameTooLarge(BadInput):
    """A payload does not fit the QR version chosen for its transmission."""

    code = "qr-frame-too-large"


def side_modules(version: int, border: int = QUIET_ZONE) -> int:
    """Width (= height) of a QR code of `version` in modules, quiet zone included."""
    if not 1 <= version <= 40:
        raise BadInput(f"QR version {version} does not exist", hint="QR versions run from 1 to 40")
    return 4 * version + 17 + 2 * border


def terminal_cells(version: int, border: int = QUIET_ZONE) -> tuple[int, int]:
    """(columns, rows) of terminal cells the half-block drawing of a `version` code takes."""
    side = side_modules(version, border)
    return side, (side + 1) // 2


def render_modules(payload: str, version: int, *, ec: str = "L", border: int = QUIET_ZONE,
                   mask: int | None = None) -> np.ndarray:
    """The module matrix of `payload` as a QR code of exactly `version` (True = dark, quiet zone included).

    `mask` None lets qrcode choose the mask with the lowest penalty (the standard's rule, and
    ~3x slower); 0..7 forces one. Upper-case UR and BBQr text is encoded in alphanumeric mode.
    """
    import qrcode
    from qrcode.exceptions import DataOverflowError

    if ec not in ERROR_CORRECTION_LEVELS:
        raise BadInput(f"unknown QR error correction level {ec!r}", hint="use L, M, Q or H")
    side_modules(version, border)
    level = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
             "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}[ec]
    code = qrcode.QRCode(version=version, error_correction=level, border=border, mask_pattern=mask)
    code.add_data(payload)
    try:
        code.make(fit=False)
    except (DataOverflowError, ValueError) as err:
        raise FrameTooLarge(f"a {len(payload)}-character frame does not fit a version-{version} QR code "
                            f"at error correction {ec}",
                            hint="choose a higher --density or a smaller --max-fragment") from err
    matrix = np.array(code.get_matrix(), dtype=bool)
    assert matrix.shape == (side_modules(version, border),) * 2
    return matrix


def half_blocks(modules: np.ndarray) -> list[str]:
    """Terminal lines drawing `modules` with half blocks: two module rows per line, dark in the foreground.

    Shown dark-on-light (black foreground on a white background); an odd last row is paired with
    a light row, which only widens the quiet zone.
    """
    rows, cols = modules.shape
    if rows % 2:
        modules = np.vstack([modules, np.zeros((1, cols), dtype=bool)])
    top, bottom = modules[0::2], modules[1::2]
    return ["".join(_HALF_BLOCKS[(bool(t), bool(b))] for t, b in zip(top_row, bottom_row))
            for top_row, bottom_row in zip(top, bottom)]


def modules_from_half_blocks(lines: Iterable[str]) -> np.ndarray:
    """The inverse of `half_blocks`: text back to a module matrix (to check what a terminal shows)."""
    rows: list[list[bool]] = []
    for number, line in enumerate(lines, 1):
        try:
            pairs = [_FROM_HALF_BLOCKS[char] for char in line]
        except KeyError as err:
            raise BadInput(f"line {number} holds {err.args[0]!r}, not a half block") from None
        rows.append([t for t, _ in pairs])
        rows.append([b for _, b in pairs])
    return np.array(rows, dtype=bool)


def to_array(modules: np.ndarray, scale: int = 1) -> np.ndarray:
    """Grey pixels (uint8: 0 dark, 255 light), `scale` pixels per module."""
    if scale < 1:
        raise BadInput(f"scale {scale} is below one pixel per module")
    pixels = np.where(modules, 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1) if scale > 1 else pixels


def to_image(modules: np.ndarray, scale: int = 1):
    """A Pillow image (mode "L"), `scale` pixels per module."""
    from PIL import Image

    return Image.fromarray(to_array(modules, scale), mode="L")


def scale_for(side: int, target_px: int = 960) -> int:
    """Pixels per module so a code of `side` modules is about `target_px` wide (at least 2)."""
    return max(2, target_px // side)


@dataclass(frozen=True)
class QRFrame:
    """One rendered payload. `index` counts frames in the order a sender shows them (0-based)."""

    payload: str
    version: int
    modules: np.ndarray = field(repr=False, compare=False)
    index: int = 0

    @property
    def side(self) -> int:
        return int(self.modules.shape[0])

    def to_array(self, scale: int = 1) -> np.ndarray:
        return to_array(self.modules, scale)

    def to_image(self, scale: int = 1):
        return to_image(self.modules, scale)

    def half_blocks(self) -> list[str]:
        return half_blocks(self.modules)


class FrameRenderer:
    """Renders payloads at one QR version, each payload once, keeping at most `cache_frames` matrices (LRU)."""

    def __init__(self, version: int, *, ec: str = "L", border: int = QUIET_ZONE, mask: int | None = None,
                 cache_frames: int = DEFAULT_CACHE_FRAMES):
        side_modules(version, border)
        self.version, self.ec, self.border, self.mask = version, ec, border, mask
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = max(1, cache_frames)
        self._lock = threading.Lock()
        self.rendered = 0  # matrices built (cache misses), for tests and benchmarks

    def frame(self, payload: str, index: int = 0) -> QRFrame:
        with self._lock:
            modules = self._cache.get(payload)
            if modules is not None:
                self._cache.move_to_end(payload)
        if modules is None:
            modules = render_modules(payload, self.version, ec=self.ec, border=self.border, mask=self.mask)
            modules.setflags(write=False)
            with self._lock:
                self.rendered += 1
                self._cache[payload] = modules
                while len(self._cache) > self._limit:
                    self._cache.popitem(last=False)
        return QRFrame(payload, self.version, modules, index)

    def frames(self, payloads: Iterable[str]) -> Iterator[QRFrame]:
        for index, payload in enumerate(payloads):
            yield self.frame(payload, index)


class prefetch:
    """Iterate `frames` with up to `ahead` items built in advance on a background thread.

    Used for endless UR fountain frames: while one frame is on screen the next ones are built.
    An exception raised while building is raised to the consumer at the frame where it occurred.
    `close()` (or leaving a `with` block) stops the thread.
    """

    _END = object()

    def __init__(self, frames: Iterator[QRFrame], ahead: int = 8):
        self._source = frames
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qr-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(err)
            return
        self._put(self._END)

    def __iter__(self) -> "prefetch":
        return self

    def __next__(self) -> QRFrame:
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def __enter__(self) -> "prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
