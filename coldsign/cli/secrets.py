"""Secrets into the CLI: from a file (`--mnemonic-file`, `--passphrase-file`, `--password-file`), or
typed at a no-echo prompt when stdin is a terminal; never from argv. One place for every command."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from coldsign.errors import SecretProblem, UsageProblem
from coldsign.keys.secret import Secret


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
    value = typer.prompt(label, hide_input=True, confirmation_prompt=confirm,
                         default="" if optional else None, show_default=False)
    return Secret(value) if value else None


def read_password(file: Path | None, *, option: str = "--password-file", what: str = "keystore password",
                  confirm: bool = False) -> Secret:
    secret = read_secret(file, what=what, option=option, label=what[0].upper() + what[1:], confirm=confirm)
    if secret is None:
        raise SecretProblem(f"the {what} is empty", code="empty-password", hint="choose a non-empty password")
    return secret


def read_mnemonic(mnemonic_file: Path | None, passphrase_file: Path | None = None
                  ) -> tuple[Secret, Secret | None, str]:
    """(words, BIP-39 passphrase or None, where the words came from). Typed words are followed by a
    passphrase prompt (Enter for none); words from a file use `passphrase_file` only."""
    words = read_secret(mnemonic_file, what="mnemonic file" if mnemonic_file else "words",
                        option="--mnemonic-file", label="Mnemonic words")
    if words is None:
        raise SecretProblem("no mnemonic words given", hint="type the words of the backup")
    if passphrase_file is not None or mnemonic_file is None:
        passphrase = read_secret(passphrase_file, what="passphrase file", option="--passphrase-file",
                                 label="BIP-39 passphrase (Enter for none)", optional=True)
    else:
        passphrase = None
    return words, passphrase, str(mnemonic_file) if mnemonic_file else "typed mnemonic"
