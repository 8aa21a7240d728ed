"""`coldsign key split | combine | seedqr`: paper and picture backups of a seed.

`split` cuts the seed's BIP-39 entropy into SLIP-39 shares (coldsign.keys.shares) and writes one
file per share; `combine` puts shares back together and shows the recovered seed's master
fingerprint; `seedqr` draws the seed as a SeedQR PNG (coldsign.keys.seedqr). Secrets come only
from files or a no-echo prompt on a terminal; words go only to 0600 files or to a terminal the
user asked to show them on — never into JSON, logs or a pipe.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.secrets import KeystoreOpt, PasswordFileOpt, refuse_existing_secret_file, write_secret_file
from coldsign.cli.key import app
from coldsign.errors import BadInput, UsageProblem
from coldsign.keys.secret import Secret
from coldsign.limits import LIMITS

SHARE_FILE_MAX_BYTES = LIMITS.share_file_max_bytes
QR_BOX_SIZE = 10             # pixels per module of the SeedQR PNG
QR_BORDER = 4                # quiet zone, in modules (the QR standard's minimum)

MnemonicFileOpt = Annotated[Optional[Path], typer.Option(
    "--mnemonic-file", help="file holding the BIP-39 words (else a no-echo prompt on a terminal)")]
PassphraseFileOpt = Annotated[Optional[Path], typer.Option(
    "--passphrase-file", help="file holding the BIP-39 passphrase (only for the fingerprint shown)")]


SEEDQR_WARNING = (
    "WARNING: this image IS the seed. Anyone who sees or scans it can spend the coins.\n"
    "  - a phone camera, a screenshot, a printer's memory or a cloud sync keeps a copy;\n"
    "  - print or engrave it on this offline machine, store it like the words (sealed, numbered bag);\n"
    "  - then delete the file (it is written mode 0600, never through a temp file).")


# --- terminal helpers --------------------------------------------------------------------------


def _warn(message: str) -> None:
    from rich.text import Text

    rich_console(stderr=True, soft_wrap=True).print(Text(message, style="bold red"))


def _backed_up_seed(home: Path, keystore_name: str | None, mnemonic_file: Path | None,
                    passphrase_file: Path | None, password_file: Path | None) -> tuple[Secret, Secret | None, str]:
    """(words, BIP-39 passphrase, where from) of the seed to back up: a keystore's (after its
    password), or the words of a file or a no-echo prompt with the optional passphrase file."""
    from coldsign.cli.secrets import check_seed_options, read_password

    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    if keystore_name is not None:
        from coldsign.keys.keystore import info, keystore_path, open_words

        info(home, keystore_name)  # not found or damaged: say so before asking for the password
        words, passphrase = open_words(home, keystore_name, read_password(password_file))
        return words, passphrase, str(keystore_path(home, keystore_name))
    words, where = _read_mnemonic(mnemonic_file)
    return words, _read_passphrase(passphrase_file), where


def _read_mnemonic(mnemonic_file: Path | None) -> tuple[Secret, str]:
    """The checked, normalized mnemonic (Secret[str]) from its file or a no-echo prompt, and where from."""
    from coldsign.cli.secrets import read_secret
    from coldsign.keys.seed import check_mnemonic, normalize_mnemonic

    raw = read_secret(mnemonic_file, what="mnemonic file" if mnemonic_file else "words",
                      option="--mnemonic-file", label="Mnemonic words") or Secret("")
    where = str(mnemonic_file) if mnemonic_file else "typed mnemonic"
    words = normalize_mnemonic(raw.reveal())
    check_mnemonic(words, where=where)
    return Secret(words), where


def _read_passphrase(passphrase_file: Path | None) -> Secret | None:
    from coldsign.keys.seed import read_secret_file

    return read_secret_file(passphrase_file, what="passphrase file") if passphrase_file is not None else None


def _fingerprints(mnemonic: Secret, passphrase: Secret | None, where: str) -> dict:
    """{"fingerprint"} and, with a passphrase, {"fingerprint_without_passphrase"}."""
    from coldsign.keys.seed import SeedKey

    return SeedKey.from_mnemonic(mnemonic, passphrase, where=where).fingerprints()


def _fingerprint_text(doc: dict) -> str:
    from coldsign.console import fingerprint_text

    return fingerprint_text(doc["fingerprint"], doc.get("fingerprint_without_passphrase"))


# --- split -------------------------------------------------------------------------------------

def _parse_group(text: str) -> tuple[int, int]:
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageProblem(f"--group {text!r} is not of the form M/N", hint="e.g. --group 2/3 --group 3/5")
    return int(parts[0]), int(parts[1])


def _share_name(group: int, member: int) -> str:
    return f"share-{group}-{member}.txt"


@app.command("split")
def split_command(
    ctx: typer.Context,
    threshold: Annotated[Optional[int], typer.Option("--threshold", "-m", help="shares needed (M of M-of-N)")] = None,
    shares: Annotated[Optional[int], typer.Option("--shares", "-n", help="shares made (N of M-of-N)")] = None,
    group: Annotated[Optional[list[str]], typer.Option("--group", help="a group M/N (repeat for each group; "
                                                       "instead of --threshold/--shares)")] = None,
    group_threshold: Annotated[int, typer.Option("--group-threshold", help="groups needed")] = 1,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="folder for one file per share "
                                                    "(share-G-M.txt, mode 0600)")] = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    keystore_name: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Split the seed into SLIP-39 shares: any M of the N shares give back the very same words.

    The seed: --mnemonic-file (or typed words), or a --keystore (after its password).

    Shares go one per file (mode 0600) to --out-dir; without it they are shown once on a terminal.
    JSON gives the counts, identifier and file names, never words.

    The shares carry the BIP-39 words' entropy: `coldsign key combine` gives back the very words.
    A SLIP-39 wallet (e.g. a Trezor) combining them derives another wallet: SLIP-39 turns the secret
    into a seed its own way. Restore with coldsign (or type the recovered words into a BIP-39 wallet).

    Example: coldsign key split --mnemonic-file /media/seed.txt --threshold 2 --shares 3 --out-dir /media/shares

    Example: coldsign key split --keystore treasury-1 --threshold 2 --shares 3 --out-dir /media/shares
    """
    from embit import bip39

    from coldsign.keys import shares as slip39

    settings = settings_of(ctx, json_flag)
    groups = [_parse_group(g) for g in group] if group else None
    if groups is None and (threshold is None or shares is None):
        raise UsageProblem("give --threshold M and --shares N (or --group M/N for each group)",
                           hint="e.g. coldsign key split --mnemonic-file seed.txt -m 2 -n 3 --out-dir shares/")
    if out_dir is None:
        if settings.json:
            raise UsageProblem("--json never shows share words; say where to write them",
                               hint="pass --out-dir DIR")
        if not sys.stdout.isatty():
            raise UsageProblem("refusing to print shares to a pipe or file",
                               hint="pass --out-dir DIR to write one 0600 file per share, or run in a terminal")
    elif out_dir.exists() and not out_dir.is_dir():
        raise BadInput("the --out-dir path exists and is not a folder", where=str(out_dir))

    mnemonic, passphrase, where = _backed_up_seed(settings.home, keystore_name, mnemonic_file, passphrase_file,
                                                  password_file)
    fingerprints = _fingerprints(mnemonic, passphrase, where)
    entropy = Secret(bip39.mnemonic_to_bytes(mnemonic.reveal()))
    result = slip39.split(entropy, threshold, shares,
                          groups=groups, group_threshold=group_threshold)
    layout = groups or [(threshold, shares)]
    identifier = slip39.inspect_share(result[0][0]).identifier

    files: list[dict] = []
    if out_dir is not None:
        planned = [(g, m, out_dir / _share_name(g, m))
                   for g, members in enumerate(result, 1) for m in range(1, len(members) + 1)]
        taken = [str(p) for _, _, p in planned if p.exists()]
        if taken:
            raise UsageProblem(f"{len(taken)} share file(s) already exist in the folder; nothing was written",
                               where=str(out_dir), hint="use an empty folder; never mix shares of two splits")
        for g, m, path in planned:
            write_secret_file(path, result[g - 1][m - 1].reveal() + "\n", "share")
            files.append({"group": g, "member": m, "file": str(path)})

    doc = {
        "identifier": identifier,
        **fingerprints,
        "words": len(mnemonic.reveal().split()),
        "group_threshold": group_threshold if groups else 1,
        "groups": [{"group": g, "threshold": m, "shares": n} for g, (m, n) in enumerate(layout, 1)],
        "share_count": sum(len(members) for members in result),
        "files": files,
    }
    if out_dir is not None:
        emit(settings, doc, lambda: _render_split_files(doc))
    else:
        _show_shares(doc, result)


def _describe_layout(doc: dict) -> str:
    groups = doc["groups"]
    if len(groups) == 1:
        return f"{groups[0]['threshold']}-of-{groups[0]['shares']}"
    parts = ", ".join(f"group {g['group']}: {g['threshold']}-of-{g['shares']}" for g in groups)
    return f"{doc['group_threshold']} of {len(groups)} groups ({parts})"


def _render_split_files(doc: dict) -> None:
    from rich.text import Text

    out = rich_console(soft_wrap=True)
    out.print(Text(f"Split seed {_fingerprint_text(doc)} into {doc['share_count']} SLIP-39 shares, "
                   f"{_describe_layout(doc)}, identifier {doc['identifier']}:"))
    for item in doc["files"]:
        out.print(Text(f"  group {item['group']} share {item['member']}: {item['file']}"))
    _warn("Each file is a secret: move every share to its own holder and delete it here.")


def _show_shares(doc: dict, result: list[list[Secret]]) -> None:
    from rich.text import Text

    _warn("WARNING: the shares below are secrets. Write each one down for its own holder; "
          "they are shown this once and not stored.")
    out = rich_console(soft_wrap=True)
    out.print(Text(f"Seed {_fingerprint_text(doc)}: {doc['share_count']} SLIP-39 shares, "
                   f"{_describe_layout(doc)}, identifier {doc['identifier']}"))
    for g, members in enumerate(result, 1):
        for m, share in enumerate(members, 1):
            out.print(Text(f"\ngroup {g} share {m}:", style="bold"))
            out.print(Text(share.reveal()))


# --- combine -----------------------------------------------------------------------------------

def _read_share(path: Path, position: int) -> Secret:
    from coldsign.store import read_limited

    data = read_limited(path, SHARE_FILE_MAX_BYTES, what=f"share file {position}")
    try:
        return Secret(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"share file {position} is not UTF-8 text", where=str(path)) from None


@app.command("combine")
def combine_command(
    ctx: typer.Context,
    share_files: Annotated[list[Path], typer.Argument(help="share files, one SLIP-39 share each, any order")],
    passphrase_file: PassphraseFileOpt = None,
    mnemonic_out: Annotated[Optional[Path], typer.Option("--mnemonic-out", help="write the recovered words "
                                                         "to this file (mode 0600)")] = None,
    show: Annotated[bool, typer.Option("--show", help="show the recovered words (terminal only)")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Combine SLIP-39 shares back into the seed and show its master fingerprint.

    Reports which shares (and groups) were used and the recovered seed's master fingerprint.
    The words go only to --mnemonic-out (mode 0600), or to a terminal with --show.

    Example: coldsign key combine share-1-1.txt share-1-3.txt --mnemonic-out /media/seed.txt
    """
    from coldsign.keys import shares as slip39

    settings = settings_of(ctx, json_flag)
    if show and settings.json:
        raise UsageProblem("--json never shows the words", hint="drop --show, or use --mnemonic-out FILE")
    if show and not sys.stdout.isatty():
        raise UsageProblem("refusing to print the recovered words to a pipe or file",
                           hint="pass --mnemonic-out FILE, or run --show in a terminal")
    if mnemonic_out is not None:
        refuse_existing_secret_file(mnemonic_out, "--mnemonic-out")
    passphrase = _read_passphrase(passphrase_file)
    result = slip39.combine([_read_share(p, n) for n, p in enumerate(share_files, 1)])
    fingerprints = _fingerprints(result.mnemonic, passphrase, "recovered mnemonic")
    if mnemonic_out is not None:
        write_secret_file(mnemonic_out, result.mnemonic.reveal() + "\n", "--mnemonic-out")

    doc = {
        **fingerprints,
        "passphrase": passphrase is not None,
        "words": len(result.mnemonic.reveal().split()),
        "identifier": result.identifier,
        "group_threshold": result.group_threshold,
        "group_count": result.group_count,
        "groups_used": list(result.groups_used),
        "used": [{"position": u.position, "file": str(share_files[u.position - 1]),
                  "group": u.group, "member": u.member} for u in result.used],
        "unused": [{"position": p, "file": str(share_files[p - 1])} for p in result.unused],
        "mnemonic_out": str(mnemonic_out) if mnemonic_out is not None else None,
    }
    emit(settings, doc, lambda: _render_combine(doc, result.mnemonic if show else None))


def _render_combine(doc: dict, words: Secret | None) -> None:
    from rich.text import Text

    out = rich_console(soft_wrap=True)
    out.print(Text(f"Recovered a {doc['words']}-word seed, master fingerprint {_fingerprint_text(doc)}."))
    out.print(Text(f"Share set {doc['identifier']}, groups used: "
                   f"{', '.join(str(g) for g in doc['groups_used'])} of {doc['group_count']}"))
    for item in doc["used"]:
        out.print(Text(f"  used share {item['position']} ({item['file']}): group {item['group']} "
                       f"member {item['member']}"))
    for item in doc["unused"]:
        out.print(Text(f"  not used: share {item['position']} ({item['file']}), its group is incomplete"))
    if doc["mnemonic_out"]:
        out.print(Text(f"Words written to {doc['mnemonic_out']} (mode 0600)."))
    if words is not None:
        _warn("WARNING: the words below are the seed.")
        out.print(Text(words.reveal(), style="bold"))


# --- seedqr ------------------------------------------------------------------------------------

def seedqr_png(payload: Secret) -> tuple[bytes, int]:
    """The PNG bytes and QR version of a SeedQR payload: digits in numeric mode, bytes in byte mode."""
    import qrcode
    from qrcode.util import MODE_8BIT_BYTE, MODE_NUMBER, QRData

    value = payload.reveal()
    data = QRData(value.encode("ascii"), mode=MODE_NUMBER) if isinstance(value, str) \
        else QRData(bytes(value), mode=MODE_8BIT_BYTE)
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L,
                         box_size=QR_BOX_SIZE, border=QR_BORDER)
    code.add_data(data)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    return buffer.getvalue(), code.version


@app.command("seedqr")
def seedqr_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="the PNG file to write (mode 0600)")],
    compact: Annotated[bool, typer.Option("--compact", help="CompactSeedQR (entropy bytes, byte mode) "
                                          "instead of Standard SeedQR (word indexes, numeric mode)")] = False,
    mnemonic_file: MnemonicFileOpt = None,
    keystore_name: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Draw the seed as a SeedQR (SeedSigner's format) PNG. The image IS the seed: guard it like the words.

    The seed: --mnemonic-file (or typed words), or a --keystore (after its password). A SeedQR holds
    the words only, never a BIP-39 passphrase.

    Example: coldsign key seedqr --mnemonic-file /media/seed.txt --out /media/seedqr.png --compact

    Example: coldsign key seedqr --keystore treasury-1 --out /media/seedqr.png
    """
    from rich.text import Text

    from coldsign.keys import seedqr

    settings = settings_of(ctx, json_flag)
    refuse_existing_secret_file(out, "--out")
    mnemonic, _passphrase, _where = _backed_up_seed(settings.home, keystore_name, mnemonic_file, None, password_file)
    payload = seedqr.encode_compact(mnemonic) if compact else seedqr.encode_standard(mnemonic)
    png, version = seedqr_png(payload)
    _warn(SEEDQR_WARNING)
    if sys.stdin.isatty() and sys.stderr.isatty():
        # NOTE: the warning screen: on a terminal the custodian says so before the image exists.
        if not typer.confirm("Write the SeedQR image now?", default=False, err=True):
            from coldsign.errors import Refused

            raise Refused("the SeedQR was not written", where=str(out), code="not-confirmed")
    write_secret_file(out, png, "--out")
    doc = {"out": str(out), "format": "compact" if compact else "standard",
           "words": len(mnemonic.reveal().split()), "qr_version": version, "mode": "0600"}
    emit(settings, doc, lambda: rich_console(soft_wrap=True).print(
        Text(f"Wrote a {doc['format']} SeedQR (QR version {version}) of a {doc['words']}-word seed "
             f"to {out} (mode 0600).")))
