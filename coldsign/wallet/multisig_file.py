"""The Coldcard multisig setup text file that Coldcard, Sparrow and Specter exchange.

    # comment lines start with '#'
    Name: vault
    Policy: 2 of 3
    Derivation: m/48'/1'/0'/2'
    Format: P2WSH

    73C5DA0A: tpubDF...
    Derivation: m/48'/1'/0'/1'     <- applies to the keys after it
    C8E3B3D3: tpubDE...

`XFP: xpub` lines carry each cosigner's master fingerprint and account xpub; the current
`Derivation:` (the header one, or the latest one before a key) is that key's origin path.
Coldcard builds the wallet as `sortedmulti`, so `parse` returns a `wsh(sortedmulti(M, ...))`
WalletDescriptor with `/<0;1>/*` branches. Only `Format: P2WSH` is supported (coldsign wallets
are native segwit); P2SH and P2SH-P2WSH files are refused by name. SLIP-132 keys (Zpub/Vpub,
which Coldcard also writes) are read as the xpub/tpub they encode.

Pure: text in, WalletDescriptor out. Every error names its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coldsign.errors import BadInput, DescriptorError
from coldsign.limits import LIMITS
from coldsign.network import Network
from coldsign.wallet.descriptor import WalletDescriptor

# A 15-key file is ~2,000 characters; 64 KiB bounds a hostile file.
MULTISIG_FILE_MAX_CHARS = LIMITS.wallet_setup_file_max_bytes
# Coldcard's limit on a wallet name; longer names are cut on export.
COLDCARD_NAME_MAX_CHARS = 20
SUPPORTED_FORMAT = "P2WSH"
_OTHER_FORMATS = {"P2SH", "P2SH-P2WSH", "P2WSH-P2SH"}
_HEADER = re.compile(r"([A-Za-z0-9][A-Za-z0-9 ]*?)\s*:\s*(.*)\Z")
_XFP = re.compile(r"[0-9A-Fa-f]{8}\Z")
_POLICY = re.compile(r"([0-9]{1,4})\s*(?:of|/)\s*([0-9]{1,4})\Z", re.I)
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+\Z")
_PATH = re.compile(r"m(/\d+['hH]?)*\Z")
# SLIP-132 version bytes of multisig account keys -> the BIP-32 version of the same network.
_SLIP132_TO_BIP32 = {
    bytes.fromhex("02aa7ed3"): bytes.fromhex("0488b21e"),  # Zpub: P2WSH main
    bytes.fromhex("02575483"): bytes.fromhex("043587cf"),  # Vpub: P2WSH test
}


@dataclass(frozen=True)
class MultisigFile:
    """A parsed setup file: the wallet and the name the file gives it (None if it has none)."""

    name: str | None
    descriptor: WalletDescriptor


def looks_like_multisig_file(text: str) -> bool:
    """True when the text has the file's headers or `XFP: xpub` lines (for --file detection)."""
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if match and (match.group(1).lower() in ("policy", "format", "derivation")
                      or (_XFP.match(match.group(1)) and match.group(2)[1:4] == "pub")):
            return True
    return False


def parse(text: str, network: Network) -> MultisigFile:
    """Read a Coldcard/Sparrow multisig setup file into a wallet. BadInput (exit 3) naming the line."""
    if len(text) > MULTISIG_FILE_MAX_CHARS:
        raise BadInput(f"the multisig file is longer than the limit of {MULTISIG_FILE_MAX_CHARS} characters")
    name = policy = fmt = None
    derivation: str | None = None
    keys: list[tuple[int, str]] = []  # (line number, key expression)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _HEADER.match(line)
        if not match:
            raise BadInput(f"line {number}: expected 'Label: value' or 'XFP: xpub'", hint=_HINT)
        label, value = match.group(1), match.group(2).strip()
        if _XFP.match(label):
            if derivation is None:
                raise BadInput(f"line {number}: key {len(keys) + 1} has no Derivation: line before it",
                               hint="coldsign needs every key's derivation path (Coldcard 3.2.1+ files have it)")
            keys.append((number, f"[{label.lower()}{derivation[1:]}]{_bip32_key(value, number)}/<0;1>/*"))
            continue
        lower = label.lower()
        if lower == "name":
            name = value
        elif lower == "policy":
            found = _POLICY.match(value)
            if not found:
                raise BadInput(f"line {number}: Policy must read 'M of N', got {value[:40]!r}")
            policy = (int(found.group(1)), int(found.group(2)))
        elif lower == "derivation":
            if not _PATH.match(value.replace(" ", "")):
                raise BadInput(f"line {number}: Derivation must be a path like m/48'/1'/0'/2', got {value[:60]!r}")
            derivation = value.replace(" ", "").replace("'", "h").replace("H", "h")
        elif lower == "format":
            fmt = value.upper()
            if fmt in _OTHER_FORMATS:
                raise BadInput(f"line {number}: Format {fmt} is not supported; coldsign registers "
                               f"{SUPPORTED_FORMAT} (native segwit) multisig wallets only",
                               hint="create the wallet as P2WSH in the coordinator")
            if fmt != SUPPORTED_FORMAT:
                raise BadInput(f"line {number}: unknown Format {value[:20]!r} (expected {SUPPORTED_FORMAT})")
        else:
            raise BadInput(f"line {number}: unknown label {label[:30]!r}", hint=_HINT)
    if policy is None:
        raise BadInput("the multisig file has no 'Policy: M of N' line", hint=_HINT)
    if fmt is None:
        raise BadInput("the multisig file has no 'Format: P2WSH' line",
                       hint="coldsign does not guess the address format; add the Format line")
    threshold, count = policy
    if count != len(keys):
        raise BadInput(f"Policy says {threshold} of {count} but the file lists {len(keys)} keys")
    if not 1 <= threshold <= count:
        raise BadInput(f"Policy {threshold} of {count}: M must be between 1 and N")
    body = f"wsh(sortedmulti({threshold},{','.join(k for _, k in keys)}))"
    try:
        wallet = WalletDescriptor.parse(body, network)
    except DescriptorError as e:
        found = re.match(r"key (\d+)", e.message)
        where = f"line {keys[int(found.group(1)) - 1][0]}" if found else None
        raise BadInput(e.message, where=where, hint=e.hint) from None
    return MultisigFile(name=name, descriptor=wallet)


def write(descriptor: WalletDescriptor, name: str) -> str:
    """The setup file of a `wsh(sortedmulti)` wallet, for Coldcard, Sparrow or Specter to import.

    `name` is cut to Coldcard's 20 characters. A header Derivation line is written when every key
    shares its path; otherwise each key has its own Derivation line before it.
    """
    from coldsign.keys.derive import format_path

    if descriptor.kind != "wsh-sortedmulti":
        raise BadInput(f"a Coldcard multisig file holds wsh(sortedmulti) wallets; this one is {descriptor.kind}",
                       hint="export it with --format descriptor")
    paths = [format_path(k.origin.path, master=True).replace("h", "'") for k in descriptor.keys]
    shared = len(set(paths)) == 1
    lines = ["# Coldcard multisig setup file (exported by coldsign)", "#",
             f"Name: {name[:COLDCARD_NAME_MAX_CHARS]}", f"Policy: {descriptor.policy}"]
    if shared:
        lines.append(f"Derivation: {paths[0]}")
    lines += [f"Format: {SUPPORTED_FORMAT}", ""]
    for key, path in zip(descriptor.keys, paths):
        if not shared:
            lines.append(f"Derivation: {path}")
        lines.append(f"{key.origin.fingerprint.hex().upper()}: {key.xpub.to_base58()}")
    return "\n".join(lines) + "\n"


_HINT = "a Coldcard multisig file has Name:, Policy: M of N, Derivation:, Format: P2WSH, then XFP: xpub lines"


def _bip32_key(text: str, number: int) -> str:
    """The key as xpub/tpub: SLIP-132 multisig versions (Zpub, Vpub, ...) re-encoded."""
    from embit import base58

    if text[1:4] != "pub":
        raise BadInput(f"line {number}: expected an extended public key after the fingerprint")
    if not _BASE58.match(text):
        # NOTE: the key goes into descriptor text; a ',', '/' or ')' here could add keys the Policy line never counted
        raise BadInput(f"line {number}: after the fingerprint comes one extended public key (base58 letters only)",
                       hint="one 'XFP: xpub' line per cosigner, nothing else on the line")
    if text[:4] in ("xpub", "tpub"):
        return text
    try:
        data = base58.decode_check(text)
    except Exception:
        raise BadInput(f"line {number}: the extended key has an invalid base58 checksum (mistyped?)") from None
    version = _SLIP132_TO_BIP32.get(data[:4])
    if version is None:
        raise BadInput(f"line {number}: {text[:4]} keys are not multisig account keys",
                       hint="export the cosigner's P2WSH multisig key (xpub, tpub, Zpub or Vpub)")
    return base58.encode_check(version + data[4:])
