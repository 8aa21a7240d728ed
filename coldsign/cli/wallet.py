"""`coldsign wallet register | list | show | address`: thin wiring over coldsign.wallet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, settings_of
from coldsign.console import render_address, render_wallet, render_wallet_list

app = typer.Typer(no_args_is_help=True, help="Register the wallets this signer signs for and show their addresses.")


@app.command("register")
def register_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="wallet name: 1-64 of A-Z a-z 0-9 _ -")],
    descriptor: Annotated[str, typer.Option("--descriptor", help="descriptor with /<0;1>/* keys, "
                                            "or the receive (/0/*) one with --change-descriptor")],
    change_descriptor: Annotated[Optional[str], typer.Option("--change-descriptor",
                                                             help="the change (/1/*) descriptor")] = None,
    mnemonic_file: Annotated[Optional[Path], typer.Option("--mnemonic-file", help="check that this seed "
                                                          "holds one of the wallet's keys")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file",
                                                            help="BIP-39 passphrase file")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Register a wallet descriptor under a name (checksum, origins and network checked).

    Example: coldsign --network regtest wallet register --name vault
    --descriptor "wsh(sortedmulti(2,[d34db33f/48h/1h/0h/2h]tpubD.../<0;1>/*,...))#checksum"
    --mnemonic-file words.txt
    """
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    network = settings.require_network()
    seed = None
    if mnemonic_file is not None:
        from coldsign.cli.secrets import read_mnemonic
        from coldsign.keys.seed import SeedKey

        words, passphrase, where = read_mnemonic(mnemonic_file, passphrase_file)
        seed = SeedKey.from_mnemonic(words, passphrase, where=where)
    elif passphrase_file is not None:
        from coldsign.errors import UsageProblem

        raise UsageProblem("--passphrase-file needs --mnemonic-file")
    existed = registry.wallet_path(settings.home, name).exists()
    registration = registry.register(settings.home, name, descriptor, network,
                                     change_descriptor=change_descriptor, seed=seed)
    doc = registration.to_json()
    doc["registered"] = not existed
    doc["first_address"] = registration.descriptor.address(0, 0)
    if seed is not None:
        key = registry.seed_key_in(registration.descriptor, seed)
        position = registration.descriptor.keys.index(key) + 1
        doc["seed_key"] = {"position": position, "fingerprint": key.origin.fingerprint.hex(),
                           "path": key.origin.path_str()}
    title = "Registered wallet" if doc["registered"] else "Already registered (unchanged)"
    emit(settings, doc, lambda: render_wallet(doc, title=title))


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

    emit(settings, doc, lambda: render_address(doc, wallet.policy))
