"""The root command: global options, exit codes of ARCHITECTURE §5, `python -m coldsign`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "coldsign", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "psbt" in done.stdout and "regtest" in done.stdout and "wallet" in done.stdout


def test_unknown_option_is_a_usage_error():
    result = CliRunner().invoke(app, ["psbt", "inspect", "--no-such-option"])
    assert result.exit_code == 2


def test_unknown_network_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["--network", "moon", "wallet", "list"])
    assert result.exit_code == 2
    assert "unknown network" in result.output


@pytest.fixture()
def psbt_file(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "p.psbt"
    path.write_bytes(psbt.serialize())
    return path


def _crash(*_args, **_kwargs):
    mnemonic = W.mnemonic("alice")  # noqa: F841 - a local a traceback must not print
    raise RuntimeError("boom")


def test_a_bug_is_exit_70_with_a_short_message_and_no_locals(monkeypatch, psbt_file):
    from coldsign.psbt import review as review_module

    monkeypatch.setattr(review_module, "review", _crash)
    result = CliRunner().invoke(app, ["--network", "regtest", "psbt", "inspect", str(psbt_file)])
    assert result.exit_code == 70
    assert "internal error (RuntimeError): boom" in result.output
    assert "Traceback" not in result.output
    assert W.mnemonic("alice").split()[0] + " " + W.mnemonic("alice").split()[1] not in result.output


def test_debug_lets_the_traceback_through(monkeypatch, psbt_file):
    from coldsign.psbt import review as review_module

    monkeypatch.setattr(review_module, "review", _crash)
    result = CliRunner().invoke(app, ["--debug", "--network", "regtest", "psbt", "inspect", str(psbt_file)])
    assert isinstance(result.exception, RuntimeError)


def test_interrupt_is_exit_130(monkeypatch, psbt_file):
    from coldsign.psbt import review as review_module

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(review_module, "review", interrupted)
    result = CliRunner().invoke(app, ["--network", "regtest", "psbt", "inspect", str(psbt_file)])
    assert result.exit_code == 130


def test_home_and_network_come_from_the_environment(tmp_path):
    home = tmp_path / "envhome"
    words = W.write_mnemonic(tmp_path, "alice")
    env = {"COLDSIGN_HOME": str(home), "COLDSIGN_NETWORK": "regtest"}
    result = CliRunner().invoke(app, ["wallet", "register", "--name", "vault", "--descriptor",
                                      W.descriptor("wpkh"), "--mnemonic-file", str(words)], env=env)
    assert result.exit_code == 0, result.output
    assert (home / "wallets" / "vault.json").exists()


def _commands(command=None, path=()):
    """(path, click command) of every leaf command of the CLI."""
    import typer

    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, path + (name,))
    else:
        yield path, command


COMMANDS = list(_commands())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example_and_keeps_its_brackets(path, command):
    """`--help` exits 0, shows an example, and prints every "[...]" of the docstring and option help
    (Rich markup would silently eat "[fp/path]" unless escaped as "\\[")."""
    import re

    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.replace("│", " ").split())
    assert "Example: coldsign " in flat
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for bracketed in re.findall(r"(?<!\\)\[[^\]\s]+\]", text):
            assert bracketed in flat
