"""`coldsign qr encode | show | decode | scan`: the air gap crossed by light.

The group is defined here; the sending commands live in `qr_send.py`, the receiving ones in
`qr_receive.py`, each registering itself on this app.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True,
                  help="Move PSBTs and signatures across the air gap as animated QR codes (BC-UR, BBQr).")

from coldsign.cli import qr_receive, qr_send  # noqa: E402,F401  (register their commands on app)
