"""Addresses on a network (pure): the one check of whether an address belongs to a network.

`script_of` is the check itself: the scriptPubKey an address pays on `network`, or None when it is
not a valid address there (bad checksum, mixed-case bech32, another network's prefix). Everything
else builds on it: `address_script` for a withdrawal's destination (BadInput naming the network the
address belongs to), `canonical_address` for the policy's address book (compared as text),
`networks_of` for messages.

Testnet and signet share their prefixes (tb1…, m/n/2…), and regtest shares the base58 ones, so an
address can belong to several networks. bech32 and bech32m are told apart by the witness version
(BIP-350), as `embit.bech32.decode` does.
"""

from __future__ import annotations

from coldsign.errors import BadInput
from coldsign.network import Network

NETWORK_WORDS = {Network.MAIN: "mainnet", Network.TEST: "testnet", Network.SIGNET: "signet",
                 Network.REGTEST: "regtest"}


def script_of(text: str, network: Network) -> bytes | None:
    """The scriptPubKey `text` pays on `network`, or None when it is not a valid address there."""
    from embit import base58, bech32

    params = network.embit
    hrp = params["bech32"]
    if text.lower().startswith(hrp + "1"):
        if text != text.lower() and text != text.upper():
            return None
        version, program = bech32.decode(hrp, text.lower())
        if version is None or program is None:
            return None
        return bytes([0 if version == 0 else 0x50 + version, len(program)]) + bytes(program)
    try:
        data = base58.decode_check(text)
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError on junk
        return None
    if len(data) == 21 and data[:1] == params["p2pkh"]:
        return b"\x76\xa9\x14" + data[1:] + b"\x88\xac"
    if len(data) == 21 and data[:1] == params["p2sh"]:
        return b"\xa9\x14" + data[1:] + b"\x87"
    return None


def canonical_address(text: str, network: Network) -> str | None:
    """`text` in canonical form (bech32 lower-case, base58 as written) if valid on `network`, else None."""
    if script_of(text, network) is None:
        return None
    return text.lower() if text.lower().startswith(network.embit["bech32"] + "1") else text


def networks_of(text: str) -> list[Network]:
    """Every network on which `text` is a valid address (in `Network` order)."""
    return [n for n in Network if script_of(text, n) is not None]


def address_script(address: str, network: Network) -> bytes:
    """The scriptPubKey `address` pays on `network`; BadInput naming the address (and the network it
    belongs to, when it is another one's)."""
    text = address.strip()
    script = script_of(text, network)
    if script is not None:
        return script
    for other in networks_of(text):
        # testnet and signet share their prefixes: name both
        theirs = "testnet/signet" if other in (Network.TEST, Network.SIGNET) else NETWORK_WORDS[other]
        raise BadInput(f"{text} is a {theirs} address; this wallet is on {NETWORK_WORDS[network]}",
                       hint="check the destination: coins sent across networks are lost")
    raise BadInput(f"{text!r} is not a valid {NETWORK_WORDS[network]} address",
                   hint="check for typos (a bech32 address has a checksum; copy it, do not retype it)")
