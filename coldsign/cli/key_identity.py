"""`coldsign key identity | roster`: the custodian's Ed25519 identity key and the roster of custodians.

Registered on `coldsign.cli.key.app`. The identity key is derived from the seed (SLIP-10, path and
fingerprint in `coldsign.keys.identity`), so only its public half is ever shown or written; the
roster (`coldsign.keys.roster`) is what auditors check signatures against. A roster given with
--roster is read and checked before the seed is, so a damaged file costs no password prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.key import app
from coldsign.cli.secrets import KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt, PasswordFileOpt
from coldsign.errors import UsageProblem



def render_identity(doc: dict) -> None:
    from rich.text import Text

    console = rich_console()
    from coldsign.console import fingerprint_text

    seed = fingerprint_text(doc["seed_fingerprint"], doc.get("seed_fingerprint_without_passphrase"))
    console.print(Text.assemble(("Identity key ", "bold"), f"{doc['path']} of seed {seed}"), soft_wrap=True)
    console.print(Text.assemble("fingerprint: ", (doc["fingerprint"], "bold")))
    console.print(Text(f"public key:  {doc['public_key']}"), soft_wrap=True)
    if "roster" in doc:
        verb = "Added to" if doc["added"] else "Already in"
        console.print(Text(f"{verb} the roster {doc['roster']}"), soft_wrap=True)


def render_roster(doc: dict) -> None:
    """A table of who is who (name, role, fingerprint, index), then each fingerprint's full public key."""
    from rich.table import Table
    from rich.text import Text

    console = rich_console()
    if not doc["custodians"]:
        console.print(Text(f"No custodians in {doc['roster']}"), soft_wrap=True)
        return
    table = Table(title=f"Roster {doc['roster']}", title_justify="left")
    table.add_column("name", min_width=8)
    table.add_column("role", min_width=8)
    table.add_column("fingerprint", no_wrap=True)
    table.add_column("index", justify="right", no_wrap=True)
    for c in doc["custodians"]:
        table.add_row(Text(c["name"]), Text(c["role"]), Text(c["fingerprint"]), str(c["index"]))
    console.print(table)
    console.print(Text("Identity public keys:"))
    for c in doc["custodians"]:
        console.print(Text(f"  {c['fingerprint']}  {c['identity']}"), soft_wrap=True)


@app.command()
def identity(
    ctx: typer.Context,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: Annotated[int, typer.Option("--index", min=0, max=0x7FFFFFFF, help="identity index: 0 first, "
                                       "the next one after a rotation")] = 0,
    roster_file: Annotated[Optional[Path], typer.Option("--roster", help="also add this custodian to this "
                           "roster file (created if missing); needs --name and --role")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="the custodian's name in the roster")] = None,
    role: Annotated[Optional[str], typer.Option("--role", help="the custodian's role in the roster, e.g. "
                    "custodian, approver, admin, auditor")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Show the custodian's identity key: its Ed25519 public key and fingerprint.

    Derived from the seed with SLIP-10 at m/1668246628h/0h/INDEXh: the same words and BIP-39
    passphrase always give the same identity. It signs approvals and ceremony-log entries.

    With --roster FILE --name NAME --role ROLE, also adds the custodian to that roster (auditors
    verify against it). A name already there with another key, or this key under another name,
    is refused (exit 4) and the roster is left as it was.

    Example: coldsign key identity --keystore treasury-1 --roster roster.json --name "Ana Lima" --role approver

    Example: coldsign key identity --mnemonic-file /media/words.txt --json
    """
    from coldsign.cli.secrets import check_seed_options, load_seed
    from coldsign.keys import roster as rosters
    from coldsign.keys.identity import IdentityKey

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    if roster_file is None and (name is not None or role is not None):
        raise UsageProblem("--name and --role are the roster entry; they need --roster FILE")
    roster = None
    if roster_file is not None:
        if name is None or role is None:
            raise UsageProblem("--roster needs --name NAME and --role ROLE for this custodian's entry")
        rosters.check_text(name, "name")
        rosters.check_text(role, "role")
        roster = rosters.load_or_new(roster_file)  # a damaged roster stops here, before any secret is read
    seed = load_seed(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file)
    key = IdentityKey.from_seed(seed, index)
    doc = {"public_key": key.public_hex, "fingerprint": key.fingerprint, "path": key.path, "index": index,
           "seed_fingerprint": seed.fingerprint_hex}
    if seed.fingerprint_without_passphrase is not None:
        doc["seed_fingerprint_without_passphrase"] = seed.fingerprint_without_passphrase.hex()
    if roster is not None:
        custodian = rosters.Custodian(name=name, role=role, identity=key.public_key, index=index)
        updated, added = roster.add(custodian)
        if added:
            rosters.save(roster_file, updated)
        doc.update({"roster": str(roster_file), "added": added})
    emit(settings, doc, lambda: render_identity(doc))


@app.command("roster")
def roster_show(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the roster file (JSON)")],
    json_flag: JsonFlag = False,
) -> None:
    """Show a roster: each custodian's name, role, identity fingerprint, index and public key.

    The file is checked strictly: format, fields, each fingerprint against its key, no duplicate
    names or keys. A damaged roster exits 3 naming the entry.

    Example: coldsign key roster roster.json --json
    """
    from coldsign.keys import roster as rosters

    settings = settings_of(ctx, json_flag)
    roster = rosters.load(file)
    doc = {"roster": str(file), **roster.to_json()}
    emit(settings, doc, lambda: render_roster(doc))
