"""`coldsign key` commands registered on coldsign.cli.key.app."""

from __future__ import annotations
