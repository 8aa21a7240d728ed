"""`--source` URLs: every documented form parses to what it says; malformed ones are usage errors
(exit 2) that never echo the password; `open_source` picks the right source and checks the network
of the embedded chain without contacting anything."""

from __future__ import annotations

import base64

import pytest

from coldsign.chain.bitcoind import BitcoindSource
from coldsign.chain.esplora import EsploraSource
from coldsign.chain.sources import SourceSpec, open_source, parse_source_url
from coldsign.errors import ExitStatus, UsageProblem
from coldsign.network import Network

VALID = [
    ("regtest", SourceSpec(kind="regtest")),
    ("bitcoind://rpc:hunter2@127.0.0.1:18443",
     SourceSpec(kind="bitcoind", host="127.0.0.1", port=18443, user="rpc", password="hunter2")),
    ("bitcoind://rpc:p%40ss%3Aw%2Frd@node.lan:8332/wallet/coldsign-watch",
     SourceSpec(kind="bitcoind", host="node.lan", port=8332, user="rpc", password="p@ss:w/rd",
                wallet="coldsign-watch")),
    ("bitcoind://127.0.0.1:18443?cookie=/home/me/.bitcoin/regtest/.cookie",
     SourceSpec(kind="bitcoind", host="127.0.0.1", port=18443, cookie_file="/home/me/.bitcoin/regtest/.cookie")),
    ("bitcoind://[::1]/wallet/my%20watch?cookie=/c&timeout=2.5&retries=0&birthday=1700000000",
     SourceSpec(kind="bitcoind", host="::1", port=None, wallet="my watch", cookie_file="/c", timeout=2.5,
                retries=0, birthday=1700000000)),
    ("esplora://127.0.0.1:3002", SourceSpec(kind="esplora", host="127.0.0.1", port=3002)),
    ("esploras://blockstream.info/testnet/api/",
     SourceSpec(kind="esplora", host="blockstream.info", tls=True, path="/testnet/api")),
    ("  ESPLORA://Example.ORG:80/api?timeout=30  ",
     SourceSpec(kind="esplora", host="example.org", port=80, path="/api", timeout=30.0)),
]


@pytest.mark.parametrize("url,spec", VALID, ids=[u.strip()[:40] for u, _ in VALID])
def test_documented_forms(url, spec):
    assert parse_source_url(url) == spec


INVALID = [
    ("electrum://host:50001", "unknown chain source kind 'electrum'"),
    ("127.0.0.1:8332", "'127.0.0.1:8332' is not a chain source URL"),
    ("bitcoind://:secret@:8332", "names no host"),
    ("bitcoind://rpc:secret@host:99999", "has a port that is not a number from 0 to 65535"),
    ("bitcoind://rpc:secret@host:0", "has port 0"),
    ("bitcoind://host:8332", "a bitcoind URL needs USER:PASS@, USER@…?password-file=PATH or ?cookie=PATH"),
    ("bitcoind://rpc@host:8332", "a bitcoind URL needs USER:PASS@, USER@…?password-file=PATH or ?cookie=PATH"),
    ("bitcoind://rpc:secret@host:8332?password-file=/p", "password-file= goes with USER@ and no password"),
    ("bitcoind://host:8332?password-file=/p", "password-file= goes with USER@ and no password"),
    ("bitcoind://rpc:secret@host:8332?cookie=/c", "give either USER:PASS@ or ?cookie=PATH, not both"),
    ("bitcoind://rpc:secret@host:8332/rest", "the only path a bitcoind URL takes is /wallet/NAME"),
    ("bitcoind://rpc:secret@host:8332/wallet/", "the only path a bitcoind URL takes is /wallet/NAME"),
    ("bitcoind://rpc:secret@host:8332?birthday=5", "birthday= only applies with /wallet/NAME"),
    ("bitcoind://rpc:secret@host:8332?timeout=0", "timeout='0' is not a number of seconds between 0 and 3600"),
    ("bitcoind://rpc:secret@host:8332?retries=many", "retries='many' is not a whole number from 0 to 10"),
    ("bitcoind://rpc:secret@host:8332?retries=1&retries=2", "option 'retries' is given twice"),
    ("bitcoind://rpc:secret@host:8332?proxy=tor", "unknown option 'proxy' in the source URL"),
    ("bitcoind://rpc:secret@host:8332#frag", "has a #fragment"),
    ("esplora://user:secret@host/api", "an Esplora URL carries no user name or password"),
    ("esplora://host?cookie=/c", "unknown option 'cookie' in the source URL"),
]


@pytest.mark.parametrize("url,message", INVALID, ids=[u for u, _ in INVALID])
def test_malformed_urls_are_usage_errors_without_the_password(url, message):
    with pytest.raises(UsageProblem) as caught:
        parse_source_url(url)
    assert message in caught.value.message
    assert caught.value.exit_status == ExitStatus.USAGE
    assert caught.value.code == "source-url"
    assert "secret" not in str(caught.value)


def test_the_password_is_never_in_the_repr_or_the_shown_url():
    spec = parse_source_url("bitcoind://rpc:hunter2@127.0.0.1:18443/wallet/w")
    assert "hunter2" not in repr(spec)
    assert spec.shown == "bitcoind://rpc:***@127.0.0.1:18443/wallet/w"
    assert parse_source_url("esploras://[2001:db8::1]:8443/api").shown == "esploras://[2001:db8::1]:8443/api"


def test_open_source_builds_each_kind_without_contacting_it(tmp_path):
    node = open_source("bitcoind://rpc:hunter2@127.0.0.1/wallet/w?timeout=3", Network.SIGNET, tmp_path)
    assert isinstance(node, BitcoindSource)
    assert node.description == "Bitcoin Core at 127.0.0.1:38332 (wallet 'w')"   # signet's default RPC port
    assert node._http.timeout == 3.0
    assert "hunter2" not in repr(node) and "hunter2" not in repr(node._http)
    esplora = open_source("esploras://blockstream.info/api", Network.MAIN, tmp_path, retries=0)
    assert isinstance(esplora, EsploraSource)
    assert esplora.description == "Esplora at https://blockstream.info/api"
    assert esplora._http.retries == 0


def test_the_rpc_password_can_come_from_a_file_and_stays_off_argv(tmp_path):
    secret = tmp_path / "rpc-password.txt"
    secret.write_text("hunter2\n")
    url = f"bitcoind://coldsign@127.0.0.1:18443?password-file={secret}"
    assert parse_source_url(url) == SourceSpec(kind="bitcoind", host="127.0.0.1", port=18443, user="coldsign",
                                               password_file=str(secret))
    node = open_source(url, Network.REGTEST, tmp_path)
    assert node._http._authorization == "Basic " + base64.b64encode(b"coldsign:hunter2").decode()
    assert "hunter2" not in repr(node)


def test_the_embedded_chain_serves_only_regtest(tmp_path):
    with pytest.raises(UsageProblem) as caught:
        open_source("regtest", Network.TEST, tmp_path)
    assert caught.value.message == "the embedded regtest chain cannot serve --network test"
