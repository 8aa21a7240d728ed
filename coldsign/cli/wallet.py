"""`coldsign wallet register | list | show | address | export`: thin wiring over coldsign.wallet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, settings_of
from coldsign.cli.secrets import KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt, PasswordFileOpt, read_bsms_token
from coldsign.limits import LIMITS

app = typer.Typer(no_args_is_help=True, help="Register the wallets this signer signs for and show their addresses.")


@app.command("register")
def register_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="wallet name: 1-64 of A-Z a-z 0-9 _ -")],
    descriptor: Annotated[Optional[str], typer.Option("--descriptor", help="descriptor with /<0;1>/* keys, "
                                                      "or the receive (/0/*) one with --change-descriptor")] = None,
    change_descriptor: Annotated[Optional[str], typer.Option("--change-descriptor",
                                                             help="the change (/1/*) descriptor")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="a BSMS (BIP-129) descriptor record, a "
                                                 "Coldcard/Sparrow multisig file, or a file holding a descriptor")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="file holding the BSMS TOKEN "
                                                       "(hex or decimal) of an encrypted record")] = None,
    keystore: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Register a wallet under a name (checksum, origins and network checked), from a descriptor or a
    setup file. With a seed (--mnemonic-file or --keystore) it also checks the seed holds one of the
    keys and shows which: compare the first address, M of N and key positions with the other custodians.

    Example: coldsign --network regtest wallet register --name vault
    --descriptor "wsh(sortedmulti(2,\\[d34db33f/48h/1h/0h/2h]tpubD.../<0;1>/*,...))#checksum"
    --mnemonic-file words.txt

    Example: coldsign --network regtest wallet register --name vault --file vault.bsms --keystore alice
    """
    from coldsign.errors import UsageProblem
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    network = settings.require_network()
    if (descriptor is None) == (file is None):
        raise UsageProblem("give the wallet as --descriptor TEXT or --file FILE (one of them)")
    if change_descriptor is not None and descriptor is None:
        raise UsageProblem("--change-descriptor goes with --descriptor")
    if token_file is not None and file is None:
        raise UsageProblem("--token-file is for an encrypted BSMS record given with --file")
    if passphrase_file is not None and mnemonic_file is None and keystore is None:
        raise UsageProblem("--passphrase-file needs --mnemonic-file")
    seed = None
    if keystore is not None or mnemonic_file is not None or password_file is not None:
        from coldsign.cli.secrets import load_seed

        seed = load_seed(settings.home, keystore, mnemonic_file, passphrase_file, password_file)
    source, extra = "descriptor", {}
    if file is not None:
        setup = read_setup_file(file, token_file, network)
        source, descriptor, extra = setup.source, setup.descriptor, setup.extra
    existed = registry.wallet_path(settings.home, name).exists()
    registration = registry.register(settings.home, name, descriptor, network,
                                     change_descriptor=change_descriptor, seed=seed)
    doc = registration.to_json()
    doc["registered"] = not existed
    doc["source"] = source
    doc.update(extra)
    doc["first_address"] = registration.descriptor.address(0, 0)
    if seed is not None:
        key = registry.seed_key_in(registration.descriptor, seed)
        position = registration.descriptor.keys.index(key) + 1
        doc["seed_key"] = {"position": position, "fingerprint": key.origin.fingerprint.hex(),
                           "path": key.origin.path_str()}
    title = "Registered wallet" if doc["registered"] else "Already registered (unchanged)"
    from coldsign.console import render_wallet  # rich: off the start-up path

    emit(settings, doc, lambda: render_wallet(doc, title=title))


# A wallet setup file: a descriptor, a BSMS record or a Coldcard file are a few KiB at most.
SETUP_FILE_MAX_BYTES = LIMITS.wallet_setup_file_max_bytes


def read_setup_file(path: Path, token_file: Path | None, network, script_type: str = "wpkh"):
    """The wallet a setup file holds (coldsign.wallet.setupfile), errors located at the file;
    `script_type` picks the account of a Coldcard generic JSON export."""
    from coldsign.errors import BadInput
    from coldsign.store import read_limited
    from coldsign.wallet.setupfile import parse_setup_text

    raw = read_limited(path, SETUP_FILE_MAX_BYTES, what="wallet setup file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("the wallet setup file is not UTF-8 text", where=str(path)) from None
    token = read_bsms_token(token_file) if token_file is not None else None
    try:
        return parse_setup_text(text, network, token=token, script_type=script_type)
    except BadInput as e:  # DescriptorError is a BadInput too
        e.where = f"{path}: {e.where}" if e.where else str(path)
        raise


@app.command("list")
def list_cmd(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """List the registered wallets.

    Example: coldsign wallet list --json
    """
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    wallets = registry.list_wallets(settings.home)
    doc = {"wallets": [{"name": r.name, "network": r.network.value, "kind": r.descriptor.kind,
                        "policy": r.descriptor.policy, "created": r.created,
                        "fingerprints": [k.origin.fingerprint.hex() for k in r.descriptor.keys]}
                       for r in wallets]}

    from coldsign.console import render_wallet_list  # rich: off the start-up path

    emit(settings, doc, lambda: render_wallet_list(doc, registry.wallets_dir(settings.home)))


@app.command("show")
def show_cmd(ctx: typer.Context, name: Annotated[str, typer.Argument(help="wallet name")],
             json_flag: JsonFlag = False) -> None:
    """Show a wallet: descriptor, policy, keys with fingerprints and paths, first address.

    Example: coldsign wallet show vault
    """
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    registration = registry.load(settings.home, name)
    doc = registration.to_json()
    doc["first_address"] = registration.descriptor.address(0, 0)
    from coldsign.console import render_wallet  # rich: off the start-up path

    emit(settings, doc, lambda: render_wallet(doc, title="Wallet"))


@app.command("address")
def address_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="wallet name")],
    index: Annotated[int, typer.Argument(help="address index (0..2147483647)", min=0, max=0x7FFFFFFF)],
    change: Annotated[bool, typer.Option("--change", help="the change branch (/1/index)")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Derive one address of a registered wallet (on the wallet's own network).

    Example: coldsign wallet address vault 0 --change --json
    """
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    registration = registry.load(settings.home, name)
    wallet = registration.descriptor
    branch = 1 if change else 0
    scripts = wallet.scripts(branch, index)
    doc = {"wallet": name, "network": registration.network.value, "change": change, "index": index,
           "address": wallet.address(branch, index), "script_pubkey": scripts.script_pubkey.hex(),
           "keys": [{"fingerprint": k.origin.fingerprint.hex(),
                     "path": f"{k.origin.path_str()}/{branch}/{index}",
                     "pubkey": k.pubkey_at(branch, index).hex()} for k in wallet.keys]}
    if scripts.witness_script is not None:
        doc["witness_script"] = scripts.witness_script.hex()
    if scripts.redeem_script is not None:
        doc["redeem_script"] = scripts.redeem_script.hex()

    from coldsign.console import render_address  # rich: off the start-up path

    emit(settings, doc, lambda: render_address(doc, wallet.policy))


EXPORT_FORMATS = ("descriptor", "bsms", "coldcard")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="wallet name")],
    fmt: Annotated[str, typer.Option("--format", help="descriptor, bsms (BIP-129 descriptor record) or "
                                     "coldcard (Coldcard/Sparrow multisig file)")] = "descriptor",
    out: Annotated[Optional[Path], typer.Option("--out", help="write to this file (atomically) "
                                                "instead of stdout")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="encrypt the BSMS record with the "
                                                       "TOKEN in this file (hex or decimal)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Export a registered wallet for another wallet, coordinator or signer to import.

    Example: coldsign wallet export vault --format coldcard --out vault.txt

    Example: coldsign wallet export vault --format bsms --out vault.bsms --json
    """
    import hashlib
    import sys

    from coldsign.errors import UsageProblem
    from coldsign.wallet import bsms, multisig_file, registry

    settings = settings_of(ctx, json_flag)
    if fmt not in EXPORT_FORMATS:
        raise UsageProblem(f"unknown export format {fmt!r}", hint="use one of: " + ", ".join(EXPORT_FORMATS))
    if token_file is not None and fmt != "bsms":
        raise UsageProblem("--token-file encrypts a BSMS record; it goes with --format bsms")
    registration = registry.load(settings.home, name)
    wallet = registration.descriptor
    if fmt == "descriptor":
        text = wallet.canonical() + "\n"
    elif fmt == "bsms":
        token = read_bsms_token(token_file) if token_file is not None else bsms.NO_ENCRYPTION
        text = bsms.descriptor_record(wallet, token=token)
    else:
        text = multisig_file.write(wallet, name)
    data = text.encode()
    doc = {"wallet": name, "network": registration.network.value, "format": fmt,
           "encrypted": token_file is not None, "first_address": wallet.address(0, 0),
           "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if out is not None:
        from coldsign.store import atomic_write

        atomic_write(out, data, mode=0o644)
        doc["out"] = str(out)
        emit(settings, doc, lambda: typer.echo(f"wrote wallet {name} as {fmt} to {out} "
                                               f"({doc['bytes']} bytes, sha256 {doc['sha256']})"))
    elif settings.json:
        doc["text"] = text
        emit(settings, doc)
    else:
        sys.stdout.write(text)
