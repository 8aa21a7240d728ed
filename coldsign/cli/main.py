"""Entry point: the root app with one Typer sub-app per command group."""

from __future__ import annotations

from coldsign.cli import key, psbt, qr, regtest, wallet, watch
from coldsign.cli.app import app

app.add_typer(key.app, name="key")
app.add_typer(wallet.app, name="wallet")
app.add_typer(psbt.app, name="psbt")
app.add_typer(regtest.app, name="regtest")
app.add_typer(qr.app, name="qr")
app.add_typer(watch.app, name="watch")


def main() -> int:
    try:
        app(prog_name="coldsign")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
