"""Camera-like frames for QR tests: a thin re-export of coldsign.qr.camera_sim.

The degradations (perspective tilt, screen contrast, gradient, blur, sensor noise, unrelated codes
in view, Motion-JPEG recording) live in the package so the ceremony rehearsal can use them; the
tests import them from here as before. Every random choice comes from the `numpy.random.Generator`
passed in, so a failing frame is replayable from its seed.
"""

from coldsign.qr.camera_sim import (FRAME_SIZE, camera_frame, empty_frame, qr_modules, write_avi,  # noqa: F401
                                    write_pngs)

__all__ = ["FRAME_SIZE", "camera_frame", "empty_frame", "qr_modules", "write_avi", "write_pngs"]
