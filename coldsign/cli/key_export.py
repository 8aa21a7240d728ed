"""`coldsign key export`: the account's public key for the coordinator, as a descriptor, UR
(crypto-output / crypto-account, text and optionally PNG frames), Coldcard generic JSON, or a
BSMS (BIP-129) signer record. Registered on coldsign.cli.key.app.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.key import app
from coldsign.cli.secrets import KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt, PasswordFileOpt
from coldsign.errors import EnvironmentProblem, UsageProblem


class ExportFormat(str, Enum):
    descriptor = "descriptor"
    ur = "ur"
    json = "json"
    bsms = "bsms"


class ScriptType(str, Enum):
    wpkh = "wpkh"
    sh_wpkh = "sh-wpkh"
    tr = "tr"
    wsh_multi = "wsh-multi"


class URType(str, Enum):
    crypto_output = "crypto-output"
    crypto_account = "crypto-account"


def _ur_parts(cbor: bytes, ur_type: str, max_fragment: int | None):
    """(transmission, its UR strings): one part when it fits a medium QR code (or `max_fragment`
    bytes), else the pure parts of a multi-part UR."""
    from coldsign.qr.transport import encode

    transmission = encode(cbor, format="ur", type=ur_type, max_fragment=max_fragment)
    return transmission, list(transmission.payloads)


def _check_options(fmt: ExportFormat, script_type: ScriptType | None, path: str | None,
                   ur_type: URType | None, ur_options: bool, token: Path | None,
                   description: str | None) -> None:
    """`ur_options`: one of --frames-dir, --max-fragment or --qr was given."""
    if fmt is not ExportFormat.ur and (ur_type is not None or ur_options):
        raise UsageProblem("--ur-type, --frames-dir, --max-fragment and --qr go with --format ur")
    if fmt is not ExportFormat.bsms and (token is not None or description is not None):
        raise UsageProblem("--token-file and --description go with --format bsms")
    whole_account = fmt is ExportFormat.json or ur_type is URType.crypto_account
    if whole_account and (path is not None or script_type is not None):
        raise UsageProblem(f"{'--format json' if fmt is ExportFormat.json else '--ur-type crypto-account'} "
                           "exports every standard script type of --account; --path and --script-type "
                           "do not apply", hint="drop --path/--script-type, or use --format descriptor")
    if fmt is ExportFormat.bsms and (script_type or ScriptType.wsh_multi) is not ScriptType.wsh_multi:
        raise UsageProblem("a BSMS signer record is for multisig: --script-type wsh-multi")


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="descriptor, ur, json (Coldcard generic "
                                              "JSON, Sparrow imports it) or bsms (BIP-129 signer record)")],
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    script_type: Annotated[Optional[ScriptType], typer.Option("--script-type", help="wpkh (default; bsms: "
                           "wsh-multi), sh-wpkh, tr, or wsh-multi (a multisig cosigner key at BIP-48)")] = None,
    account: Annotated[int, typer.Option("--account", min=0, max=0x7FFFFFFF, help="account number of the "
                                         "standard path (84h/COINh/ACCOUNTh …)")] = 0,
    path: Annotated[Optional[str], typer.Option("--path", help="account path instead of the standard one, "
                                                "hardened at every step, e.g. m/84h/1h/5h")] = None,
    ur_type: Annotated[Optional[URType], typer.Option("--ur-type", help="with --format ur: crypto-output "
                       "(default: this script type) or crypto-account (every standard type)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="also write the export to this file")] = None,
    frames_dir: Annotated[Optional[Path], typer.Option("--frames-dir", help="with --format ur: write the QR "
                          "frames as coldsign qr encode does (frame-0001.png …, frames.txt)")] = None,
    max_fragment: Annotated[Optional[int], typer.Option("--max-fragment", min=10, max=10_000, help="with "
                            "--format ur: bytes of a UR fragment (smaller QR codes, more parts)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace frames already in --frames-dir")] = False,
    qr: Annotated[bool, typer.Option("--qr", help="with --format ur: also show the UR as animated QR in the "
                  "terminal (on stderr; q stops), for the coordinator's camera")] = False,
    cycles: Annotated[Optional[int], typer.Option("--cycles", min=1, help="with --qr: stop after this many "
                      "cycles of the frames (default: until q)")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="with --format bsms: file holding "
                          "the coordinator's TOKEN, hex or decimal (default: 00, no token)")] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="with --format bsms: the "
                                                       "signer's description")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Export the account's public key for the coordinator: descriptor, UR, Coldcard JSON or BSMS.

    The path is the standard one of the script type (wpkh 84h, sh-wpkh 49h, tr 86h, wsh-multi
    BIP-48 48h/COINh/ACCOUNTh/2h; COIN is 1 off mainnet) unless --path gives another. Single-sig
    types export the whole descriptor; wsh-multi exports the key expression \\[fp/path]tpub... that
    the coordinator puts into sortedmulti(). The export goes to stdout (so `> file` works).

    Example: coldsign --network regtest key export --keystore alice --script-type wsh-multi --format ur --frames-dir qr/

    Example: coldsign --network regtest key export --keystore alice --format ur --ur-type crypto-account --qr
    """
    from coldsign.cli.secrets import load_seed
    from coldsign.keys import export as X

    settings = settings_of(ctx, json_flag)
    network = settings.require_network()
    _check_options(fmt, script_type, path, ur_type, frames_dir is not None or max_fragment is not None or qr,
                   token_file, description)
    if cycles is not None and not qr:
        raise UsageProblem("--cycles goes with --qr")
    kind = (script_type or (ScriptType.wsh_multi if fmt is ExportFormat.bsms else ScriptType.wpkh)).value
    key_path = X.parse_account_path(path, network) if path is not None else X.standard_path(kind, network, account)
    seed = load_seed(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file)

    from coldsign.keys.derive import format_path

    doc: dict = {"format": fmt.value, "script_type": kind, "path": format_path(key_path, master=True),
                 **seed.fingerprints(), "xpub": X.account_xpub(seed, key_path, network)}
    note = ""
    if fmt is ExportFormat.json:
        coldcard = X.coldcard_json(seed, network, account)
        exported = json.dumps(coldcard, indent=2)
        doc.update(script_type="all", path="m", xpub=coldcard["xpub"], export=coldcard)
        note = f"Coldcard generic JSON of account {account} (bip49, bip84, bip86, bip48_2)"
    else:
        text = X.descriptor_export(seed, kind, key_path, network)
        doc["key" if kind == "wsh-multi" else "descriptor"] = text
        note = (f"cosigner key for sortedmulti() at {doc['path']}" if kind == "wsh-multi"
                else f"{kind} descriptor at {doc['path']}")
        exported = text
    if fmt is ExportFormat.ur:
        from coldsign.wallet import urtypes

        chosen = (ur_type or URType.crypto_output).value
        if chosen == "crypto-account":
            cbor = urtypes.crypto_account(seed, network, account)
            doc.pop("descriptor", None)
            doc.pop("key", None)
            doc.update(script_type="all", path="m", xpub=seed.root.reveal().to_public().to_base58(
                network.embit["xpub"]))
            note = f"ur:crypto-account of account {account} (sh-wpkh, wpkh, wsh-multi cosigner, tr)"
        else:
            cbor = urtypes.crypto_output(seed, kind, key_path, network)
            note = f"ur:crypto-output, {note}"
        transmission, parts = _ur_parts(cbor, chosen, max_fragment)
        doc["ur"] = parts
        doc["cbor_hex"] = cbor.hex()
        exported = "\n".join(parts)
        if frames_dir is not None:
            from coldsign.cli.qr_send import write_transmission_frames

            written = write_transmission_frames(transmission, frames_dir, overwrite)
            doc.update(frames=written["frames"], frames_dir=written["frames_dir"])
        if qr:
            from coldsign.cli.qr_send import TerminalQR

            terminal_qr = TerminalQR(cbor, "ur", chosen, label=chosen, stderr=True, max_fragment=max_fragment)
    elif fmt is ExportFormat.bsms:
        from coldsign.cli.secrets import read_bsms_token

        token = read_bsms_token(token_file) if token_file is not None else "00"
        exported = _bsms_record(seed, key_path, network, token, description or "")
        doc["bsms"] = exported
        note = f"BSMS signer record (round 1) for {doc['path']}"
    if out is not None:
        from coldsign.store import atomic_write

        try:
            atomic_write(out, exported + "\n")
        except OSError as err:
            raise EnvironmentProblem(f"cannot write the export: {err.strerror or err}", where=str(out)) from err
        doc["out"] = str(out)

    def human() -> None:
        if out is None:
            typer.echo(exported)
        extra = f"; {doc['frames']} QR frame(s) in {frames_dir}/" if "frames" in doc else ""
        where = f"; written to {out}" if out is not None else ""
        from coldsign.console import fingerprint_text

        fingerprint = fingerprint_text(doc["fingerprint"], doc.get("fingerprint_without_passphrase"))
        rich_console(stderr=True, soft_wrap=True).print(f"{note}, master fingerprint {fingerprint}{extra}{where}")

    if qr:                                  # the export first, then the animation (until q or --cycles)
        if not settings.json:
            human()
        doc["qr_shown"] = terminal_qr.show(cycles=cycles)
        if not settings.json:
            return
    emit(settings, doc, human)


def _bsms_record(seed, path: tuple[int, ...], network, token: str, description: str) -> str:
    from coldsign.wallet.bsms import signer_record

    return signer_record(seed, path, network, token=token, description=description).rstrip("\n")
