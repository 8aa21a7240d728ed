"""Public exports of a seed's accounts, for a coordinator to build a wallet from (pure)."""

from __future__ import annotations

from coldsign.keys.derive import format_path
from coldsign.network import Network


def account_key_expression(seed, path: tuple[int, ...], network: Network, *, multipath: bool = True) -> str:
    """`[fingerprint/path]xpub` of the seed's account at `path`, with `/<0;1>/*` when `multipath`."""
    node = seed.root.reveal().derive(list(path)).to_public()
    xpub = node.to_base58(network.embit["xpub"])
    origin = "/".join([seed.fingerprint.hex(), format_path(path)]) if path else seed.fingerprint.hex()
    return f"[{origin}]{xpub}" + ("/<0;1>/*" if multipath else "")
