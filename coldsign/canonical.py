"""Canonical JSON: the one byte spelling of a JSON value that coldsign hashes or signs.

Keys sorted, no insignificant whitespace, UTF-8 (non-ASCII as itself, never a \\u escape). Used for
policy digests, signing requests and bundles, and ceremony-log entries. Those documents hold no
floats (JSON has one spelling of an integer, not of a float). Pure.
"""

from __future__ import annotations

import json

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: object) -> bytes:
    """`value`'s canonical bytes; UnicodeEncodeError for text with no UTF-8 spelling (a lone surrogate)."""
    return _ENCODER.encode(value).encode("utf-8")
