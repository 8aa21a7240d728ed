"""`coldsign key export`: the account xpub for the coordinator (being written)."""

from __future__ import annotations

from coldsign.cli.key import app  # noqa: F401
