"""`coldsign key identity`: the custodian's Ed25519 identity key (being written)."""

from __future__ import annotations

from coldsign.cli.key import app  # noqa: F401
