"""`coldsign key restore | list | show | delete | passphrase`: the encrypted keystore from the command line.

Registered on `coldsign.cli.key.app`. Two different secrets, never confused:
the keystore *password* encrypts the file (`--password-file`), the BIP-39 *passphrase* is part of
the seed (`--passphrase-file`). Every secret comes from a file or, on a terminal only, from a
no-echo prompt; never from an option value, the environment or argv.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.key import app
from coldsign.errors import Refused, SecretProblem, UsageProblem
from coldsign.cli.secrets import read_mnemonic, read_passphrase, read_password
from coldsign.keys.secret import Secret

NameArg = Annotated[str, typer.Argument(help="keystore name (letters, digits, '_' or '-')")]


def kdf_limits() -> dict:
    """The Argon2id parameters for new keystores, read at call time (tests lower them)."""
    from coldsign.keys import keystore

    return {"opslimit": keystore.DEFAULT_OPSLIMIT, "memlimit": keystore.DEFAULT_MEMLIMIT}


# ---------------------------------------------------------------- rendering


def render_info(doc: dict, *, title: str) -> None:
    from rich.text import Text

    console = rich_console()
    console.print(Text.assemble((title, "bold"), f"  {doc['name']}  ({doc['path']})"))
    if doc["has_passphrase"]:
        console.print(Text.assemble("master fingerprint with the passphrase:    ", (doc["fingerprint"], "bold")))
        console.print(Text.assemble("master fingerprint without the passphrase: ",
                                    (doc["fingerprint_without_passphrase"], "bold")))
    else:
        console.print(Text.assemble("master fingerprint: ", (doc["fingerprint"], "bold"), " (no passphrase)"))
    kdf = doc["kdf"]
    console.print(Text(f"created {doc['created']}"))
    console.print(Text(f"encrypted with {doc['cipher']} under {kdf['name']} (opslimit {kdf['opslimit']}, "
                       f"memlimit {kdf['memlimit'] // (1024 * 1024)} MiB)"))


def render_list(doc: dict) -> None:
    from rich.text import Text

    console = rich_console()
    if not doc["keystores"]:
        console.print(Text(f"No keystores in {doc['folder']}"))
        return
    for item in doc["keystores"]:
        if "damaged" in item:
            console.print(Text.assemble((item["name"], "bold"), "  ", ("DAMAGED: " + item["damaged"], "bold red")))
        else:
            fps = item["fingerprint"] + (f" (without passphrase {item['fingerprint_without_passphrase']})"
                                         if item["has_passphrase"] else "")
            console.print(Text.assemble((item["name"], "bold"), f"  {fps}  created {item['created']}"))


# ---------------------------------------------------------------- SeedQR in

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def read_seedqr(path: Path | None, camera: int | None) -> tuple[Secret, str]:
    """The words of the first SeedQR in a picture, a video file or the camera's view, and where from.
    Nothing of the picture is kept or written; other QR codes in view are skipped."""
    from coldsign.errors import ColdsignError
    from coldsign.keys import seedqr
    from coldsign.qr import scan

    try:
        if camera is not None:
            source, where = scan.Camera(camera), f"SeedQR on camera {camera}"
            typer.echo(f"Hold the SeedQR up to camera {camera} (Ctrl-C to stop)...", err=True)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            source, where = scan.MemoryFrames([scan.read_image(path)], description=str(path)), f"SeedQR {path}"
        else:
            source, where = scan.VideoFile(path), f"SeedQR {path}"
        from coldsign.qr.decoders import make_decoder

        return scan.first_code(source, make_decoder(), lambda raw: seedqr.decode(Secret(raw)),
                               what="a SeedQR"), where
    except ColdsignError as err:
        if err.code in (scan.UNREADABLE_IMAGE, scan.UNREADABLE_VIDEO):
            err.hint = "--seedqr takes a picture (PNG, JPEG) or a video (AVI, MP4, MKV) of the SeedQR"
        raise


# ---------------------------------------------------------------- commands

@app.command()
def restore(
    ctx: typer.Context,
    keystore_name: Annotated[str, typer.Option("--keystore", help="name of the new keystore")],
    mnemonic_file: Annotated[Optional[Path], typer.Option("--mnemonic-file", help="file holding the BIP-39 "
                             "words (else a no-echo prompt)")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file", help="file holding the BIP-39 "
                               "passphrase (none unless given; asked on a terminal when the words are typed)")] = None,
    password_file: Annotated[Optional[Path], typer.Option("--password-file", help="file holding the keystore "
                             "password that encrypts the file (else asked twice on a terminal)")] = None,
    seedqr_file: Annotated[Optional[Path], typer.Option("--seedqr", help="read the words from a SeedQR "
                           "(Standard or Compact): a picture (PNG, JPEG) or a video file")] = None,
    seedqr_camera: Annotated[Optional[int], typer.Option("--seedqr-camera", help="read the words from a "
                             "SeedQR held up to camera N (0 is the first)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Restore a seed from its BIP-39 words or a SeedQR and store it, encrypted under a keystore password.

    Typed words are checked one by one: a unique four-letter start stands for its word, and a
    word not in the list is asked again with close words shown (on the terminal only).
    Prints the master fingerprint with and without the BIP-39 passphrase, to check against the backup.

    Example: coldsign key restore --keystore treasury-1 --mnemonic-file /media/words.txt --password-file /media/pw.txt

    Example: coldsign key restore --keystore treasury-1 --seedqr-camera 0
    """
    from coldsign.keys import keystore
    from coldsign.keys.seed import check_mnemonic, normalize_mnemonic

    settings = settings_of(ctx, json_flag)
    keystore.require_free(settings.home, keystore_name)  # checks the name before any secret is read
    if sum(x is not None for x in (mnemonic_file, seedqr_file, seedqr_camera)) > 1:
        raise UsageProblem("--mnemonic-file, --seedqr and --seedqr-camera each give the words; pass one")
    if seedqr_file is not None or seedqr_camera is not None:
        mnemonic, where = read_seedqr(seedqr_file, seedqr_camera)
        passphrase = read_passphrase(passphrase_file)
    else:
        mnemonic, passphrase, where = read_mnemonic(mnemonic_file, passphrase_file)
    check_mnemonic(normalize_mnemonic(mnemonic.reveal()), where=where)
    password = read_password(password_file, confirm=True)
    info = keystore.create(settings.home, keystore_name, mnemonic, password, passphrase, **kdf_limits())
    doc = info.to_json()
    emit(settings, doc, lambda: render_info(doc, title="Stored keystore"))


@app.command("list")
def list_(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """List the keystores of the home folder with their public master fingerprints (no password needed).

    Example: coldsign key list --json
    """
    from coldsign.keys import keystore

    settings = settings_of(ctx, json_flag)
    items = []
    for name in keystore.list_keystores(settings.home):
        try:
            items.append(keystore.info(settings.home, name).to_json())
        except SecretProblem as err:  # a damaged file is listed as such, not hidden
            items.append({"name": name, "path": str(keystore.keystore_path(settings.home, name)),
                          "damaged": err.message})
    doc = {"folder": str(keystore.keystore_folder(settings.home)), "keystores": items}
    emit(settings, doc, lambda: render_list(doc))


@app.command()
def show(ctx: typer.Context, name: NameArg, json_flag: JsonFlag = False) -> None:
    """Show a keystore's public fields: fingerprints, creation time, KDF parameters (no password needed).

    Example: coldsign key show treasury-1 --json
    """
    from coldsign.keys import keystore

    settings = settings_of(ctx, json_flag)
    doc = keystore.info(settings.home, name).to_json()
    emit(settings, doc, lambda: render_info(doc, title="Keystore"))


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", help="delete without asking (required when not on a terminal)")]
    = False,
    json_flag: JsonFlag = False,
) -> None:
    """Delete a keystore file. Check the backup words first: without them the seed is gone.

    Asks for confirmation on a terminal; elsewhere --yes is required.

    Example: coldsign key delete treasury-1 --yes
    """
    from coldsign.keys import keystore

    settings = settings_of(ctx, json_flag)
    path = keystore.keystore_path(settings.home, name)
    try:  # a missing keystore is NotFound here
        fingerprint = keystore.info(settings.home, name).fingerprint
    except SecretProblem:  # NOTE: a damaged keystore may still be deleted; it cannot be opened anyway
        fingerprint = None
    if not yes:
        if not sys.stdin.isatty():
            raise UsageProblem(f"deleting keystore '{name}' needs confirmation and there is no terminal",
                               hint="pass --yes once the backup words are checked")
        what = f"fingerprint {fingerprint}" if fingerprint else "damaged"
        if not typer.confirm(f"Delete keystore '{name}' ({what})? The backup words are then the only copy",
                             err=True):
            raise Refused(f"keystore '{name}' was not deleted", where=str(path), code="not-confirmed")
    removed = keystore.delete(settings.home, name)
    doc = {"deleted": name, "path": str(removed), "fingerprint": fingerprint}
    emit(settings, doc, lambda: typer.echo(f"Deleted keystore {name} ({removed})"))


@app.command()
def passphrase(
    ctx: typer.Context,
    name: NameArg,
    password_file: Annotated[Optional[Path], typer.Option("--password-file", help="file holding the current "
                             "keystore password (else a no-echo prompt)")] = None,
    new_password_file: Annotated[Optional[Path], typer.Option("--new-password-file", help="file holding the new "
                                 "keystore password (else asked twice on a terminal)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Change the keystore *password* (the one that encrypts the file). The BIP-39 passphrase, part of
    the seed, does not change: the fingerprints stay the same.

    Example: coldsign key passphrase treasury-1 --password-file old.txt --new-password-file new.txt
    """
    from coldsign.keys import keystore

    settings = settings_of(ctx, json_flag)
    keystore.info(settings.home, name)  # not found or damaged: say so before asking for passwords
    old = read_password(password_file)
    new = read_password(new_password_file, option="--new-password-file", what="new keystore password",
                        confirm=True)
    doc = keystore.change_password(settings.home, name, old, new).to_json()
    emit(settings, doc, lambda: render_info(doc, title="New password for keystore"))
