"""Fixtures for CLI tests.

`alice`: (home, alice's words file): a signer home folder with walletkit's wpkh account of alice
registered as wallet "vault" on regtest; nothing else in it.

`regtest_home`: a coldsign home folder whose regtest chain (<home>/regtest) was initialized
like `coldsign regtest init` does (101 blocks to the chain's miner key, so 50 BTC of block 1's
coinbase is spendable in block 102). Built once per session, copied per test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _regtest_home_template(tmp_path_factory) -> Path:
    from coldsign.chain.regtest import RegtestChain

    home = tmp_path_factory.mktemp("cli-regtest-home") / "home"
    with RegtestChain.open(home / "regtest") as chain:
        assert all(r.accepted for r in chain.mine(101))
    return home


@pytest.fixture()
def regtest_home(_regtest_home_template, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(_regtest_home_template, home)
    return home


@pytest.fixture()
def alice(tmp_path) -> tuple[Path, Path]:
    import walletkit as W
    from typer.testing import CliRunner

    from coldsign.cli.main import app

    home = tmp_path / "alice"
    words = W.write_mnemonic(tmp_path, "alice")
    result = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register", "--name",
                                      "vault", "--descriptor", W.descriptor("wpkh"), "--mnemonic-file", str(words)])
    assert result.exit_code == 0, result.output
    return home, words
