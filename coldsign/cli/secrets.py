"""Secrets into the CLI: from a file (`--mnemonic-file`, `--passphrase-file`, `--password-file`), or
typed at a no-echo prompt when stdin is a terminal; never from argv. One place for every command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from coldsign.errors import BadInput, Refused, SecretProblem, UsageProblem
from coldsign.keys.secret import Secret

if TYPE_CHECKING:
    from coldsign.keys.seed import SeedKey


def read_secret(file: Path | None, *, what: str, option: str, label: str, confirm: bool = False,
                optional: bool = False) -> Secret | None:
    """A secret from `file`, else from a no-echo prompt when stdin is a terminal, else UsageProblem.

    `optional` secrets (the BIP-39 passphrase) accept Enter for none; `confirm` asks twice.
    """
    from coldsign.keys.seed import read_secret_file

    if file is not None:
        return read_secret_file(file, what=what)
    if not sys.stdin.isatty():
        if optional:
            return None
        raise UsageProblem(f"no {option} and no terminal to ask for the {what} on",
                           hint=f"pass {option} FILE (e.g. on removable media) or run in a terminal")
    # NOTE: prompts on stderr: stdout carries the command's output (an export, --json), which may be
    # redirected to a file or a pipe, and must hold that output only.
    value = typer.prompt(label, hide_input=True, confirmation_prompt=confirm,
                         default="" if optional else None, show_default=False, err=True)
    return Secret(value) if value else None


def read_password(file: Path | None, *, option: str = "--password-file", what: str = "keystore password",
                  confirm: bool = False) -> Secret:
    secret = read_secret(file, what=what, option=option, label=what[0].upper() + what[1:], confirm=confirm)
    if secret is None:
        raise SecretProblem(f"the {what} is empty", code="empty-password", hint="choose a non-empty password")
    return secret


def fix_typed_words(typed: Secret) -> Secret:
    """Typed words made whole: a unique 4-letter prefix stands for its word, and a word not in the
    BIP-39 list is asked again (no echo) with close words shown on the terminal, never in an error."""
    from coldsign.keys.seed import complete_word, normalize_mnemonic, suggest_words

    words = normalize_mnemonic(typed.reveal()).split()
    for position, word in enumerate(words, 1):
        for _attempt in range(MAX_RETYPES):
            whole = complete_word(word)
            if whole is not None:
                words[position - 1] = whole
                break
            close = suggest_words(word)
            typer.echo(f"Word {position} is not in the BIP-39 English list."
                       + (f" Close words: {', '.join(close)}." if close else ""), err=True)
            word = typer.prompt(f"Retype word {position}", hide_input=True, default="", show_default=False,
                                err=True)
        else:
            raise SecretProblem(f"word {position} is still not in the BIP-39 English word list",
                                code="unknown-word", hint="compare that word with the backup and start again")
    return Secret(" ".join(words))


MAX_RETYPES = 3


def read_mnemonic(mnemonic_file: Path | None, passphrase_file: Path | None = None
                  ) -> tuple[Secret, Secret | None, str]:
    """(words, BIP-39 passphrase or None, where the words came from). Typed words are followed by a
    passphrase prompt (Enter for none); words from a file use `passphrase_file` only."""
    words = read_secret(mnemonic_file, what="mnemonic file" if mnemonic_file else "words",
                        option="--mnemonic-file", label="Mnemonic words")
    if words is None:
        raise SecretProblem("no mnemonic words given", hint="type the words of the backup")
    if mnemonic_file is None:
        words = fix_typed_words(words)
    passphrase = read_passphrase(passphrase_file) if passphrase_file is not None or mnemonic_file is None else None
    return words, passphrase, str(mnemonic_file) if mnemonic_file else "typed mnemonic"


def read_passphrase(passphrase_file: Path | None) -> Secret | None:
    """The BIP-39 passphrase from its file, else asked on a terminal (Enter for none), else none."""
    return read_secret(passphrase_file, what="passphrase file", option="--passphrase-file",
                       label="BIP-39 passphrase (Enter for none)", optional=True)


# --- secret files out: words, shares, SeedQR images -----------------------------------------------

SECRET_FILE_MODE = 0o600


def refuse_existing_secret_file(path: Path, option: str) -> None:
    """A secret file is never replaced: the one there may hold another seed's words. Checked before
    any secret is read; `write_secret_file` checks again as the file lands."""
    if path.is_dir():
        raise BadInput(f"{option} is a folder; give a file name", where=str(path))
    if path.exists():
        raise _secret_file_exists(path, option)


def write_secret_file(path: Path, data: bytes | str, option: str) -> None:
    """Write a new mode-0600 secret file (no temp file: `store.write_new`); Refused if a file of that
    name exists, even one that appeared meanwhile."""
    from coldsign.store import write_new

    try:
        write_new(path, data, mode=SECRET_FILE_MODE)
    except FileExistsError:
        raise _secret_file_exists(path, option) from None


def _secret_file_exists(path: Path, option: str) -> Refused:
    return Refused(f"the {option} file already exists: it may hold another seed's words", where=str(path),
                   code="file-exists", hint="choose a new file name (and shred the old one if it is spent)")


# --- a seed from one of its two sources: an encrypted keystore, or words (file or typed) ---------

KeystoreOpt = Annotated[Optional[str], typer.Option("--keystore", help="use the seed of this encrypted "
                        "keystore (asks for its password)")]
MnemonicFileOpt = Annotated[Optional[Path], typer.Option("--mnemonic-file", help="file holding the BIP-39 "
                            "words (else, without --keystore, a no-echo prompt)")]
PassphraseFileOpt = Annotated[Optional[Path], typer.Option("--passphrase-file", help="file holding the BIP-39 "
                              "passphrase (with --mnemonic-file)")]
PasswordFileOpt = Annotated[Optional[Path], typer.Option("--password-file", help="file holding the keystore "
                            "password (else a no-echo prompt)")]
IdentityIndexOpt = Annotated[int, typer.Option("--index", min=0, max=0x7FFFFFFF, help="identity key index "
                             "(0 unless the identity was rotated)")]


def read_bsms_token(path: Path) -> str:
    """The BSMS (BIP-129) TOKEN from a file: hex (00, 16 or 32 digits) or the decimal form BIP-129
    recommends. A token is a secret of the wallet setup: never an option value."""
    from coldsign.keys.seed import read_secret_file
    from coldsign.wallet import bsms

    text = read_secret_file(path, what="BSMS token file").reveal().strip()
    if text.isdigit() and len(text) not in (2, 16, 32):
        return bsms.token_from_decimal(text)
    return bsms.check_token(text)


def check_seed_options(keystore_name: str | None, mnemonic_file: Path | None, passphrase_file: Path | None,
                       password_file: Path | None) -> None:
    """UsageProblem for contradictory seed options, before anything is read."""
    if keystore_name is not None and (mnemonic_file is not None or passphrase_file is not None):
        raise UsageProblem("--keystore and --mnemonic-file/--passphrase-file both give a seed; pass one",
                           hint="the keystore already holds the words and any BIP-39 passphrase")
    if password_file is not None and keystore_name is None:
        raise UsageProblem("--password-file is the keystore password; it needs --keystore NAME",
                           hint="the BIP-39 passphrase goes in --passphrase-file")


def load_seed(home: Path, keystore_name: str | None, mnemonic_file: Path | None,
              passphrase_file: Path | None, password_file: Path | None) -> "SeedKey":
    """The seed of `--keystore NAME` (password from `password_file` or a prompt) or of the words in
    `mnemonic_file` (or typed) with the optional BIP-39 passphrase."""
    from coldsign.keys.seed import SeedKey

    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    if keystore_name is not None:
        from coldsign.keys.keystore import info, open_seed

        info(home, keystore_name)  # not found or damaged: say so before asking for the password
        return open_seed(home, keystore_name, read_password(password_file))
    words, passphrase, where = read_mnemonic(mnemonic_file, passphrase_file)
    return SeedKey.from_mnemonic(words, passphrase, where=where)


def load_identity(home: Path, keystore_name: str | None, mnemonic_file: Path | None,
                  passphrase_file: Path | None, password_file: Path | None, index: int = 0):
    """The Ed25519 identity key (SLIP-10, `index`) of the seed `load_seed` reads: what signs log
    entries, checkpoints, requests, approvals and policy signatures."""
    from coldsign.keys.identity import IdentityKey

    return IdentityKey.from_seed(load_seed(home, keystore_name, mnemonic_file, passphrase_file, password_file), index)
