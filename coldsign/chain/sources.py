"""`--source URL` → a ChainSource. `parse_source_url` is pure; `open_source` builds the source.

The URL forms (coldsign/chain/source.py), with the query options this module adds:

  bitcoind://USER@HOST[:PORT][/wallet/NAME]?password-file=PATH   the same, password read from a file
  bitcoind://USER:PASS@HOST[:PORT][/wallet/NAME]     Bitcoin Core JSON-RPC, user and password
  bitcoind://HOST[:PORT][/wallet/NAME]?cookie=PATH    Bitcoin Core JSON-RPC, cookie file
  esplora://HOST[:PORT][/PATH]   esploras://…  (HTTPS)  Esplora REST, e.g. esploras://blockstream.info/api
  regtest                                             the embedded regtest chain of the home folder

Query options (any form but regtest): `timeout=SECONDS` (default 10), `retries=N` (default 2).
Bitcoin Core only: `cookie=PATH`, `birthday=UNIX_TIME` (wallet mode: how far back the node
rescans when scripts are first imported; default 0, the whole chain). A missing bitcoind port is
the node's default RPC port for --network (8332, 18332, 38332, 18443). Characters such as `@`,
`:` or `/` in a user name or password are percent-encoded (`%40`, `%3A`, `%2F`).

A password in a URL reaches the process list: prefer the cookie file or `password-file=PATH`,
which keep it off argv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from coldsign.errors import UsageProblem
from coldsign.network import Network

BITCOIND_DEFAULT_PORTS = {Network.MAIN: 8332, Network.TEST: 18332, Network.SIGNET: 38332,
                          Network.REGTEST: 18443}
_FORMS = ("bitcoind://HOST:PORT?cookie=PATH, bitcoind://USER@HOST:PORT[/wallet/NAME]?password-file=PATH, "
          "esplora://HOST[:PORT][/PATH], esploras://HOST[:PORT][/PATH] or regtest")
_OPTIONS = {"bitcoind": {"cookie", "password-file", "timeout", "retries", "birthday"},
            "esplora": {"timeout", "retries"}}


@dataclass(frozen=True)
class SourceSpec:
    """What a --source URL says. `password` never appears in the repr."""

    kind: str                               # "bitcoind" | "esplora" | "regtest"
    host: str = ""
    port: int | None = None                 # None: the default for the kind (and network)
    tls: bool = False                       # esploras://
    path: str = ""                          # Esplora's base path, e.g. "/api"
    wallet: str | None = None               # Bitcoin Core: /wallet/NAME
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cookie_file: str | None = None
    password_file: str | None = None
    timeout: float | None = None
    retries: int | None = None
    birthday: int | None = None

    @property
    def shown(self) -> str:
        """The URL as it may appear in messages: never the password."""
        if self.kind == "regtest":
            return "regtest"
        scheme = {"bitcoind": "bitcoind", "esplora": "esploras" if self.tls else "esplora"}[self.kind]
        user = f"{self.user}:***@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        path = f"/wallet/{self.wallet}" if self.wallet is not None else self.path
        return f"{scheme}://{user}{_host_text(self.host)}{port}{path}"


def parse_source_url(url: str) -> SourceSpec:
    """Parse a --source URL (forms above); UsageProblem, never showing the password, if it is
    not one of them."""
    text = url.strip()
    if text == "regtest":
        return SourceSpec(kind="regtest")
    if "://" not in text:
        raise _bad(f"{_redact(text)!r} is not a chain source URL")
    scheme = text.split("://", 1)[0].lower()
    if scheme not in ("bitcoind", "esplora", "esploras"):
        raise _bad(f"unknown chain source kind {scheme!r}")
    kind = "bitcoind" if scheme == "bitcoind" else "esplora"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _bad(f"{_redact(text)!r} has a port that is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if not host:
        raise _bad(f"{_redact(text)!r} names no host")
    if port == 0:
        raise _bad(f"{_redact(text)!r} has port 0")
    if parts.fragment:
        raise _bad(f"{_redact(text)!r} has a #fragment; a chain source URL has none")
    options = _options(parts.query, kind, text)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if kind == "esplora":
        if user is not None:
            raise _bad("an Esplora URL carries no user name or password")
        path = parts.path.rstrip("/")
        return SourceSpec(kind="esplora", host=host, port=port, tls=scheme == "esploras", path=path,
                          timeout=options.get("timeout"), retries=options.get("retries"))
    wallet = _wallet_of(parts.path, text)
    cookie, password_file = options.get("cookie"), options.get("password-file")
    if cookie is not None and user is not None:
        raise _bad("give either USER:PASS@ or ?cookie=PATH, not both")
    if password_file is not None and (user is None or password is not None):
        raise _bad("password-file= goes with USER@ and no password in the URL",
                   hint="e.g. bitcoind://coldsign@127.0.0.1:8332?password-file=/media/rpc-password.txt")
    if cookie is None and (user is None or (password is None and password_file is None)):
        raise _bad("a bitcoind URL needs USER:PASS@, USER@…?password-file=PATH or ?cookie=PATH",
                   hint="e.g. bitcoind://127.0.0.1:8332?cookie=/home/me/.bitcoin/.cookie")
    if options.get("birthday") is not None and wallet is None:
        raise _bad("birthday= only applies with /wallet/NAME (the watch-only wallet mode)")
    return SourceSpec(kind="bitcoind", host=host, port=port, wallet=wallet, user=user,
                      password=password, cookie_file=cookie, password_file=password_file,
                      timeout=options.get("timeout"),
                      retries=options.get("retries"), birthday=options.get("birthday"))


def open_source(url: str, network: Network, home: Path | str, **overrides):
    """The ChainSource a --source URL names, for `network`. Nothing is contacted here: each
    source checks the network it reaches on its first question (exit 7 when it differs).
    `overrides` (timeout=, retries=, backoff=) win over the URL's options (tests, the CLI)."""
    spec = parse_source_url(url)
    if spec.kind == "regtest":
        if network is not Network.REGTEST:
            raise UsageProblem(f"the embedded regtest chain cannot serve --network {network.value}",
                               hint="pass --source bitcoind://… or esplora://… for this network")
        from coldsign.chain.regtest_source import RegtestSource

        return RegtestSource(Path(home))
    settings = {"timeout": spec.timeout, "retries": spec.retries}
    settings = {k: v for k, v in settings.items() if v is not None}
    settings.update(overrides)
    if spec.kind == "esplora":
        from coldsign.chain.esplora import EsploraSource

        return EsploraSource(spec.host, spec.port, network=network, tls=spec.tls,
                             base_path=spec.path, **settings)
    from coldsign.chain.bitcoind import BitcoindSource

    port = spec.port if spec.port is not None else BITCOIND_DEFAULT_PORTS[network]
    password = spec.password
    if spec.password_file is not None:
        from coldsign.keys.seed import read_secret_file

        password = read_secret_file(spec.password_file, what="RPC password file").reveal().strip()
    return BitcoindSource(spec.host, port, network=network, user=spec.user,
                          password=password, cookie_file=spec.cookie_file,
                          wallet=spec.wallet, birthday=spec.birthday or 0, **settings)


def _options(query: str, kind: str, text: str) -> dict:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad(f"{_redact(text)!r} has a malformed ?query") from None
    options: dict = {}
    for key, value in pairs:
        if key not in _OPTIONS[kind]:
            allowed = ", ".join(sorted(_OPTIONS[kind]))
            raise _bad(f"unknown option {key!r} in the source URL", hint=f"{kind} takes: {allowed}")
        if key in options:
            raise _bad(f"option {key!r} is given twice in the source URL")
        options[key] = _option_value(key, value)
    return options


def _option_value(key: str, value: str):
    if key in ("cookie", "password-file"):
        if not value:
            raise _bad(f"{key}= needs the path of a file")
        return value
    if key == "timeout":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 3600:
            raise _bad(f"timeout={value!r} is not a number of seconds between 0 and 3600")
        return seconds
    limit = {"retries": 10, "birthday": 2**32 - 1}[key]
    if not value.isdigit() or int(value) > limit:
        raise _bad(f"{key}={value!r} is not a whole number from 0 to {limit}")
    return int(value)


def _wallet_of(path: str, text: str) -> str | None:
    if path in ("", "/"):
        return None
    if not path.startswith("/wallet/") or len(path) == len("/wallet/"):
        raise _bad(f"{_redact(text)!r}: the only path a bitcoind URL takes is /wallet/NAME")
    return unquote(path[len("/wallet/"):])


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redact(text: str) -> str:
    """The URL without the password between '://USER:' and the last '@' of the authority."""
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    cut = len(rest)
    for sep in "/?#":
        at = rest.find(sep, rest.rfind("@") + 1 if "@" in rest else 0)
        if at != -1:
            cut = min(cut, at)
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, hostport = authority.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    return f"{scheme}://{authority}{tail}"


def _bad(message: str, hint: str | None = None) -> UsageProblem:
    return UsageProblem(message, code="source-url", hint=hint or f"use one of: {_FORMS}")
