"""Signing with the words typed at a no-echo prompt, on a real pseudo-terminal (as a custodian would).

alice's wpkh wallet (tests/walletkit.py); the PSBT is walletkit.honest(). The words are typed,
the passphrase prompt is answered with Enter (none); the words must never appear on the screen.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import termios
import time

from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app


def run_on_terminal(argv: list[str], answers: list[tuple[bytes, bytes]], timeout: float = 30) -> tuple[int, bytes]:
    """Run argv on a pty; when the screen shows each prompt, type its answer. (status, screen)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(argv[0], argv)
    screen, pending, deadline = b"", list(answers), time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        # Type only once the prompt is shown AND the terminal's echo is off, as a person would
        # (input that arrives earlier is flushed by getpass, and echoed by the terminal).
        if pending and pending[0][0] in screen and not termios.tcgetattr(fd)[3] & termios.ECHO:
            os.write(fd, pending.pop(0)[1])
            screen += b"\n<typed>\n"
    else:
        os.kill(pid, 9)  # the program never finished: fail with what the screen showed
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen


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
