"""EsploraSource against a real HTTP server on 127.0.0.1 playing an Esplora REST API.

The server answers a script of expected requests, in order, with the files of
tests/data/chain/esplora (Esplora's API.md formats, see the README there), checking the method,
the path (under the URL's base path) and the body of POST /tx; a request that differs, or one more
than scripted, fails the test. Scenario: alice's wpkh receive scripts A–D, tx1–tx3 (README).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from chainfake import A, B, C, D, TIP_HASH, TX1, TX2, TX3, FakeServer, done, fakes_of, load_answer, tx2_raw
from coldsign.chain.esplora import NOT_CHECKED, EsploraSource
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.chain.sources import open_source
from coldsign.errors import (BadInput, EnvironmentProblem, ExitStatus, NotFound, Refused,
                             TransactionDecodeError)
from coldsign.network import Network


def scripthash(script: bytes) -> str:
    return hashlib.sha256(script).digest()[::-1].hex()


def reply(name: str) -> dict:
    return load_answer("esplora", name)


@dataclass
class Req:
    """One expected request: `answer` is a data file name or {"status", "body"}; body bytes are raw."""

    path: str
    answer: str | dict
    method: str = "GET"
    body: bytes | None = None
    delay: float = 0.0


GENESIS = Req("/block-height/0", "block-height-0_regtest")


class FakeEsplora(FakeServer):
    """An Esplora REST API under the base path `base`."""

    def __init__(self, script: list[Req], base: str = ""):
        super().__init__(script)
        self.base = base
        self.requests: list[str] = []

    def serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        self.requests.append(f"{h.command} {h.path}")
        if not self.script:
            self.failures.append(f"unscripted {h.command} {h.path}")
            return self.send(h, 599, b"", "text/plain")
        req = self.script.pop(0)
        if (h.command, h.path) != (req.method, self.base + req.path) or (req.body is not None and body != req.body):
            self.failures.append(f"{h.command} {h.path} instead of {req.method} {self.base + req.path}")
            return self.send(h, 599, b"", "text/plain")
        time.sleep(req.delay)
        doc = reply(req.answer) if isinstance(req.answer, str) else req.answer
        content = doc["body"]
        if isinstance(content, bytes):
            return self.send(h, doc["status"], content, "application/json")
        if isinstance(content, str):
            return self.send(h, doc["status"], content.encode(), "text/plain")
        self.send(h, doc["status"], json.dumps(content).encode(), "application/json")


@pytest.fixture()
def esplora():
    with fakes_of(FakeEsplora) as start:
        yield start


def source(fake: FakeEsplora, **kw) -> EsploraSource:
    settings = {"network": Network.REGTEST, "timeout": 2.0, "retries": 2, "backoff": 0.01, **kw}
    return EsploraSource("127.0.0.1", fake.port, **settings)


def scan_requests(script: bytes, txs: str, utxo: str) -> list[Req]:
    h = scripthash(script)
    return [Req(f"/scripthash/{h}/txs", txs), Req(f"/scripthash/{h}/utxo", utxo)]


# -- the interface -------------------------------------------------------------------------------

def test_tip_reads_height_hash_height(esplora):
    fake = esplora(GENESIS, Req("/blocks/tip/height", "tip_height"), Req("/blocks/tip/hash", "tip_hash"),
                   Req("/blocks/tip/height", "tip_height"))
    assert source(fake).tip() == Tip(150, TIP_HASH)
    done(fake)


def test_a_tip_that_moved_in_between_is_read_again(esplora):
    fake = esplora(GENESIS, Req("/blocks/tip/height", {"status": 200, "body": "149"}),
                   Req("/blocks/tip/hash", "tip_hash"), Req("/blocks/tip/height", "tip_height"),
                   Req("/blocks/tip/height", "tip_height"), Req("/blocks/tip/hash", "tip_hash"),
                   Req("/blocks/tip/height", "tip_height"))
    assert source(fake).tip() == Tip(150, TIP_HASH)
    done(fake)


def test_a_server_of_another_network_is_refused_naming_both(esplora):
    fake = esplora(Req("/block-height/0", "block-height-0_main"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([A])
    assert caught.value.message == f"Esplora at http://127.0.0.1:{fake.port} serves main, not --network regtest"
    assert caught.value.exit_status == ExitStatus.ENVIRONMENT
    done(fake)


def test_scan_sees_history_spent_coins_and_the_mempool(esplora):
    fake = esplora(GENESIS, *scan_requests(A, "txs_A", "empty_list"), *scan_requests(B, "txs_B", "utxo_B"),
                   *scan_requests(C, "txs_C", "utxo_C"), *scan_requests(D, "empty_list", "empty_list"))
    found = source(fake).scan([A, B, C, D, A])
    done(fake)
    assert found == [ScriptActivity(A, True, (TX2, TX1)),
                     ScriptActivity(B, True, (TX2,), (Unspent(TX2, 0, 30_000_000, B, 150),)),
                     ScriptActivity(C, True, (TX3,), (Unspent(TX3, 0, 5_000_000, C, None),)),
                     ScriptActivity(D, False),
                     ScriptActivity(A, True, (TX2, TX1))]


def test_history_beyond_25_confirmed_transactions_is_paged(esplora):
    h = scripthash(D)
    page1, page2 = reply("txs_D_page1")["body"], reply("txs_D_page2")["body"]
    fake = esplora(GENESIS, Req(f"/scripthash/{h}/txs", "txs_D_page1"),
                   Req(f"/scripthash/{h}/txs/chain/{page1[-1]['txid']}", "txs_D_page2"),
                   Req(f"/scripthash/{h}/utxo", "empty_list"))
    [activity] = source(fake).scan([D])
    done(fake)
    assert activity.txids == tuple(t["txid"] for t in page1 + page2)
    assert len(activity.txids) == 30 and activity.used


def test_a_history_transaction_not_touching_the_script_is_nonsense(esplora):
    fake = esplora(GENESIS, Req(f"/scripthash/{scripthash(D)}/txs", "txs_B"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([D])
    assert caught.value.message == (f"nonsense from Esplora at http://127.0.0.1:{fake.port}: /scripthash/"
                                    f"{scripthash(D)}/txs[0] ({TX2}) neither pays nor spends the script asked about")
    done(fake)


def test_transaction_by_txid_and_not_found(esplora):
    fake = esplora(GENESIS, Req(f"/tx/{TX1}/hex", "tx1_hex"), Req(f"/tx/{TX3}/hex", "tx_not_found"))
    chain = source(fake)
    assert chain.transaction(TX1) == bytes.fromhex(reply("tx1_hex")["body"])
    with pytest.raises(NotFound) as caught:
        chain.transaction(TX3)
    assert caught.value.message == f"Esplora at http://127.0.0.1:{fake.port} does not know transaction {TX3}"
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    done(fake)


def test_another_transaction_than_asked_is_nonsense(esplora):
    fake = esplora(GENESIS, Req(f"/tx/{TX2}/hex", "tx1_hex"))
    with pytest.raises(EnvironmentProblem, match=f"asked for transaction {TX2}, got another one"):
        source(fake).transaction(TX2)
    done(fake)



# -- tx_height: GET /tx/:txid/status -----------------------------------------------------------------

def test_tx_height_is_the_block_height_of_the_status(esplora):
    fake = esplora(GENESIS, Req(f"/tx/{TX2}/status", "tx_status_tx2"), Req(f"/tx/{TX3}/status", "tx_status_tx3"),
                   Req(f"/tx/{TX1}/status", "tx_not_found"))
    chain = source(fake)
    assert chain.tx_height(TX2.upper()) == 150
    assert chain.tx_height(TX3) is None             # in the mempool
    assert chain.tx_height(TX1) is None             # a 404: the server does not know it
    done(fake)


def test_tx_height_refuses_a_txid_that_is_not_one_before_asking(esplora):
    fake = esplora()
    with pytest.raises(BadInput) as caught:
        source(fake).tx_height(TX2[:-1] + "g")
    assert caught.value.message == f"{TX2[:-1] + 'g'!r} is not a transaction id (64 hex digits)"
    assert fake.requests == []


def test_tx_status_5xx_is_retried_and_4xx_is_an_environment_problem(esplora):
    fake = esplora(GENESIS, Req(f"/tx/{TX2}/status", {"status": 503, "body": ""}),
                   Req(f"/tx/{TX2}/status", "tx_status_tx2"),
                   Req(f"/tx/{TX3}/status", {"status": 400, "body": "Invalid hex string"}))
    chain = source(fake)
    assert chain.tx_height(TX2) == 150
    with pytest.raises(EnvironmentProblem) as caught:
        chain.tx_height(TX3)
    assert caught.value.message == (f"Esplora at http://127.0.0.1:{fake.port} answered HTTP 400 to GET "
                                    f"/tx/{TX3}/status: Invalid hex string")
    done(fake)


STATUS_NONSENSE = [
    (b'{"confirmed": tr', "the answer to /tx/{t}/status is not JSON"),
    ([True], "/tx/{t}/status is [True], not an object"),
    ({"block_height": 150}, "/tx/{t}/status has no 'confirmed'"),
    ({"confirmed": 1, "block_height": 150}, "/tx/{t}/status.confirmed is 1, not true/false"),
    ({"confirmed": True}, "/tx/{t}/status has no 'block_height'"),
    ({"confirmed": True, "block_height": None}, "/tx/{t}/status.block_height is None, not an integer"),
    ({"confirmed": True, "block_height": "150"}, "/tx/{t}/status.block_height is '150', not an integer"),
    ({"confirmed": True, "block_height": -1}, "/tx/{t}/status.block_height is negative"),
    ({"confirmed": True, "block_height": 150, "block_hash": "8845"}, "/tx/{t}/status.block_hash is not 64 hex digits"),
]


@pytest.mark.parametrize("body,what", STATUS_NONSENSE, ids=[w.split(" ", 1)[1][:40] for _, w in STATUS_NONSENSE])
def test_a_tx_status_not_in_the_documented_format_is_nonsense(esplora, body, what):
    fake = esplora(GENESIS, Req(f"/tx/{TX2}/status", {"status": 200, "body": body}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).tx_height(TX2)
    assert caught.value.message == f"nonsense from Esplora at http://127.0.0.1:{fake.port}: " + what.replace("{t}", TX2)
    assert caught.value.code == "source-nonsense"
    done(fake)


def test_a_tx_status_over_the_size_limit_is_refused(esplora):
    fake = esplora(GENESIS, Req(f"/tx/{TX2}/status", {"status": 200, "body": {"confirmed": False,
                                                                              "padding": "x" * 5000}}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, max_bytes=4096).tx_height(TX2)
    assert caught.value.message == (f"Esplora at http://127.0.0.1:{fake.port} sent an answer larger than "
                                    "the limit of 4096 bytes")
    done(fake)


@pytest.mark.parametrize("target,rate", [(1, 87.882), (6, 68.285), (7, 68.285), (200, 1.027), (2000, 1.027)])
def test_fee_rate_is_the_estimate_of_the_longest_target_not_beyond_the_one_asked(esplora, target, rate):
    fake = esplora(GENESIS, Req("/fee-estimates", "fee_estimates"))
    assert source(fake).fee_rate(target) == rate
    done(fake)


@pytest.mark.parametrize("key", ["9" * 5000, "\u0661"])
def test_a_fee_estimate_key_that_is_no_block_count_is_nonsense(esplora, key):
    """A 5,000-digit key made int() raise ValueError (exit 70) before; a non-ASCII digit passed."""
    fake = esplora(GENESIS, Req("/fee-estimates", {"status": 200, "body": json.dumps({key: 5.0}).encode()}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).fee_rate(6)
    assert caught.value.message == (f"nonsense from Esplora at http://127.0.0.1:{fake.port}: /fee-estimates has "
                                    f"the key {key[:20]!r}, not a block count")
    done(fake)


def test_no_fee_estimates_ask_for_a_fee_rate(esplora):
    fake = esplora(GENESIS, Req("/fee-estimates", "fee_estimates_empty"))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).fee_rate(6)
    assert caught.value.message == f"Esplora at http://127.0.0.1:{fake.port} has no fee estimate for 6 blocks"
    assert caught.value.hint == "pass --fee-rate N (sat/vB) instead"
    done(fake)


def test_there_is_no_mempool_acceptance_test_and_it_says_so(esplora):
    fake = esplora()
    chain = source(fake)
    assert chain.test_accept(tx2_raw()) == Acceptance(True, NOT_CHECKED)
    assert NOT_CHECKED == "not checked: Esplora has no mempool acceptance test"
    with pytest.raises(TransactionDecodeError):
        chain.test_accept(b"\x02\x00\x00")
    assert fake.requests == []


def test_broadcast_posts_the_hex_and_returns_the_txid(esplora):
    fake = esplora(GENESIS, Req("/tx", "post_tx_tx2", method="POST", body=tx2_raw().hex().encode()))
    assert source(fake).broadcast(tx2_raw()) == TX2
    done(fake)


def test_a_400_on_broadcast_is_refused_with_the_server_text(esplora):
    fake = esplora(GENESIS, Req("/tx", "post_tx_rejected", method="POST"))
    with pytest.raises(Refused) as caught:
        source(fake).broadcast(tx2_raw())
    assert caught.value.message == (f"Esplora at http://127.0.0.1:{fake.port} refused the transaction: "
                                    'sendrawtransaction RPC error: {"code":-26,"message":"min relay fee not met, 0 < 141"}')
    assert caught.value.exit_status == ExitStatus.REFUSED
    assert len(fake.requests) == 2                  # a 4xx is not retried
    done(fake)


def test_the_base_path_of_the_url_prefixes_every_request(esplora, tmp_path):
    fake = esplora(GENESIS, Req("/fee-estimates", "fee_estimates"), base="/regtest/api")
    chain = open_source(f"esplora://127.0.0.1:{fake.port}/regtest/api/", Network.REGTEST, tmp_path)
    assert chain.fee_rate(6) == 68.285
    assert chain.description == f"Esplora at http://127.0.0.1:{fake.port}/regtest/api"
    done(fake)


# -- transport and nonsense ------------------------------------------------------------------------

def test_5xx_is_retried_then_answers(esplora):
    fake = esplora(Req("/block-height/0", {"status": 502, "body": "bad gateway"}), GENESIS,
                   Req("/fee-estimates", {"status": 503, "body": ""}), Req("/fee-estimates", "fee_estimates"))
    assert source(fake).fee_rate(6) == 68.285
    assert len(fake.requests) == 4
    done(fake)


def test_an_unexpected_4xx_is_an_environment_problem_with_the_text(esplora):
    fake = esplora(GENESIS, Req(f"/scripthash/{scripthash(A)}/txs",
                                {"status": 400, "body": "Too many history entries"}))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([A])
    assert caught.value.message == (f"Esplora at http://127.0.0.1:{fake.port} answered HTTP 400 to GET "
                                    f"/scripthash/{scripthash(A)}/txs: Too many history entries")
    assert len(fake.requests) == 2
    done(fake)


def test_a_slow_server_hits_the_timeout(esplora):
    fake = esplora(Req("/block-height/0", "block-height-0_regtest", delay=1.0))
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake, timeout=0.2, retries=0).fee_rate(6)
    assert caught.value.message == f"Esplora at http://127.0.0.1:{fake.port} is unreachable: no answer within 0.2 s"


NONSENSE = [
    ("utxo", b'[{"txid": "d79f', "the answer to /scripthash/{h}/utxo is not JSON"),
    ("utxo", [{"txid": TX2, "vout": 0, "status": {"confirmed": True, "block_height": 150}, "value": "30000000"}],
     "/scripthash/{h}/utxo[0].value is '30000000', not an integer"),
    ("utxo", [{"txid": TX2, "vout": 0, "status": {"confirmed": True}, "value": 30000000}],
     "/scripthash/{h}/utxo[0].status has no 'block_height'"),
    ("utxo", {"txid": TX2}, "/scripthash/{h}/utxo is {'txid': 'd79f3f9c71d42d16db360e297b1e6e2ff835c31a841e4bc..., not a list"),
    ("txs", [{"txid": TX2, "status": {"confirmed": "yes"}}], "/scripthash/{h}/txs[0].status.confirmed is 'yes', not true/false"),
]


@pytest.mark.parametrize("which,body,what", NONSENSE, ids=[w.split(" ", 1)[1][:40] for _, _, w in NONSENSE])
def test_nonsense_answers_are_environment_problems(esplora, which, body, what):
    h = scripthash(B)
    script = [GENESIS, Req(f"/scripthash/{h}/txs", "txs_B" if which == "utxo" else {"status": 200, "body": body})]
    if which == "utxo":
        script.append(Req(f"/scripthash/{h}/utxo", {"status": 200, "body": body}))
    fake = esplora(*script)
    with pytest.raises(EnvironmentProblem) as caught:
        source(fake).scan([B])
    assert caught.value.message == f"nonsense from Esplora at http://127.0.0.1:{fake.port}: " + what.replace("{h}", h)
    assert caught.value.code == "source-nonsense"
    done(fake)
