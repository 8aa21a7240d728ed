"""`coldsign qr` commands registered on coldsign.cli.qr.app."""

from __future__ import annotations
