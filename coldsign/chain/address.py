"""Regtest addresses: the scriptPubKey an address pays, and the address of a scriptPubKey.

Used by the `coldsign regtest` commands (the address `fund` pays, the miner's address) and by
the rehearsal script. Pure: no I/O.
"""

from __future__ import annotations

from coldsign.errors import BadInput


def regtest_address_script(address: str) -> bytes:
    """The scriptPubKey of a regtest address (bcrt1…, or base58 m…/n…/2…); BadInput otherwise."""
    from embit import base58, bech32

    text = address.strip()
    if text.lower().startswith("bcrt1"):
        mixed_case = text != text.lower() and text != text.upper()
        version, program = (None, None) if mixed_case else bech32.decode("bcrt", text.lower())
        if version is None:
            raise BadInput(f"{address!r} is not a valid regtest bech32 address",
                           hint="check for typos; regtest segwit addresses start with bcrt1")
        op = 0 if version == 0 else 0x50 + version
        return bytes([op, len(program)]) + bytes(program)
    try:
        data = base58.decode_check(text)
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError on junk
        data = b""
    if len(data) == 21 and data[:1] == b"\x6f":
        return b"\x76\xa9\x14" + data[1:] + b"\x88\xac"
    if len(data) == 21 and data[:1] == b"\xc4":
        return b"\xa9\x14" + data[1:] + b"\x87"
    raise BadInput(f"{address!r} is not a regtest address",
                   hint="use a bcrt1… address, or a base58 one starting with m, n or 2")


def regtest_address(script_pubkey: bytes) -> str:
    """The regtest address of a standard scriptPubKey."""
    from embit.networks import NETWORKS
    from embit.script import Script

    try:
        return Script(bytes(script_pubkey)).address(NETWORKS["regtest"])
    except ValueError:
        raise BadInput("this scriptPubKey has no address form",
                       where=bytes(script_pubkey).hex()) from None
