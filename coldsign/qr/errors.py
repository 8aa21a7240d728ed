"""Errors of the QR codecs."""

from coldsign.errors import BadInput


class QRDecodeError(BadInput):
    """A QR payload or a sequence of them is malformed, inconsistent or over a limit (exit 3)."""

    code = "qr-decode"


class NotThisFormat(QRDecodeError):
    """The payload is not of the format asked (e.g. an unrelated QR code in view): callers may skip it."""

    code = "qr-unrelated"
