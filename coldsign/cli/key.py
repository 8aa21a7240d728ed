"""`coldsign key ...`: seeds, their encrypted keystores, SLIP-39 shares and SeedQR backups.

The group is defined here; `key new` lives in `key_new.py`, keystore commands in `key_store.py`, backup commands
(`split`, `combine`, `seedqr`) in `key_backup.py`, each registering itself on this app.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Seeds, encrypted keystores, SLIP-39 shares, SeedQR backups, account exports and identity keys.")

from coldsign.cli import key_backup, key_export, key_identity, key_new, key_store  # noqa: E402,F401  (register their commands on app)
