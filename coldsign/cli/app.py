"""The root Typer app, global options, and the one place errors become exit codes."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

import typer
from typer.core import TyperGroup

from coldsign.errors import ColdsignError, ExitStatus, UsageProblem
from coldsign.network import Network
from coldsign.store import default_home


@dataclass
class Settings:
    home: Path
    network: Network | None
    json: bool = False
    debug: bool = False

    def require_network(self, fallback: Network | None = None) -> Network:
        if self.network is not None:
            return self.network
        if fallback is not None:
            return fallback
        raise UsageProblem("no network given", hint="pass --network main|test|signet|regtest "
                           "(or set COLDSIGN_NETWORK); coldsign never assumes mainnet")


def _error_stream_json(settings: Settings | None, err: ColdsignError) -> None:
    if settings is not None and settings.json:
        print(json.dumps({"error": err.to_json()}, sort_keys=True))


class ColdsignGroup(TyperGroup):
    """Maps ColdsignError to its exit code; anything else is a bug (exit 70)."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ColdsignError as err:
            settings = ctx.find_object(Settings)
            _error_stream_json(settings, err)
            for line in str(err).splitlines():
                typer.echo(f"error: {line}" if not line.startswith(" ") else line, err=True)
            for item in err.details:
                where = f"input {item['index']}: " if item.get("index") is not None else ""
                where = f"output {item['output']}: " if item.get("output") is not None else where
                typer.echo(f"  - [{item.get('code')}] {where}{item.get('message')}", err=True)
            raise typer.Exit(int(err.exit_status)) from None
        except BrokenPipeError:  # e.g. `coldsign ... --help | head`: the reader left; not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the bug barrier
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                raise
            if type(exc).__module__.startswith(("click", "typer")):
                raise
            name = type(exc).__name__
            typer.echo(f"internal error ({name}): {exc}. This is a bug in coldsign; "
                       "run again with --debug for the traceback.", err=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None


app = typer.Typer(
    cls=ColdsignGroup,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # NOTE: locals may hold seeds; never print them
    add_completion=False,
    help="coldsign: air-gapped Bitcoin signing for institutional custody.\n\n"
         "Example: coldsign --network regtest psbt inspect withdrawal.psbt --wallet vault",
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[Path, typer.Option("--home", envvar="COLDSIGN_HOME", help="data folder "
                                       "(default: the user data folder)")] = None,  # type: ignore[assignment]
    network: Annotated[str, typer.Option("--network", envvar="COLDSIGN_NETWORK",
                                         help="main, test, signet or regtest")] = None,  # type: ignore[assignment]
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks of internal errors")] = False,
) -> None:
    ctx.obj = Settings(home=Path(home) if home else default_home(),
                       network=Network.parse(network) if network else None,
                       json=json_out, debug=debug)


JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def settings_of(ctx: typer.Context, json_flag: bool = False) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    if json_flag:
        settings.json = True
    return settings


def rich_console(*, stderr: bool = False, soft_wrap: bool = False):
    """A Rich console for a command's human output (Rich is imported only when one is made).

    NOTE: markup, highlighting and emoji codes off: names, memos, descriptors ("[fp/path]") and
    roles are shown as typed, never taken for style tags or ":emoji:". soft_wrap: long lines
    (hashes, descriptors) are never broken."""
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False, stderr=stderr, soft_wrap=soft_wrap)


def emit(settings: Settings, doc: dict[str, Any], render: Callable[[], None] | None = None) -> None:
    """Print the command's result: one JSON document with --json, else the human view."""
    if settings.json:
        sys.stdout.write(json.dumps(doc, sort_keys=False) + "\n")
    elif render is not None:
        render()
    else:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
