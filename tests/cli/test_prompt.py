"""Signing with the words typed at a no-echo prompt, on a real pseudo-terminal (as a custodian would).

alice's wpkh wallet (tests/walletkit.py); the PSBT is walletkit.honest(). The words are typed,
the passphrase prompt is answered with Enter (none); the words must never appear on the screen.
"""

from __future__ import annotations

import sys

from typer.testing import CliRunner

import walletkit as W
from terminal import run_on_terminal
from coldsign.cli.main import app


def test_sign_with_words_typed_at_the_prompt(tmp_path):
    home = tmp_path / "alice"
    words = W.write_mnemonic(tmp_path, "alice")
    result = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register",
                                      "--name", "vault", "--descriptor", W.descriptor("wpkh"),
                                      "--mnemonic-file", str(words)])
    assert result.exit_code == 0, result.output
    words.unlink()
    _, psbt = W.honest()
    given = tmp_path / "in.psbt"
    given.write_bytes(psbt.serialize())
    out = tmp_path / "out.psbt"
    argv = [sys.executable, "-m", "coldsign", "--home", str(home), "psbt", "sign", str(given), "--wallet", "vault",
            "--out", str(out)]
    mnemonic = W.mnemonic("alice")
    status, screen = run_on_terminal(argv, [(b"Mnemonic words", mnemonic.encode() + b"\r"),
                                            (b"passphrase", b"\r")])
    assert status == 0, screen.decode(errors="replace")
    assert out.exists()
    assert b"Signed" in screen
    assert mnemonic.split()[0].encode() + b" " + mnemonic.split()[1].encode() not in screen
