"""The wallet setup files other tools write, recognised by their content and turned into a
descriptor (pure). Used by `wallet register --file` on the signer and `watch import` on the
coordinator, so both read exactly the same formats the same way:

- a BSMS round-2 descriptor record (BIP-129), plain or encrypted with a TOKEN;
- a Coldcard/Sparrow/Specter multisig setup file (`Name:`, `Policy:`, `Format:`, `XFP: xpub` lines);
- JSON: a Specter/Sparrow export with a `"descriptor"` field, or Coldcard's generic JSON
  (`{"xfp", "bip84": {"xpub", "deriv"}, ...}`), of which `script_type` picks the account;
- one descriptor, or receive and change descriptors on two lines (`#` comment lines ignored);
- a scanned UR `crypto-output` or `crypto-account` (BCR-2020-010/015): `from_ur`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from coldsign.errors import BadInput, Refused
from coldsign.network import Network

# Coldcard generic JSON section and descriptor wrapper per single-key script type.
COLDCARD_SECTIONS = {"wpkh": ("bip84", "wpkh({})"), "sh-wpkh": ("bip49", "sh(wpkh({}))"),
                     "tr": ("bip86", "tr({})")}
# NOTE: the xpub and path go into descriptor text: only base58 letters and path steps, so a
# ',' or ')' in a hostile file cannot add keys or change the script.
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+\Z")
_DERIVATION = re.compile(r"m(/[0-9]{1,10}['hH]?)+\Z")


@dataclass(frozen=True)
class SetupFile:
    source: str                       # descriptor | bsms | coldcard | json | coldcard-json | ur
    descriptor: str
    change_descriptor: str | None = None
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
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(lines) not in (1, 2):
        raise BadInput(f"a descriptor file holds one descriptor (or receive and change on two lines), "
                       f"this one has {len(lines)} lines",
                       hint="or give a BSMS record, a Coldcard/Sparrow multisig file or a JSON export")
    return SetupFile("descriptor", lines[0], lines[1] if len(lines) == 2 else None)


def _from_json(text: str, script_type: str, network: Network) -> SetupFile:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise BadInput(f"not valid JSON: {err}") from None
    except RecursionError:
        raise BadInput("not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadInput("a JSON wallet export is an object")
    if isinstance(doc.get("descriptor"), str):  # Specter, Sparrow, Bitcoin Core's listdescriptors entry
        extra = {"label": doc["label"]} if isinstance(doc.get("label"), str) else {}
        return SetupFile("json", doc["descriptor"], extra=extra)
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
