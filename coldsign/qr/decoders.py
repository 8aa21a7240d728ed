"""QR decoders: an image in, the text of every QR code in it out (adapters; no codec logic).

Two real decoders behind one small interface (:class:`QRDecoder`):

- ``zxing`` (the default): zxing-cpp. On camera-like 1280×720 frames of QR versions 30–40
  it decodes 95–100% at 4–5 ms a frame (issue 3), where pyzbar decodes 45–75% at 22–25 ms.
- ``zbar``: pyzbar over the system libzbar, for those who prefer it. A missing libzbar is an
  :class:`~coldsign.errors.EnvironmentProblem` (exit 7) naming the package to install.

Images are numpy arrays as OpenCV gives them (BGR, BGRA or grayscale, uint8). The
libraries are imported inside the functions that use them: they cost 0.1–0.2 s to import
and the pure core must not pay for them.
"""

from __future__ import annotations

from typing import Any, Protocol

from coldsign.errors import BadInput, EnvironmentProblem, UsageProblem

DECODER_NAMES = ("zxing", "zbar")
DEFAULT_DECODER = "zxing"

ZBAR_INSTALL_HINT = ("install the zbar library: `sudo apt-get install libzbar0` (Debian/Ubuntu), "
                     "`sudo dnf install zbar` (Fedora), `brew install zbar` (macOS); "
                     "or use the default decoder (drop --decoder zbar)")


class QRDecoder(Protocol):
    """Finds and reads every QR code in one image."""

    name: str

    def decode(self, image: Any) -> list[str]:
        """The text of each QR code found in ``image`` (possibly none), in the order found."""
        ...

    def decode_bytes(self, image: Any) -> list[bytes]:
        """The raw bytes of each QR code found (a CompactSeedQR is binary, not text)."""
        ...


def grayscale(image: Any) -> Any:
    """``image`` as a 2-D uint8 array: both decoders work on luminance, and it halves the copy."""
    import numpy as np

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise BadInput(f"an image must hold 8-bit pixels, not {array.dtype}")
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] in (3, 4):
        import cv2

        code = cv2.COLOR_BGR2GRAY if array.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(array, code)
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    raise BadInput(f"an image must be grayscale or colour, not an array of shape {array.shape}")


class ZXingDecoder:
    """zxing-cpp, QR codes only (other symbologies in view are not even looked for)."""

    name = "zxing"

    def __init__(self) -> None:
        import zxingcpp

        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormat.QRCode

    def decode(self, image: Any) -> list[str]:
        found = self._zxing.read_barcodes(grayscale(image), formats=self._formats)
        return [barcode.text for barcode in found if barcode.valid and barcode.text]

    def decode_bytes(self, image: Any) -> list[bytes]:
        found = self._zxing.read_barcodes(grayscale(image), formats=self._formats)
        return [bytes(barcode.bytes) for barcode in found if barcode.valid and barcode.bytes]


class ZBarDecoder:
    """pyzbar over the system libzbar, QR codes only."""

    name = "zbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar
            from pyzbar.pyzbar import ZBarSymbol
            from pyzbar.wrapper import load_libzbar

            load_libzbar()  # now, not in the middle of a scan
        except (ImportError, OSError) as err:
            raise EnvironmentProblem(f"the zbar decoder needs the libzbar system library, which "
                                     f"could not be loaded ({err})", hint=ZBAR_INSTALL_HINT) from None
        self._pyzbar = pyzbar
        self._symbols = [ZBarSymbol.QRCODE]

    def decode(self, image: Any) -> list[str]:
        return [_zbar_text(data) for data in self.decode_bytes(image)]

    def decode_bytes(self, image: Any) -> list[bytes]:
        # NOTE: zbar may re-encode binary data through its text-mode guess; coldsign reads text
        # payloads with it, and CompactSeedQR (binary) is read with zxing (the default).
        found = self._pyzbar.decode(grayscale(image), symbols=self._symbols)
        return [symbol.data for symbol in found if symbol.data]


def _zbar_text(data: bytes) -> str:
    # zbar hands back the symbol's bytes; the payloads coldsign reads are ASCII (UR and BBQr
    # are alphanumeric, base64/hex/base43 are ASCII). Anything else is kept, undamaged, as
    # latin-1 so the assembler can call it unrelated rather than crash here.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def make_decoder(name: str = DEFAULT_DECODER) -> QRDecoder:
    """The decoder called ``name`` ("zxing" or "zbar"), ready to use."""
    if name == "zxing":
        return ZXingDecoder()
    if name == "zbar":
        return ZBarDecoder()
    raise UsageProblem(f"unknown QR decoder {name!r}", hint=f"use one of: {', '.join(DECODER_NAMES)}")
