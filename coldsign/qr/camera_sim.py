"""Camera-like frames: what a webcam pointed at a screen roughly delivers (rehearsals and tests).

The ceremony rehearsal (coldsign.cli.rehearsal) sends every QR frame that crosses the air
gap through these degradations before the receiving side decodes it, so the rehearsal exercises
the scan path a real camera would; the QR tests use the same functions (tests/camera.py).

`qr_modules(payload)` draws a QR code with `qrcode` (error correction L, one pixel a module,
quiet zone included). `camera_frame(qr, rng)` places it into a 1280×720 frame: scaled to a
given number of pixels per module, slightly turned out of plane (a perspective warp whose
corners move by up to `tilt` of the code's side), on a textured background, with the
contrast of a lit screen (dark ~45, light ~215), a brightness gradient, Gaussian blur and
Gaussian sensor noise. Other QR codes may be placed beside it (unrelated codes in view).
`write_avi(path, frames, fps)` writes frames to a Motion-JPEG AVI with OpenCV, adding one
more lossy step, as a real recording would.

Every random choice comes from the `numpy.random.Generator` passed in, so a failing frame is
replayable from its seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from coldsign.errors import BadInput, EnvironmentProblem

FRAME_SIZE = (1280, 720)  # width, height


def qr_modules(payload: str, *, version: int | None = None, border: int = 4) -> np.ndarray:
    """`payload` as a QR code, one pixel per module (uint8: 0 dark, 255 light), EC level L."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_L

    code = qrcode.QRCode(version=version, error_correction=ERROR_CORRECT_L, box_size=1, border=border)
    code.add_data(payload)
    code.make(fit=version is None)
    matrix = np.array(code.get_matrix(), dtype=bool)
    return np.where(matrix, 0, 255).astype(np.uint8)


def picture_modules(path: Path, *, border: int = 4) -> np.ndarray:
    """The modules of a QR frame picture drawn on a grid (as `coldsign qr encode` writes them: light
    quiet zone of `border` modules, whole pixels a module), in `qr_modules`' form. The pixels a
    module takes are read off the quiet zone: the first dark row starts `border` modules in."""
    from PIL import Image

    with Image.open(path) as picture:
        dark = np.asarray(picture.convert("L")) < 128
    rows = np.flatnonzero(dark.any(axis=1))
    if rows.size == 0 or rows[0] < border or rows[0] % border:
        raise BadInput("not a QR frame picture drawn on a grid with its quiet zone", where=str(path))
    scale = rows[0] // border
    modules = dark[scale // 2::scale, scale // 2::scale]
    return np.where(modules, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A desk-and-wall scene: a smooth random gradient with low-frequency blotches."""
    import cv2

    small = rng.uniform(70, 170, size=(9, 16)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _place(canvas: np.ndarray, qr: np.ndarray, centre: tuple[float, float], px_per_module: float,
           tilt: float, rng: np.random.Generator) -> None:
    """Warp `qr` (modules) onto `canvas` (float32, in place) around `centre`."""
    import cv2

    height, width = canvas.shape
    side = qr.shape[0] * px_per_module
    cx, cy = centre
    half = side / 2
    square = np.array([[cx - half, cy - half], [cx + half, cy - half],
                       [cx + half, cy + half], [cx - half, cy + half]], dtype=np.float32)
    jitter = rng.uniform(-tilt * side, tilt * side, size=(4, 2)).astype(np.float32)
    n = qr.shape[0]
    source = np.array([[0, 0], [n, 0], [n, n], [0, n]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(source, square + jitter)
    # screen contrast: dark modules are lit pixels' black (~45), light ones ~215
    screen = np.where(qr > 127, 215.0, 45.0).astype(np.float32)
    warped = cv2.warpPerspective(screen, matrix, (width, height), flags=cv2.INTER_NEAREST)
    mask = cv2.warpPerspective(np.ones_like(screen), matrix, (width, height), flags=cv2.INTER_NEAREST)
    canvas[mask > 0] = warped[mask > 0]


def camera_frame(qr: np.ndarray, rng: np.random.Generator, *, px_per_module: float = 4.0,
                 tilt: float = 0.03, blur_sigma: float = 0.8, noise_sigma: float = 5.0,
                 others: Sequence[np.ndarray] = (), size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A BGR uint8 camera-like frame showing `qr` (and `others`, smaller, at the side)."""
    import cv2

    width, height = size
    canvas = _background(rng, width, height)
    side = qr.shape[0] * px_per_module
    if side > height - 20:
        raise BadInput(f"a {qr.shape[0]}-module QR code at {px_per_module} px/module does not fit a {height} px "
                       "frame", hint="use fewer pixels per module or a smaller QR version")
    centre = (width / 2 + rng.uniform(-20, 20) - (140 if others else 0), height / 2 + rng.uniform(-10, 10))
    _place(canvas, qr, centre, px_per_module, tilt, rng)
    for k, other in enumerate(others):
        other_px = min(4.0, 280 / other.shape[0])
        _place(canvas, other, (width - 170, 170 + 330 * k), other_px, tilt, rng)
    gradient = np.linspace(0.85, 1.1, width, dtype=np.float32)[None, :]
    canvas *= gradient
    canvas = cv2.GaussianBlur(canvas, (0, 0), blur_sigma)
    canvas += rng.normal(0, noise_sigma, size=canvas.shape).astype(np.float32)
    gray = np.clip(canvas, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def empty_frame(rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A frame with no QR code in it (the camera pointed away, motion blur between frames)."""
    import cv2

    width, height = size
    canvas = _background(rng, width, height)
    canvas += rng.normal(0, 5.0, size=canvas.shape).astype(np.float32)
    return cv2.cvtColor(np.clip(canvas, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def write_avi(path: Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames (all the same size) to a Motion-JPEG AVI; returns `path`."""
    import cv2

    path = Path(path)
    writer = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
                if not writer.isOpened():
                    raise EnvironmentProblem(f"OpenCV cannot write an MJPG AVI to {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise BadInput("no frames to write")
    return path


def write_pngs(folder: Path, frames: Iterable[np.ndarray], stem: str = "frame") -> list[Path]:
    """Write frames as `stem-0001.png`, `stem-0002.png`... (name order = frame order)."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames, start=1):
        path = folder / f"{stem}-{i:04d}.png"
        if not cv2.imwrite(str(path), frame):
            raise EnvironmentProblem(f"OpenCV could not write {path}")
        paths.append(path)
    return paths
