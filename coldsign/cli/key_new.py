"""`coldsign key new`: a fresh seed from the OS CSPRNG, optionally mixed with dice rolls."""

from __future__ import annotations
