"""The preview window of `qr scan --preview` / `qr decode --preview`: what the camera sees, with
the progress drawn on it (an OpenCV adapter)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coldsign.errors import EnvironmentProblem
from coldsign.qr.scan import Frame, ScanCancelled

if TYPE_CHECKING:
    from coldsign.qr.transport import Progress


class PreviewWindow:
    """An OpenCV window showing what the camera sees, with a progress bar drawn on it.

    q or Esc stops the scan (:class:`ScanCancelled`). Use as a context manager; the window
    closes on exit.
    """

    title = "coldsign qr scan (q to stop)"

    def __enter__(self) -> "PreviewWindow":
        import cv2

        from coldsign.qr.display import check_window_platform

        check_window_platform()
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as err:
            raise EnvironmentProblem(f"cannot open a preview window ({err.msg if hasattr(err, 'msg') else err})",
                                     hint="run without --preview, or from a graphical session") from None
        return self

    def show(self, frame: Frame, progress: "Progress | None", frames_seen: int) -> None:
        """Draw ``frame`` with the progress on it; raise ScanCancelled on q or Esc."""
        import cv2

        if frame.image is None:
            return
        image = frame.image.copy() if frame.image.ndim == 3 else cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
        draw_progress(image, progress, frames_seen)
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            raise ScanCancelled(f"scan stopped from the preview window after {frames_seen} frame(s); "
                                "nothing was written")

    def __exit__(self, *exc: Any) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass  # NOTE: the window is already gone (closed by the user); nothing to release


def draw_progress(image: Any, progress: "Progress | None", frames_seen: int) -> None:
    """Overlay a progress bar and a status line along the bottom of a BGR ``image`` (in place)."""
    import cv2

    height, width = image.shape[:2]
    fraction = progress.fraction if progress else 0.0
    bar_h = max(8, height // 40)
    top = height - bar_h
    cv2.rectangle(image, (0, top), (width - 1, height - 1), (40, 40, 40), -1)
    cv2.rectangle(image, (0, top), (int((width - 1) * fraction), height - 1), (60, 200, 60), -1)
    fmt = progress.format if progress and progress.format else "waiting for a QR code"
    useful = progress.frames_useful if progress else 0
    label = f"{fmt}  {fraction:.0%}  frames {frames_seen}  useful {useful}"
    cv2.putText(image, label, (10, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, label, (10, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
