"""Entry point: the root app with one Typer sub-app per command group."""

from __future__ import annotations

from coldsign.cli import key, psbt, qr, regtest, wallet, watch
from coldsign.cli import log
from coldsign.cli import policy
from coldsign.cli.app import app
from coldsign.cli import request
from coldsign.cli import audit
from coldsign.cli import ceremony

app.add_typer(key.app, name="key")
app.add_typer(wallet.app, name="wallet")
app.add_typer(psbt.app, name="psbt")
app.add_typer(regtest.app, name="regtest")
app.add_typer(qr.app, name="qr")
app.add_typer(watch.app, name="watch")
app.add_typer(log.app, name="log")
app.add_typer(policy.app, name="policy")
app.add_typer(request.app, name="request")
app.add_typer(audit.app, name="audit")
app.add_typer(ceremony.app, name="ceremony")


def main() -> int:
    try:
        app(prog_name="coldsign")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
