"""`coldsign key new`: a fresh seed from the OS CSPRNG, optionally mixed with dice rolls.

Registered on `coldsign.cli.key.app`. On a terminal the words are shown once (on stderr, the
terminal) and three random positions are asked back, typed without echo, before anything is stored.
Off a terminal nothing can be shown or confirmed: the seed goes straight to `--mnemonic-out FILE`
(mode 0600, atomic) or to an encrypted keystore (`--keystore NAME --password-file W`), and that
file is the backup. `csprng_bytes` and `pick_positions` are module-level so tests can fix them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.key import app
from coldsign.errors import BadInput, SecretProblem, UsageProblem
from coldsign.limits import LIMITS

CONFIRM_WORDS = 3              # positions asked back before storing
DICE_FILE_MAX_BYTES = LIMITS.dice_file_max_bytes
CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"


def csprng_bytes(n: int) -> bytes:
    """`n` bytes from the operating system's CSPRNG (tests replace this function)."""
    return os.urandom(n)


def pick_positions(words: int, count: int = CONFIRM_WORDS) -> list[int]:
    """`count` distinct 1-based word positions, sorted, chosen with the system CSPRNG."""
    import secrets

    return sorted(secrets.SystemRandom().sample(range(1, words + 1), count))


# ---------------------------------------------------------------- steps

def _read_rolls(dice: bool, dice_file: Path | None, words: int) -> str | None:
    from coldsign.keys import entropy
    from coldsign.store import read_limited

    if dice_file is not None:
        raw = read_limited(dice_file, DICE_FILE_MAX_BYTES, what="dice file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("the dice file is not UTF-8 text", where=str(dice_file), code="dice-rolls") from None
        try:
            rolls = entropy.parse_rolls(text)
        except BadInput as err:
            err.where = str(dice_file)
            raise
    elif dice:
        if not sys.stdin.isatty():
            raise UsageProblem("--dice types the rolls at a prompt and there is no terminal",
                               hint="pass --dice-file FILE holding the rolls (digits 1-6)")
        need = entropy.minimum_rolls(words)
        rolls = ""
        # NOTE: the rolls may echo: alone they do not give the seed (they are mixed with the CSPRNG).
        while len(rolls) < need:
            line = typer.prompt(f"Dice rolls, digits 1-6 ({len(rolls)} so far, at least {need}; "
                                f"empty line to stop)", default="", show_default=False, err=True)
            if not line.strip():
                break
            rolls += entropy.parse_rolls(line)
    else:
        return None
    need = entropy.minimum_rolls(words)
    if len(rolls) < need:
        raise BadInput(f"{len(rolls)} dice rolls are too few for {words} words: at least {need} are needed",
                       where=str(dice_file) if dice_file else None, code="dice-too-few",
                       hint=f"roll {need - len(rolls)} more times")
    entropy.check_rolls(rolls)
    return rolls


def _show_and_confirm(mnemonic: str) -> None:
    """Show the words once on the terminal, clear them, ask CONFIRM_WORDS positions back (no echo)."""
    from rich.text import Text

    from coldsign.keys.seed import normalize_mnemonic

    console = rich_console(stderr=True)
    words = mnemonic.split()
    console.print(Text("WRITE THESE WORDS DOWN NOW. They are shown once, never stored in clear, and anyone "
                       "who sees them can spend the funds.", style="bold red"))
    width = len(str(len(words)))
    for row in range(0, len(words), 4):
        cells = (f"{i + 1:>{width}}. {words[i]:<9}" for i in range(row, min(row + 4, len(words))))
        console.print(Text("   ".join(cells)))
    typer.prompt("Press Enter when the words are written down", hide_input=True, default="",
                 show_default=False, err=True)
    sys.stderr.write(CLEAR_SCREEN)
    sys.stderr.flush()
    for position in pick_positions(len(words)):
        typed = typer.prompt(f"Type word #{position} of your backup", hide_input=True, default="",
                             show_default=False, err=True)
        if normalize_mnemonic(typed) != words[position - 1]:
            raise SecretProblem(f"word #{position} does not match: nothing was stored", code="not-confirmed",
                                hint="run `coldsign key new` again; these words are discarded")



def render(doc: dict) -> None:
    from rich.text import Text

    console = rich_console(stderr=True)
    where = f"keystore {doc['keystore']}" if "keystore" in doc else f"file {doc['mnemonic_out']}"
    console.print(Text.assemble(f"New {doc['words']}-word seed stored in {where}; master fingerprint ",
                                (doc["fingerprint"], "bold")))
    if "fingerprint_without_passphrase" in doc:
        console.print(Text(f"master fingerprint without the passphrase: {doc['fingerprint_without_passphrase']}"))
    if doc["dice_rolls"]:
        console.print(Text(f"{doc['dice_rolls']} dice rolls ≈ {doc['dice_entropy_bits']} bits, mixed with "
                           f"{doc['entropy_bits']} bits from the OS CSPRNG"))
    else:
        console.print(Text(f"{doc['entropy_bits']} bits from the OS CSPRNG"))


# ---------------------------------------------------------------- the command

@app.command("new")
def new(
    ctx: typer.Context,
    words: Annotated[int, typer.Option("--words", help="12 or 24 BIP-39 words")] = 24,
    dice: Annotated[bool, typer.Option("--dice", help="type dice rolls at a prompt (at least 50 for 12 words, "
                                       "99 for 24), mixed with the CSPRNG")] = False,
    dice_file: Annotated[Optional[Path], typer.Option("--dice-file", help="file holding the dice rolls "
                                                      "(digits 1-6, whitespace ignored)")] = None,
    keystore_name: Annotated[Optional[str], typer.Option("--keystore", help="store the seed encrypted in this "
                                                         "keystore")] = None,
    password_file: Annotated[Optional[Path], typer.Option("--password-file", help="file holding the keystore "
                             "password (else asked twice on a terminal)")] = None,
    mnemonic_out: Annotated[Optional[Path], typer.Option("--mnemonic-out", help="write the words to this new "
                            "file (mode 0600) instead of a keystore")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file", help="file holding a BIP-39 "
                               "passphrase (asked on a terminal, Enter for none)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Create a new seed from the OS CSPRNG, optionally mixed with dice rolls, and store it.

    On a terminal the words are shown once and 3 random positions are asked back
    (no echo) before anything is stored; a wrong word stores nothing (exit 6).

    Off a terminal there is no way to show or confirm the words: the --mnemonic-out
    file or the keystore (with --password-file) IS the backup, with no confirmation step;
    back a keystore's seed up with `key split --keystore NAME` or `key seedqr --keystore NAME`.

    Example: coldsign key new --words 24 --dice --keystore treasury-1
    """
    from coldsign.keys import entropy, keystore
    from coldsign.keys.secret import Secret
    from coldsign.keys.seed import SeedKey
    from coldsign.cli.key_store import kdf_limits
    from coldsign.cli.secrets import (read_passphrase, read_password, refuse_existing_secret_file,
                                      write_secret_file)

    settings = settings_of(ctx, json_flag)
    nbytes = entropy.entropy_bytes(words)
    if (keystore_name is None) == (mnemonic_out is None):
        raise UsageProblem("say where the new seed goes: --keystore NAME or --mnemonic-out FILE (one of them)",
                           hint="e.g. coldsign key new --words 24 --keystore treasury-1")
    if dice and dice_file is not None:
        raise UsageProblem("--dice and --dice-file both given", hint="type the rolls (--dice) or read them "
                           "from a file (--dice-file), not both")
    if password_file is not None and keystore_name is None:
        raise UsageProblem("--password-file encrypts a keystore; it needs --keystore NAME")
    if keystore_name is not None:
        keystore.require_free(settings.home, keystore_name)  # checks the name first
    else:
        refuse_existing_secret_file(mnemonic_out, "--mnemonic-out")
    on_terminal = sys.stdin.isatty() and sys.stderr.isatty()

    rolls = _read_rolls(dice, dice_file, words)
    passphrase = read_passphrase(passphrase_file)
    password = read_password(password_file, confirm=True) if keystore_name is not None else None

    mnemonic = Secret(entropy.mnemonic_of(entropy.mix(csprng_bytes(nbytes), rolls, nbytes)))
    if on_terminal:
        _show_and_confirm(mnemonic.reveal())
    doc: dict = SeedKey.from_mnemonic(mnemonic, passphrase).fingerprints()
    doc.update({"words": words, "dice_rolls": len(rolls) if rolls else 0, "entropy_bits": nbytes * 8,
                "dice_entropy_bits": round(entropy.entropy_bits(rolls), 1) if rolls else 0})
    if keystore_name is not None:
        keystore.create(settings.home, keystore_name, mnemonic, password, passphrase, **kdf_limits())
        doc["keystore"] = keystore_name
    else:
        write_secret_file(mnemonic_out, mnemonic.reveal() + "\n", "--mnemonic-out")
        doc["mnemonic_out"] = str(mnemonic_out)
    emit(settings, doc, lambda: render(doc))
