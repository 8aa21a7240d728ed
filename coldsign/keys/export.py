"""Public exports of a seed's accounts, for a coordinator to build a wallet from (pure).

Standard account paths per script type (BIP-49/84/86, BIP-48 for multisig), `--path`
parsing, the account's descriptor (single-sig) or key expression (a multisig cosigner's
`[fingerprint/path]xpub`), and Coldcard's "generic JSON" export. UR forms live in
coldsign.wallet.urtypes; BSMS records in coldsign.wallet.bsms.
"""

from __future__ import annotations

from coldsign.errors import UsageProblem
from coldsign.keys.derive import format_path
from coldsign.network import Network

H = 0x80000000
SCRIPT_TYPES = ("wpkh", "sh-wpkh", "tr", "wsh-multi")
PURPOSES = {"wpkh": 84, "sh-wpkh": 49, "tr": 86, "wsh-multi": 48}
SINGLE_SIG = {"wpkh": "wpkh({})", "sh-wpkh": "sh(wpkh({}))", "tr": "tr({})"}
# NOTE: limits.py has no field for this; BIP-32 allows 255 levels, but no standard account
# path is deeper than 4 and a deep path is more likely a mistake than a plan.
MAX_PATH_DEPTH = 10
MAX_ACCOUNT = 0x7FFFFFFF
# Coldcard's generic JSON: the chain names and the section of each script type.
COLDCARD_CHAINS = {Network.MAIN: "BTC", Network.TEST: "XTN", Network.SIGNET: "XTN", Network.REGTEST: "XRT"}
COLDCARD_SECTIONS = (("bip49", "sh-wpkh", "ypub", "p2wpkh-p2sh"), ("bip84", "wpkh", "zpub", "p2wpkh"),
                     ("bip86", "tr", None, "p2tr"), ("bip48_2", "wsh-multi", "Zpub", "p2wsh"))


def account_key_expression(seed, path: tuple[int, ...], network: Network, *, multipath: bool = True) -> str:
    """`[fingerprint/path]xpub` of the seed's account at `path`, with `/<0;1>/*` when `multipath`."""
    node = seed.root.reveal().derive(list(path)).to_public()
    xpub = node.to_base58(network.embit["xpub"])
    origin = "/".join([seed.fingerprint.hex(), format_path(path)]) if path else seed.fingerprint.hex()
    return f"[{origin}]{xpub}" + ("/<0;1>/*" if multipath else "")


def check_script_type(script_type: str) -> str:
    if script_type not in SCRIPT_TYPES:
        raise UsageProblem(f"unknown script type {script_type!r}", hint=f"use one of: {', '.join(SCRIPT_TYPES)}")
    return script_type


def standard_path(script_type: str, network: Network, account: int = 0) -> tuple[int, ...]:
    """The account path of `script_type`: 84h/COINh/ACCOUNTh (49, 86 likewise) or BIP-48's
    48h/COINh/ACCOUNTh/2h for a P2WSH multisig cosigner; COIN is 0 on main, 1 elsewhere."""
    check_script_type(script_type)
    if not 0 <= account <= MAX_ACCOUNT:
        raise UsageProblem(f"account {account} is outside 0..{MAX_ACCOUNT}")
    path = (PURPOSES[script_type] | H, network.bip32_coin_type | H, account | H)
    return path + ((2 | H,) if script_type == "wsh-multi" else ())


def parse_account_path(text: str, network: Network) -> tuple[int, ...]:
    """An account path as users write it (`m/84h/1h/0h`, `84'/1'/0'`, `84H/1H/0H`), checked:
    every step hardened (an account key is exported at a hardened path), at most
    MAX_PATH_DEPTH steps, and a standard purpose's coin type matching the network."""
    body = text.strip()
    if body.lower().startswith("m"):
        body = body[1:]
        if body and not body.startswith("/"):
            raise UsageProblem(f"--path {text!r}: expected m/ followed by steps, e.g. m/84h/1h/0h")
        body = body[1:]
    if not body:
        raise UsageProblem(f"--path {text!r} has no steps", hint="an account path looks like m/84h/1h/0h")
    parts = body.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise UsageProblem(f"--path has {len(parts)} steps; at most {MAX_PATH_DEPTH} are accepted")
    path = []
    for position, part in enumerate(parts, 1):
        hardened = part[-1:] in ("h", "H", "'")
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or not digits.isascii():
            raise UsageProblem(f"--path step {position} ({part!r}) is not a number", hint="write steps like 84h")
        index = int(digits) if len(digits) <= 10 else MAX_ACCOUNT + 1  # NOTE: int() of 5,000 digits raises
        if index > MAX_ACCOUNT:
            shown = part if len(part) <= 20 else f"{part[:12]}... ({len(digits)} digits)"
            raise UsageProblem(f"--path step {position} ({shown!r}) is above {MAX_ACCOUNT}")
        if not hardened:
            raise UsageProblem(f"--path step {position} ({part!r}) is not hardened: an account path is "
                               f"hardened at every step", hint=f"write {index}h")
        path.append(index | H)
    purpose = path[0] & ~H
    if purpose in (44, 48, 49, 84, 86) and len(path) >= 2 and path[1] & ~H != network.bip32_coin_type:
        raise UsageProblem(f"--path coin type {path[1] & ~H} is not {network.value}'s "
                           f"({network.bip32_coin_type})", hint=f"use {purpose}h/{network.bip32_coin_type}h/...")
    return tuple(path)


def account_xpub(seed, path: tuple[int, ...], network: Network, version: str = "xpub") -> str:
    """The account's extended public key (`version`: xpub, or SLIP-132 ypub/zpub/Zpub)."""
    node = seed.root.reveal().derive(list(path)).to_public()
    return node.to_base58(network.embit[version])


def descriptor_export(seed, script_type: str, path: tuple[int, ...], network: Network) -> str:
    """Single-sig: the whole descriptor with its checksum, e.g. `wpkh([fp/84h/1h/0h]tpub.../<0;1>/*)#cs`.
    wsh-multi: the cosigner's key expression `[fp/48h/1h/0h/2h]tpub...` for a coordinator's sortedmulti."""
    from coldsign.wallet.scriptexpr import descriptor_checksum

    check_script_type(script_type)
    if script_type == "wsh-multi":
        return account_key_expression(seed, path, network, multipath=False)
    body = SINGLE_SIG[script_type].format(account_key_expression(seed, path, network))
    return f"{body}#{descriptor_checksum(body)}"


def first_address(descriptor: str, network: Network) -> str:
    """Receive address 0 of a single-sig descriptor (through coldsign's own descriptor code)."""
    from coldsign.wallet.descriptor import WalletDescriptor

    return WalletDescriptor.parse(descriptor, network).address(0, 0)


def _own_fingerprint(node) -> str:
    from embit.hashes import hash160

    return hash160(node.key.sec())[:4].hex().upper()


def coldcard_json(seed, network: Network, account: int = 0) -> dict:
    """Coldcard's "generic JSON" wallet export (docs/generic-wallet-export.md of Coldcard's
    firmware), which Sparrow and others import: the master xpub and XFP, and per script type
    the account xpub, its SLIP-132 form (`_pub`), path (`deriv`), first receive address
    (`first`, single-sig only), name and the account key's own fingerprint (`xfp`).
    P2PKH (bip44) is left out: coldsign does not sign it."""
    root = seed.root.reveal()
    doc: dict = {"chain": COLDCARD_CHAINS[network], "xfp": seed.fingerprint.hex().upper(),
                 "xpub": root.to_public().to_base58(network.embit["xpub"]), "account": account}
    for section, script_type, slip132, name in COLDCARD_SECTIONS:
        path = standard_path(script_type, network, account)
        node = root.derive(list(path)).to_public()
        entry: dict = {"xpub": node.to_base58(network.embit["xpub"])}
        if slip132 is not None:
            entry["_pub"] = node.to_base58(network.embit[slip132])
        entry["deriv"] = format_path(path, master=True).replace("h", "'")
        if script_type in SINGLE_SIG:
            entry["first"] = first_address(descriptor_export(seed, script_type, path, network), network)
        entry["name"] = name
        entry["xfp"] = _own_fingerprint(node)
        doc[section] = entry
    return doc
