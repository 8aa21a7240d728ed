"""The wallet setup files other tools write, recognised by their content and turned into a
descriptor (pure). Used by `wallet register --file` on the signer and `watch import` on the
coordinator, so both read exactly the same formats the same way:

- a BSMS round-2 descriptor record (BIP-129), plain or encrypted with a TOKEN;
- a Coldcard/Sparrow/Specter multisig setup file (`Name:`, `Policy:`, `Format:`, `XFP: xpub` lines);
- JSON: the Account Map of Specter Desktop and Sparrow (`{"label", "blockheight", "descriptor", ...}`:
  the receive branch `/0/*`, the bare account keys or `/<0;1>/*`; change is `/1/*`), or Coldcard's
  generic JSON (`{"xfp", "bip84": {"xpub", "deriv"}, ...}`), of which `script_type` picks the account;
- descriptor lines (`#` comment lines ignored): one `/<0;1>/*` descriptor, receive (`/0/*`) and
  change (`/1/*`) ones, or all three as Sparrow's Output Descriptor export writes them; every line
  must describe the same wallet;
- a scanned UR `crypto-output` or `crypto-account` (BCR-2020-010/015): `from_ur`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coldsign.errors import BadInput, DescriptorError, Refused
from coldsign.network import Network
from coldsign.wallet.keyexpr import MULTIPATH, WILDCARD

if TYPE_CHECKING:
    from coldsign.wallet.descriptor import WalletDescriptor

# Coldcard generic JSON section and descriptor wrapper per single-key script type.
COLDCARD_SECTIONS = {"wpkh": ("bip84", "wpkh({})"), "sh-wpkh": ("bip49", "sh(wpkh({}))"),
                     "tr": ("bip86", "tr({})")}
# NOTE: the xpub and path go into descriptor text: only base58 letters and path steps, so a
# ',' or ')' in a hostile file cannot add keys or change the script.
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+\Z")
_DERIVATION = re.compile(r"m(/[0-9]{1,10}['hH]?)+\Z")

# Which branches a descriptor's keys end in (every key alike), and how errors name them.
_BRANCHES = {((MULTIPATH, (0, 1)), WILDCARD): "multipath", (0, WILDCARD): "receive",
             (1, WILDCARD): "change", (): "account"}
_ENDINGS = {"multipath": "/<0;1>/*", "receive": "/0/* (receive)", "change": "/1/* (change)",
            "account": "nothing (the account xpub)"}
_LABELS = {"multipath": "/<0;1>/* descriptor", "receive": "receive descriptor (/0/*)",
           "change": "change descriptor (/1/*)"}
# What a descriptor line of a text file may be, and what the Account Map's descriptor may be.
_LINE_BRANCHES = ("multipath", "receive", "change")
_ACCOUNT_MAP_BRANCHES = ("multipath", "receive", "account")
# An extended key (111 base58 letters; nothing else in a descriptor is 100 long) and its branches.
_EXTENDED_KEY_END = re.compile(r"([1-9A-HJ-NP-Za-km-z]{100,})(?:/[01]/\*)?(?=[,)])")


@dataclass(frozen=True)
class SetupFile:
    source: str                       # descriptor | bsms | coldcard | json | coldcard-json | ur
    descriptor: str                   # one /<0;1>/* descriptor: receive and change
    extra: dict = field(default_factory=dict)


def parse_setup_text(text: str, network: Network, *, token: str | None = None,
                     script_type: str = "wpkh") -> SetupFile:
    """The descriptor a setup file holds. `token`: for an encrypted BSMS record. `script_type`:
    which account of a Coldcard generic JSON export (wpkh, sh-wpkh or tr)."""
    from coldsign.wallet import bsms, multisig_file

    if bsms.is_bsms_text(text):
        record = bsms.parse_descriptor_record(text, network, token=token)
        return SetupFile("bsms", record.descriptor.canonical(), extra={"bsms": record.to_json()})
    if token is not None:
        raise BadInput("a BSMS token was given but the file is not an encrypted BSMS record")
    if multisig_file.looks_like_multisig_file(text):
        parsed = multisig_file.parse(text, network)
        return SetupFile("coldcard", parsed.descriptor.canonical(), extra={"file_name": parsed.name})
    if text.lstrip().startswith("{"):
        return _from_json(text, script_type, network)
    return _from_descriptor_lines(text, network)


_FORMATS_HINT = "or give a BSMS record, a Coldcard/Sparrow multisig file or a JSON export"


def _from_descriptor_lines(text: str, network: Network) -> SetupFile:
    """The wallet of a descriptor text file: a `/<0;1>/*` line is preferred, else receive and change
    lines are paired; every other line must describe the same wallet. Errors name the line."""
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise BadInput("the file holds no descriptor (only blank or # comment lines)", hint=_FORMATS_HINT)
    if len(lines) > 3:
        raise BadInput("a fourth descriptor: a descriptor file holds one /<0;1>/* descriptor and "
                       "its receive and change descriptors, at most", where=f"line {lines[3][0]}",
                       hint=_FORMATS_HINT)
    found: dict[str, tuple[int, WalletDescriptor]] = {}
    for number, line in lines:
        branch, wallet = _read_descriptor(line, network, f"line {number}", _LINE_BRANCHES)
        if branch in found:
            raise BadInput(f"a second {_LABELS[branch]}; the first is on line {found[branch][0]}",
                           where=f"line {number}")
        found[branch] = (number, wallet)
    if "multipath" in found:
        reference = "multipath"
    elif "receive" in found and "change" in found:
        reference = "receive"
    else:  # one receive or one change line
        (branch, (number, _)), = found.items()
        missing = "change" if branch == "receive" else "receive"
        raise BadInput(f"a {_LABELS[branch]} without its {_LABELS[missing]}", where=f"line {number}",
                       hint="give the receive (/0/*) and change (/1/*) descriptors on two lines, "
                            "or the /<0;1>/* descriptor")
    reference_line, wallet = found[reference]
    for branch, (number, other) in found.items():
        if not _same_wallet(wallet, other):
            raise BadInput(f"this {_LABELS[branch]} is not the same wallet as the {_LABELS[reference]} "
                           f"on line {reference_line}", where=f"line {number}",
                           hint="the file mixes two wallets or was edited; export it again")
    return SetupFile("descriptor", wallet.canonical())


def _read_descriptor(text: str, network: Network, where: str,
                     allowed: tuple[str, ...]) -> tuple[str, WalletDescriptor]:
    """(branch, WalletDescriptor) of one descriptor whose keys all end alike in one of the `allowed`
    branches; a receive, change or account descriptor is widened to `/<0;1>/*` after its checksum
    was verified on the text as given. Errors are located at `where`."""
    from coldsign.wallet.descriptor import WalletDescriptor
    from coldsign.wallet.scriptexpr import parse_expression

    try:
        expression = parse_expression(text)
        branches = {_BRANCHES.get(key.steps) for key in expression.keys}
        branch = branches.pop() if len(branches) == 1 else None
        if branch not in allowed:
            endings = [_ENDINGS[b] for b in allowed]
            raise DescriptorError(f"every key must end in {', '.join(endings[:-1])} or {endings[-1]}")
        if branch != "multipath":
            body = text.strip().partition("#")[0]
            text, widened = _EXTENDED_KEY_END.subn(r"\1/<0;1>/*", body)
            if widened != len(expression.keys):
                raise DescriptorError("every key must be an extended public key (xpub/tpub) with an origin")
        return branch, WalletDescriptor.parse(text, network)
    except BadInput as e:  # DescriptorError is a BadInput too
        e.where = where
        raise


def _same_wallet(a: WalletDescriptor, b: WalletDescriptor) -> bool:
    """Same scripts: kind, threshold and keys; in any order for sortedmulti, whose change descriptor
    Sparrow writes with the keys sorted by their change-branch pubkeys."""
    if (a.kind, a.threshold, len(a.keys)) != (b.kind, b.threshold, len(b.keys)):
        return False
    return set(a.keys) == set(b.keys) if a.kind == "wsh-sortedmulti" else a.keys == b.keys


def _from_json(text: str, script_type: str, network: Network) -> SetupFile:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise BadInput(f"not valid JSON: {err}") from None
    except RecursionError:
        raise BadInput("not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadInput("a JSON wallet export is an object")
    if isinstance(doc.get("descriptor"), str):
        # The Account Map (Fully Noded's export spec): Specter Desktop writes the receive descriptor
        # /0/*, Sparrow's "Specter Desktop" export the bare account keys; both read change as /1/*.
        _, wallet = _read_descriptor(doc["descriptor"], network, 'the "descriptor" field', _ACCOUNT_MAP_BRANCHES)
        extra = {"label": doc["label"]} if isinstance(doc.get("label"), str) else {}
        return SetupFile("json", wallet.canonical(), extra=extra)
    if isinstance(doc.get("xfp"), str):
        return _from_coldcard_json(doc, script_type, network)
    raise BadInput("this JSON is not a wallet export coldsign knows",
                   hint="expected a \"descriptor\" field (Specter, Sparrow) or Coldcard's generic JSON (\"xfp\")")


def _from_coldcard_json(doc: dict, script_type: str, network: Network) -> SetupFile:
    if script_type not in COLDCARD_SECTIONS:
        raise BadInput(f"a Coldcard generic JSON export gives single-key accounts: "
                       f"{', '.join(COLDCARD_SECTIONS)}, not {script_type}",
                       hint="multisig wallets come as a Coldcard multisig file or a BSMS record")
    section_name, wrapper = COLDCARD_SECTIONS[script_type]
    section = doc.get(section_name)
    xfp = doc["xfp"]
    if not isinstance(section, dict) or not isinstance(section.get("xpub"), str) \
            or not isinstance(section.get("deriv"), str):
        raise BadInput(f"the Coldcard JSON export has no \"{section_name}\" account with xpub and deriv")
    if len(xfp) != 8 or any(c not in "0123456789abcdefABCDEF" for c in xfp):
        raise BadInput(f"the Coldcard JSON export's xfp {xfp!r} is not 8 hex digits")
    deriv = section["deriv"]
    if not deriv.startswith("m/"):
        raise BadInput(f"the {section_name} path {deriv[:60]!r} does not start with m/")
    if not _DERIVATION.match(deriv):
        raise BadInput(f"the {section_name} path {deriv[:60]!r} is not a derivation path like m/84'/1'/0'")
    if not _BASE58.match(section["xpub"]):
        raise BadInput(f"the {section_name} xpub is not one base58 extended key")
    origin = "/".join([xfp.lower()] + [step.replace("'", "h") for step in deriv[2:].split("/")])
    descriptor = wrapper.format(f"[{origin}]{section['xpub']}/<0;1>/*")
    if "first" in section:  # Coldcard writes the account's first receive address: check it as BSMS does
        _check_first_address(descriptor, section["first"], network, section_name)
    return SetupFile("coldcard-json", descriptor, extra={"account": section_name})


def _check_first_address(descriptor: str, claimed: object, network: Network, section_name: str) -> None:
    from coldsign.wallet.descriptor import WalletDescriptor

    derived = WalletDescriptor.parse(descriptor, network).address(0, 0)
    if claimed != derived:
        shown = claimed[:100] if isinstance(claimed, str) else json.dumps(claimed)[:100]
        raise Refused(f"first address mismatch: the {section_name} account says {shown}, "
                      f"its xpub derives {derived}", code="first-address-mismatch",
                      hint="the export was changed or is for another wallet or network; do not use it, "
                           "export it again from the device")


def from_ur(ur_type: str, cbor: bytes, network: Network, *, script_type: str = "wpkh") -> SetupFile:
    """The descriptor of a scanned UR: a `crypto-output` as it is, or the `script_type` account of
    a `crypto-account` (wpkh, sh-wpkh, tr; wsh-multi gives a cosigner key, not a wallet)."""
    from coldsign.wallet import urtypes_decode as urtypes

    if ur_type == "crypto-output":
        output = urtypes.decode_output(cbor, network)
        if output.cosigner:
            raise BadInput("this crypto-output is one cosigner's key, not a wallet",
                           hint="build the multisig descriptor from every cosigner's key, or scan the wallet's "
                                "crypto-output or BSMS record")
        return SetupFile("ur", output.descriptor, extra={"ur_type": ur_type})
    if ur_type == "crypto-account":
        account = urtypes.decode_account(cbor, network)
        wanted = {"wpkh": "wpkh(", "sh-wpkh": "sh(wpkh(", "tr": "tr("}.get(script_type)
        for output in account.outputs:
            if wanted and not output.cosigner and output.descriptor.startswith(wanted):
                return SetupFile("ur", output.descriptor, extra={"ur_type": ur_type})
        raise BadInput(f"the scanned crypto-account has no {script_type} account")
    raise BadInput(f"a UR of type {ur_type} is not a wallet export",
                   hint="scan the signer's crypto-output or crypto-account (`coldsign key export --format ur`)")
