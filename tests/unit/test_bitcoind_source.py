"""BitcoindSource against a real HTTP server on 127.0.0.1 playing Bitcoin Core's RPC port.

The server answers a script of expected calls, in order, with the files of tests/data/chain/bitcoind
(Bitcoin Core's documented formats, see the README there). For every request it checks the HTTP
method, the path (/ or /wallet/NAME), the basic-auth header, the JSON-RPC method and its params;
a request that differs, or one more than scripted, fails the test. The scenario (alice's wpkh
receive scripts A–D, tx1–tx3 at heights 148/150/mempool) is described in that README.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

import walletkit as W
from chainfake import A, B, C, D, TIP_HASH, TX1, TX2, TX3, FakeServer, done, fakes_of, load_answer, tx2_raw
from coldsign.chain.bitcoind import BitcoindSource
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.chain.sources import open_source
from coldsign.errors import BadInput, EnvironmentProblem, ExitStatus, NotFound, Refused
from coldsign.network import Network

USER, PASSWORD = "coldsign", "correct-horse-battery"
WALLET = "coldsign-watch"
ANY = object()


def answer(name: str) -> dict:
    return load_answer("bitcoind", name, parse_float=Decimal)


def raw_tx(name: str) -> bytes:
    if name == "tx3":
        return bytes.fromhex(answer("gettransaction_tx3")["result"]["hex"])
    return bytes.fromhex(answer("getrawtransaction_tx1")["result"]) if name == "tx1" else tx2_raw()


def dumps(doc: dict) -> bytes:
    """JSON with Decimals written as the exact numbers they are (as Bitcoin Core writes amounts)."""
    text = json.dumps(doc, default=lambda d: f"<decimal:{d}>")
    return re.sub(r'"<decimal:([-0-9.E+]+)>"', r"\1", text).encode()


@dataclass
class Call:
    """One expected request and its answer: a data file name, a doc, or raw bytes."""

    method: str
    params: Any = ANY
    reply: str | dict | bytes = ""
    wallet: bool = False
    status: int = 200
    delay: float = 0.0


class FakeNode(FakeServer):
    """Bitcoin Core's RPC port: JSON-RPC POSTs to / or /wallet/WALLET with basic auth."""

    def __init__(self, script: list[Call]):
        super().__init__(script)
        self.requests: list[dict] = []

    def serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        if h.command != "POST":
            self.failures.append(f"{h.command} {h.path}")
            return h.send_error(405)
        doc = json.loads(body)
        self.requests.append({"path": h.path, "auth": h.headers.get("Authorization"), **doc})
        expected = f"Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}"
        if h.headers.get("Authorization") != expected:
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Basic realm="jsonrpc"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if not self.script:
            self.failures.append(f"unscripted call {doc.get('method')}")
            return self.send(h, 599, b"")
        call = self.script.pop(0)
        path = f"/wallet/{WALLET}" if call.wallet else "/"
        problems = [p for p in (
            h.path != path and f"path {h.path} != {path}",
            doc.get("method") != call.method and f"method {doc.get('method')} != {call.method}",
            call.params is not ANY and doc.get("params") != call.params and f"params {doc.get('params')}",
            doc.get("jsonrpc") != "2.0" and "not JSON-RPC 2.0") if p]
        if problems:
            self.failures.extend(problems)
            return self.send(h, 599, b"")
        time.sleep(call.delay)
        if isinstance(call.reply, bytes):
            return self.send(h, call.status, call.reply)
        reply = answer(call.reply) if isinstance(call.reply, str) else call.reply
        self.send(h, call.status, dumps({**reply, "id": doc["id"]}))


@pytest.fixture()
def node():
    with fakes_of(FakeNode) as start:
        yield start


def source(fake: FakeNode, **kw) -> BitcoindSource:
    settings = {"network": Network.REGTEST, "user": USER, "password": PASSWORD, "timeout": 2.0,
                "retries": 2, "backoff": 0.01, **kw}
    return BitcoindSource("127.0.0.1", fake.port, **settings)


INFO = Call("getblockchaininfo", [], "getblockchaininfo_regtest")


# -- the interface -------------------------------------------------------------------------------

def test_tip_is_the_best_block_of_the_node(node):
    fake = node(INFO)
    assert source(fake).tip() == Tip(height=150, block_hash=TIP_HASH)
    done(fake)
    assert fake.requests[0]["auth"].startswith("Basic ")


def test_a_node_on_another_network_is_refused_naming_both(node):
    fake = node(Call("getblockchaininfo", [], "getblockchaininfo_main"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([A])
    assert caught.value.message == "Bitcoin Core at 127.0.0.1:%d is on the 'main' chain, not --network regtest" % fake.port
    assert caught.value.exit_status == ExitStatus.ENVIRONMENT
    done(fake)


def test_utxo_set_mode_sees_confirmed_coins_only(node):
    """scantxoutset: B's coin; A (received, then spent) and C (coin in the mempool) look unused."""
    raws = [f"raw({s.hex()})" for s in (A, B, C, D)]
    fake = node(INFO, Call("scantxoutset", ["start", raws], "scantxoutset"))
    found = source(fake).scan([A, B, C, D, B])
    done(fake)
    coin_b = Unspent(TX2, 0, 30_000_000, B, 150)
    assert found == [ScriptActivity(A, False), ScriptActivity(B, True, (TX2,), (coin_b,)),
                     ScriptActivity(C, False), ScriptActivity(D, False),
                     ScriptActivity(B, True, (TX2,), (coin_b,))]


def test_watch_only_wallet_mode_imports_once_and_sees_history_and_mempool(node):
    imports = [[{"desc": d, "timestamp": 1_700_000_000} for d in (
        "raw(0014cf197861251f3532dcf814efbe77d501177d842e)#hg3wqwpa",
        "raw(0014c732aff9572ef86eac8039c234dfdfd28a220685)#zzvrgfd9",
        "raw(0014dccc91161760567b4ddae6af2a84095f35960053)#8hdumjt5",
        f"raw({D.hex()})#" + __import__("embit.descriptor.checksum", fromlist=["x"]).checksum(f"raw({D.hex()})"))]]
    received = {"minconf": 0, "include_empty": True, "include_watchonly": True, "include_immature_coinbase": True}
    unspent = {"minconf": 0, "maxconf": 9_999_999, "include_unsafe": True}
    fake = node(INFO,
                Call("listdescriptors", [], "listdescriptors_empty", wallet=True),
                Call("importdescriptors", imports, "importdescriptors_four", wallet=True),
                Call("listreceivedbyaddress", received, "listreceivedbyaddress", wallet=True),
                INFO, Call("listunspent", unspent, "listunspent", wallet=True), INFO,
                # the second sync imports nothing: the wallet already watches these scripts
                Call("listreceivedbyaddress", received, "listreceivedbyaddress", wallet=True),
                INFO, Call("listunspent", unspent, "listunspent", wallet=True), INFO)
    chain = source(fake, wallet=WALLET, birthday=1_700_000_000)
    expected = [ScriptActivity(A, True, (TX1,)),
                ScriptActivity(B, True, (TX2,), (Unspent(TX2, 0, 30_000_000, B, 150),)),
                ScriptActivity(C, True, (TX3,), (Unspent(TX3, 0, 5_000_000, C, None),)),
                ScriptActivity(D, False)]
    assert chain.scan([A, B, C, D]) == expected
    assert chain.scan([A, B, C, D]) == expected
    done(fake)


def test_wallet_mode_imports_only_the_scripts_it_does_not_watch_yet(node):
    from embit.descriptor.checksum import add_checksum

    fake = node(INFO, Call("listdescriptors", [], "listdescriptors_abc", wallet=True),
                Call("importdescriptors", [[{"desc": add_checksum(f"raw({D.hex()})"), "timestamp": 0}]],
                     "importdescriptors_one", wallet=True),
                Call("listreceivedbyaddress", ANY, "listreceivedbyaddress", wallet=True),
                INFO, Call("listunspent", ANY, "listunspent", wallet=True), INFO)
    assert [a.used for a in source(fake, wallet=WALLET).scan([A, D])] == [True, False]
    done(fake)


def test_a_wallet_with_private_keys_cannot_watch(node):
    fake = node(INFO, Call("listdescriptors", [], "listdescriptors_empty", wallet=True),
                Call("importdescriptors", ANY, "importdescriptors_private_keys", wallet=True))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, wallet=WALLET).scan([A, B, C, D])
    assert caught.value.message.endswith(f"could not watch script {A.hex()}: Cannot import descriptor "
                                         "without private keys to a wallet with private keys enabled")
    assert "createwallet NAME true true" in caught.value.hint
    done(fake)


def test_a_missing_wallet_says_how_to_create_it(node):
    fake = node(INFO, Call("listdescriptors", [], "error_wallet_not_found", wallet=True, status=500))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, wallet=WALLET).scan([A])
    assert caught.value.message.endswith("answered listdescriptors with RPC error -18: "
                                         "Requested wallet does not exist or is not loaded")
    assert "createwallet" in caught.value.hint
    assert len(fake.requests) == 2          # an RPC error in an HTTP 500 is not retried
    done(fake)


def test_transaction_by_txid(node):
    fake = node(INFO, Call("getrawtransaction", [TX1], "getrawtransaction_tx1"))
    assert source(fake).transaction(TX1.upper()) == raw_tx("tx1")
    done(fake)


def test_an_unknown_transaction_is_not_found(node):
    fake = node(INFO, Call("getrawtransaction", [TX3], "error_no_such_transaction", status=500))
    with pytest.raises(NotFound) as caught:
        source(fake).transaction(TX3)
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} does not know transaction {TX3}"
    assert "-txindex" in caught.value.hint
    done(fake)


def test_wallet_mode_finds_wallet_transactions_without_txindex(node):
    fake = node(INFO, Call("getrawtransaction", [TX3], "error_no_such_transaction"),
                Call("gettransaction", [TX3, True], "gettransaction_tx3", wallet=True),
                Call("getrawtransaction", [TX2], "error_no_such_transaction"),
                Call("gettransaction", [TX2, True], "error_invalid_wallet_transaction", wallet=True))
    chain = source(fake, wallet=WALLET)
    assert chain.transaction(TX3) == raw_tx("tx3")
    with pytest.raises(NotFound):
        chain.transaction(TX2)
    done(fake)


def test_a_transaction_other_than_the_one_asked_for_is_nonsense(node):
    fake = node(INFO, Call("getrawtransaction", [TX2], "getrawtransaction_tx1"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).transaction(TX2)
    assert caught.value.message == (f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port}: "
                                    f"asked for transaction {TX2}, got another one")
    done(fake)



# -- tx_height: the block a transaction is in ------------------------------------------------------

BLOCK_148 = "f46ad4af8ee9b14309dc6af7d7d9aac65c16b709d1c51aced874dc2099fa73ee"   # SHA-256 of "coldsign test block 148"


def test_tx_height_is_the_height_of_the_block_header_holding_it(node):
    fake = node(INFO, Call("getrawtransaction", [TX1, True], "getrawtransaction_tx1_verbose"),
                Call("getblockheader", [BLOCK_148, True], "getblockheader_148"))
    assert source(fake).tx_height(TX1.upper()) == 148
    done(fake)


def test_a_mempool_transaction_has_no_height_and_no_header_is_asked(node):
    fake = node(INFO, Call("getrawtransaction", [TX3, True], "getrawtransaction_tx3_verbose"))
    assert source(fake).tx_height(TX3) is None
    done(fake)


def test_utxo_set_mode_without_txindex_knows_no_height_of_a_confirmed_transaction(node):
    """No -txindex, no wallet: getrawtransaction finds only the mempool; unknown is None, not an error."""
    fake = node(INFO, Call("getrawtransaction", [TX2, True], "error_no_such_transaction", status=500))
    assert source(fake).tx_height(TX2) is None
    done(fake)


def test_wallet_mode_asks_the_watch_only_wallet_without_txindex(node):
    fake = node(INFO, Call("getrawtransaction", [TX2, True], "error_no_such_transaction"),
                Call("gettransaction", [TX2, True], "gettransaction_tx2", wallet=True),
                Call("getblockheader", [TIP_HASH, True], "getblockheader_150"),
                Call("getrawtransaction", [TX3, True], "error_no_such_transaction"),
                Call("gettransaction", [TX3, True], "gettransaction_tx3", wallet=True),
                Call("getrawtransaction", [TX1, True], "error_no_such_transaction"),
                Call("gettransaction", [TX1, True], "error_invalid_wallet_transaction", wallet=True))
    chain = source(fake, wallet=WALLET)
    assert chain.tx_height(TX2) == 150
    assert chain.tx_height(TX3) is None          # 0 confirmations, no block hash
    assert chain.tx_height(TX1) is None          # the wallet does not know it
    done(fake)


def test_a_block_that_left_the_active_chain_gives_no_height(node):
    """A reorg between the two calls: getblockheader says confirmations -1 (not in the main chain)."""
    fake = node(INFO, Call("getrawtransaction", [TX1, True], "getrawtransaction_tx1_verbose"),
                Call("getblockheader", [BLOCK_148, True], "getblockheader_148_stale"))
    assert source(fake).tx_height(TX1) is None
    done(fake)


@pytest.mark.parametrize("confirmations", [0, -2])
def test_a_transaction_not_in_the_active_chain_or_conflicted_gives_no_height(node, confirmations):
    """getrawtransaction: 0 with a block hash (a stale block); gettransaction: negative (conflicted)."""
    doc = answer("getrawtransaction_tx1_verbose")
    doc["result"]["confirmations"] = confirmations
    fake = node(INFO, Call("getrawtransaction", [TX1, True], doc))
    assert source(fake).tx_height(TX1) is None
    done(fake)


def test_tx_height_refuses_a_txid_that_is_not_one_before_asking(node):
    fake = node()
    with pytest.raises(BadInput) as caught:
        source(fake).tx_height("b72e07cf")
    assert caught.value.message == "'b72e07cf' is not a transaction id (64 hex digits)"
    assert fake.requests == []


def test_an_unknown_block_header_is_an_environment_problem(node):
    fake = node(INFO, Call("getrawtransaction", [TX1, True], "getrawtransaction_tx1_verbose"),
                Call("getblockheader", [BLOCK_148, True], "error_no_such_block", status=500))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).tx_height(TX1)
    assert caught.value.message == (f"Bitcoin Core at 127.0.0.1:{fake.port} answered getblockheader with RPC "
                                    "error -5: Block not found")
    done(fake)


def _set(doc: dict, field: str, value: Any) -> dict:
    if value is ANY:
        del doc["result"][field]
    else:
        doc["result"][field] = value
    return doc


TX_NONSENSE = [
    ("getrawtransaction_tx1_verbose", "txid", TX2, f"getrawtransaction answered about another transaction than {TX1}"),
    ("getrawtransaction_tx1_verbose", "txid", ANY, "getrawtransaction has no 'txid'"),
    ("getrawtransaction_tx1_verbose", "blockhash", "f46a", "getrawtransaction.blockhash is not 64 hex digits"),
    ("getrawtransaction_tx1_verbose", "confirmations", ANY, "getrawtransaction has no 'confirmations'"),
    ("getrawtransaction_tx1_verbose", "confirmations", "3", "getrawtransaction.confirmations is '3', not an integer"),
    ("getrawtransaction_tx1_verbose", "confirmations", True, "getrawtransaction.confirmations is True, not an integer"),
    ("getblockheader_148", "hash", TIP_HASH, f"getblockheader answered about another block than {BLOCK_148}"),
    ("getblockheader_148", "height", -148, "getblockheader.height is negative"),
    ("getblockheader_148", "height", Decimal("148.5"), "getblockheader.height is Decimal('148.5'), not an integer"),
    ("getblockheader_148", "confirmations", ANY, "getblockheader has no 'confirmations'"),
]


@pytest.mark.parametrize("name,field,value,what", TX_NONSENSE, ids=[w for *_, w in TX_NONSENSE])
def test_nonsense_about_a_transaction_or_its_block_is_an_environment_problem(node, name, field, value, what):
    tx_doc, header = answer("getrawtransaction_tx1_verbose"), answer("getblockheader_148")
    if name == "getblockheader_148":
        header = _set(header, field, value)
    else:
        tx_doc = _set(tx_doc, field, value)
    calls = [INFO, Call("getrawtransaction", [TX1, True], tx_doc)]
    if name == "getblockheader_148":
        calls.append(Call("getblockheader", [BLOCK_148, True], header))
    fake = node(*calls)
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).tx_height(TX1)
    assert caught.value.message == f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port}: {what}"
    assert caught.value.code == "source-nonsense"
    done(fake)


def test_a_wallet_answer_about_another_transaction_is_nonsense(node):
    fake = node(INFO, Call("getrawtransaction", [TX3, True], "error_no_such_transaction"),
                Call("gettransaction", [TX3, True], "gettransaction_tx2", wallet=True))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, wallet=WALLET).tx_height(TX3)
    assert caught.value.message == (f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port} (wallet '{WALLET}'): "
                                    f"gettransaction answered about another transaction than {TX3}")
    done(fake)


def test_fee_rate_converts_btc_per_kvb_to_sat_per_vb(node):
    fake = node(INFO, Call("estimatesmartfee", [6], "estimatesmartfee_6"))
    assert source(fake).fee_rate(6) == pytest.approx(12.345)        # 0.00012345 BTC/kvB
    done(fake)


@pytest.mark.parametrize("rate", [Decimal("1E+999999"), Decimal("1E+400"), Decimal("21000000.1"), Decimal("0")])
def test_a_fee_estimate_beyond_all_money_is_nonsense(node, rate):
    """1E+999999 overflowed the decimal context (exit 70) and 1E+400 became an infinite fee rate
    (then "fee rate must be a number", exit 3) before."""
    fake = node(INFO, Call("estimatesmartfee", [6], {"result": {"feerate": rate, "blocks": 6}}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).fee_rate(6)
    assert caught.value.message == (f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port}: estimatesmartfee.feerate "
                                    "is not a positive rate below 21,000,000 BTC/kvB")
    done(fake)


def test_no_fee_estimate_asks_for_a_fee_rate(node):
    fake = node(INFO, Call("estimatesmartfee", [2], "estimatesmartfee_none"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).fee_rate(2)
    assert caught.value.message.endswith("has no fee estimate for 2 blocks: Insufficient data or no feerate found")
    assert caught.value.hint.startswith("pass --fee-rate N (sat/vB) instead")
    done(fake)


def test_mempool_acceptance(node):
    fake = node(INFO, Call("testmempoolaccept", [[raw_tx("tx2").hex()]], "testmempoolaccept_allowed"),
                Call("testmempoolaccept", [[raw_tx("tx2").hex()]], "testmempoolaccept_rejected"))
    chain = source(fake)
    assert chain.test_accept(raw_tx("tx2")) == Acceptance(True)
    assert chain.test_accept(raw_tx("tx2")) == Acceptance(False, "min relay fee not met")
    done(fake)


def test_broadcast_returns_the_txid(node):
    fake = node(INFO, Call("sendrawtransaction", [raw_tx("tx2").hex()], "sendrawtransaction_tx2"))
    assert source(fake).broadcast(raw_tx("tx2")) == TX2
    done(fake)


@pytest.mark.parametrize("reply,status,reason", [
    ("error_rejected_fee", 200, "min relay fee not met, 0 < 141"),               # JSON-RPC 2.0 style
    ("error_rejected_fee", 500, "min relay fee not met, 0 < 141"),               # legacy style
    ("error_missing_inputs", 500, "bad-txns-inputs-missingorspent"),
])
def test_a_rejected_broadcast_is_refused_with_the_node_reason(node, reply, status, reason):
    fake = node(INFO, Call("sendrawtransaction", ANY, reply, status=status))
    with pytest.raises(Refused) as caught:
        source(fake).broadcast(raw_tx("tx2"))
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} refused the transaction: {reason}"
    assert caught.value.exit_status == ExitStatus.REFUSED
    assert caught.value.where == f"transaction {TX2}"
    assert len(fake.requests) == 2
    done(fake)


def test_a_transaction_already_in_the_chain_counts_as_broadcast(node):
    fake = node(INFO, Call("sendrawtransaction", ANY, "error_already_in_chain", status=500))
    assert source(fake).broadcast(raw_tx("tx2")) == TX2
    done(fake)


def test_other_rpc_errors_are_environment_problems_with_code_and_message(node):
    fake = node(Call("getblockchaininfo", [], "error_warmup", status=500))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).tip()
    assert caught.value.message.endswith("answered getblockchaininfo with RPC error -28: Loading block index…")
    assert caught.value.hint == "the node is starting up; try again in a minute"
    done(fake)


def test_a_scan_already_running_says_so(node):
    fake = node(INFO, Call("scantxoutset", ANY, "error_scan_in_progress", status=500))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([A])
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} is busy with another UTXO set scan"
    done(fake)


# -- transport: retries, timeouts, credentials, limits --------------------------------------------

def test_a_5xx_without_an_rpc_error_is_retried(node):
    fake = node(Call("getblockchaininfo", [], b"", status=503), Call("getblockchaininfo", [], b"oops", status=500),
                INFO)
    assert source(fake).tip().height == 150
    assert len(fake.requests) == 3
    done(fake)


def test_retries_are_bounded(node):
    fake = node(*[Call("getblockchaininfo", [], b"", status=500)] * 3)
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, retries=2).tip()
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} answered HTTP 500 to getblockchaininfo"
    assert len(fake.requests) == 3
    done(fake)


def test_an_unreachable_port_is_exit_7_without_the_password():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chain = BitcoindSource("127.0.0.1", port, network=Network.REGTEST, user=USER, password=PASSWORD,
                           retries=1, backoff=0.01)
    with pytest.raises(EnvironmentProblem) as caught:
        chain.tip()
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{port} is unreachable: connection refused (tried 2 times)"
    assert caught.value.exit_status == ExitStatus.ENVIRONMENT
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(chain)


def test_a_wrong_password_is_not_retried_and_not_echoed(node):
    fake = node()
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, password="wrong-password").tip()
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} refused the RPC credentials (HTTP 401)"
    assert "wrong-password" not in str(caught.value) and "wrong-password" not in repr(caught.value.to_json())
    assert len(fake.requests) == 1


def test_a_slow_node_hits_the_timeout(node):
    fake = node(Call("getblockchaininfo", [], "getblockchaininfo_regtest", delay=1.0))
    started = time.monotonic()
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, timeout=0.2, retries=0).tip()
    assert caught.value.message == f"Bitcoin Core at 127.0.0.1:{fake.port} is unreachable: no answer within 0.2 s"
    assert time.monotonic() - started < 0.9
    fake.script.clear()


def test_an_answer_over_the_size_limit_is_refused(node):
    fake = node(Call("getblockchaininfo", [], {"result": {"chain": "regtest", "padding": "x" * 5000}}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, max_bytes=4096).tip()
    assert caught.value.message == (f"Bitcoin Core at 127.0.0.1:{fake.port} sent an answer larger than "
                                    "the limit of 4096 bytes")
    done(fake)


def test_the_cookie_file_is_read_and_read_again_after_a_node_restart(node, tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:stale-from-before-the-restart")
    fake = node(INFO)
    chain = open_source(f"bitcoind://127.0.0.1:{fake.port}?cookie={cookie}&retries=0", Network.REGTEST, tmp_path)
    cookie.write_text(f"{USER}:{PASSWORD}")           # the node restarted and wrote a new cookie
    assert chain.tip().height == 150
    assert [r["auth"] == f"Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}"
            for r in fake.requests] == [False, True]
    done(fake)


def test_a_missing_cookie_file_is_an_environment_problem(tmp_path):
    with pytest.raises(EnvironmentProblem) as caught:
        open_source("bitcoind://127.0.0.1:18443?cookie=" + str(tmp_path / "nope"), Network.REGTEST, tmp_path)
    assert caught.value.message == "Bitcoin Core cookie file not found"
    assert caught.value.where == str(tmp_path / "nope")
    assert caught.value.exit_status == ExitStatus.ENVIRONMENT


# -- answers that are not the documented format ----------------------------------------------------

NONSENSE = [
    (b'{"result": {"chain": "regtest", "blocks": 15', "the answer to getblockchaininfo is not JSON"),
    ({"result": {"chain": "regtest", "blocks": "150", "bestblockhash": TIP_HASH}},
     "getblockchaininfo.blocks is '150', not an integer"),
    ({"result": {"chain": "regtest", "blocks": True, "bestblockhash": TIP_HASH}},
     "getblockchaininfo.blocks is True, not an integer"),
    ({"result": {"chain": "regtest", "blocks": 150, "bestblockhash": "00ff"}},
     "getblockchaininfo.bestblockhash is not 64 hex digits"),
    ({"result": {"chain": "regtest", "blocks": 150}}, "getblockchaininfo has no 'bestblockhash'"),
    ({"result": [1, 2]}, "getblockchaininfo is not a JSON object"),
    ({"error": {"code": "-5", "message": "x"}}, "getblockchaininfo error.code is '-5', not an integer"),
    ({"id_missing": True}, "the answer to getblockchaininfo carries another request id"),
]


@pytest.mark.parametrize("reply,what", NONSENSE, ids=[w for _, w in NONSENSE])
def test_nonsense_answers_are_environment_problems(node, reply, what):
    if isinstance(reply, dict) and "id_missing" in reply:
        reply = json.dumps({"result": None, "id": 999}).encode()
    fake = node(Call("getblockchaininfo", [], reply))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).tip()
    assert caught.value.message == f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port}: {what}"
    assert caught.value.code == "source-nonsense"
    done(fake)


@pytest.mark.parametrize("field,value,what", [
    ("amount", Decimal("0.300000001"), "scantxoutset.unspents[0].amount is not an amount of bitcoin"),
    ("amount", Decimal("-1"), "scantxoutset.unspents[0].amount is not an amount of bitcoin"),
    ("amount", "0.3", "scantxoutset.unspents[0].amount is not a number"),
    # decimal.Overflow (exit 70) before: not an InvalidOperation
    ("amount", Decimal("1E+999999"), "scantxoutset.unspents[0].amount is not an amount of bitcoin"),
    ("scriptPubKey", W.EXTERNAL_SCRIPT.hex(), "scantxoutset.unspents[0] is a script coldsign did not ask about"),
    ("vout", -1, "scantxoutset.unspents[0].vout is negative"),
    ("txid", "zz" * 32, "scantxoutset.unspents[0].txid is not 64 hex digits"),
])
def test_a_malformed_coin_is_nonsense(node, field, value, what):
    doc = answer("scantxoutset")
    doc["result"]["unspents"][0][field] = value
    fake = node(INFO, Call("scantxoutset", ANY, doc))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([A, B])
    assert caught.value.message == f"nonsense from Bitcoin Core at 127.0.0.1:{fake.port}: {what}"
    done(fake)
