"""Shared test setup: `tests/walletkit.py` importable from every test folder; a private X display."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture()
def fast_kdf(monkeypatch):
    """New keystores use Argon2id's INTERACTIVE limits instead of the MODERATE default (tests only)."""
    from coldsign.keys import keystore

    monkeypatch.setattr(keystore, "DEFAULT_OPSLIMIT", keystore.OPSLIMIT_INTERACTIVE)
    monkeypatch.setattr(keystore, "DEFAULT_MEMLIMIT", keystore.MEMLIMIT_INTERACTIVE)


def _die_with_parent() -> None:
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG


@pytest.fixture()
def x_display():
    """Environment for a child process on a private Xvfb display. The opencv-python wheel's Qt has
    no offscreen plugin, and Qt ends the process holding a window when its X server goes away, so
    a window runs in a child process (`python -m coldsign`), as users run it."""
    xvfb = shutil.which("Xvfb")
    assert xvfb, "Xvfb is missing: run scripts/setup (it installs the xvfb package)"
    read_end, write_end = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten",
                               "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=_die_with_parent)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not report its display number"
        yield {**os.environ, "DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"}
    finally:
        server.terminate()
        server.wait(timeout=10)
