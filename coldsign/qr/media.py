"""Frames to files (an adapter): numbered PNG frames with frames.txt, an animated GIF, an MP4.

Every file is written atomically; frames.txt is written last, so when it exists the frames are
complete (ARCHITECTURE §4, `coldsign qr encode`).
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

from coldsign.errors import EnvironmentProblem, UsageProblem
from coldsign.store import atomic_write

FRAME_FILE = re.compile(r"^frame-\d{4,}\.png$")


def stale_frames(folder: Path, overwrite: bool) -> list[Path]:
    """Frames of an earlier run in `folder`: refused unless --overwrite, else returned to delete."""
    if folder.exists() and not folder.is_dir():
        raise UsageProblem(f"--frames-dir {folder} is a file", hint="give a folder")
    if not folder.is_dir():
        return []
    old = sorted(p for p in folder.iterdir() if FRAME_FILE.match(p.name) or p.name == "frames.txt")
    if old and not overwrite:
        raise UsageProblem(f"{folder} already holds frames ({len(old)} file(s): {old[0].name} …)",
                           hint="choose an empty folder, or pass --overwrite to replace them")
    return old


def write_frames(folder: Path, frames, scale: int, stale: list[Path]) -> None:
    """frame-0001.png … then frames.txt last; frames of an earlier run are removed first, so the
    folder never pairs an old frames.txt with new images."""
    for path in stale:
        path.unlink()
    width = max(4, len(str(len(frames))))
    for frame in frames:
        buffer = io.BytesIO()
        frame.to_image(scale).convert("1").save(buffer, format="PNG", optimize=True)
        atomic_write(folder / f"frame-{frame.index + 1:0{width}d}.png", buffer.getvalue())
    atomic_write(folder / "frames.txt", "".join(f"{frame.payload}\n" for frame in frames))


def write_gif(path: Path, frames, scale: int, fps: float) -> None:
    images = [frame.to_image(scale) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)), optimize=False, disposal=1)
    atomic_write(path, buffer.getvalue())


def write_mp4(path: Path, frames, scale: int, fps: float) -> None:
    """MPEG-4 part 2 ('mp4v', in every OpenCV build), grey frames of an even size (codecs ask for it)."""
    import cv2
    import numpy as np

    side = frames[0].side * scale
    even = side + side % 2
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".qr-video.") as tmp:
        temp = Path(tmp) / "video.mp4"
        writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (even, even), isColor=False)
        if not writer.isOpened():
            raise EnvironmentProblem("this OpenCV build cannot write MP4 video", where=str(path),
                                     hint="use --gif, or install opencv-python with FFMPEG")
        try:
            for frame in frames:
                image = np.full((even, even), 255, dtype=np.uint8)
                image[:side, :side] = frame.to_array(scale)
                writer.write(image)
        finally:
            writer.release()
        atomic_write(path, temp.read_bytes())
