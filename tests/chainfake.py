"""What the chain-source tests share: the scenario of tests/data/chain and a real local HTTP server.

The scenario (described in words in tests/data/chain/README.md): alice's single-key `wpkh` wallet
from walletkit, receive scripts A–D (0/0–0/3); tx1 confirmed at 148 pays A, tx2 confirmed at 150
spends A and pays B, tx3 in the mempool pays C; the tip is block 150. The answer files carry tx1's
and tx3's bytes; tx2 is rebuilt here exactly as the README describes.

`FakeServer` is a real HTTP server on 127.0.0.1 (a free port, its own thread) that hands every
GET and POST to the subclass's `serve`; the subclass plays Bitcoin Core's RPC port or an Esplora
API from a script of expected requests. `fakes_of` starts servers for one test and, after it,
closes them and fails the test if any of them saw a request it did not expect.

For the CLI, two servers answer in whatever order coldsign asks: `ScenarioEsplora` serves the
scenario to a `watch sync --source esplora://…`, `CoreNode` plays Bitcoin Core to a `watch
broadcast --source bitcoind://…` and records the order of the methods it was asked.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import walletkit as W

DATA = Path(__file__).parent / "data" / "chain"

WPKH = W.wallet("wpkh")
A, B, C, D = (WPKH.script_pubkey(0, i) for i in range(4))
TX1 = "b72e07cf700bec4b31d7260a8366047875ad12a0753f7304a5f9c53129982b4c"
TX2 = "d79f3f9c71d42d16db360e297b1e6e2ff835c31a841e4bc704e0b4b3d12b7699"
TX3 = "e489f9433a00693a6b9deb047c5f3a8106a9f48adacf2d00c14fde7713b9724b"
TIP_HASH = "8845b385b04660c5ea14a0f2fac2d26ef17fbc84dda0a9f931d2e1622cff4fde"


def load_answer(kind: str, name: str, *, parse_float: Callable[[str], Any] | None = None) -> dict:
    """tests/data/chain/KIND/NAME.json (kind "bitcoind" or "esplora")."""
    return json.loads((DATA / kind / f"{name}.json").read_text(), parse_float=parse_float)


def tx2_raw() -> bytes:
    """tx2's bytes: spends tx1:0 (A), pays 30,000,000 sat to B and 19,990,000 to EXT, locktime 148."""
    from embit.script import Script, Witness
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    vin = TransactionInput(bytes.fromhex(TX1), 0, sequence=0xfffffffd)
    vin.witness = Witness([bytes.fromhex("30440220" + "11" * 32 + "0220" + "22" * 32 + "01"),
                           bytes.fromhex("02" + "33" * 32)])
    tx = Transaction(vin=[vin], vout=[TransactionOutput(30_000_000, Script(B)),
                                      TransactionOutput(19_990_000, Script(W.EXTERNAL_SCRIPT))], locktime=148)
    assert tx.txid().hex() == TX2
    return tx.serialize()


class FakeServer:
    """A real HTTP server on 127.0.0.1 answering from `script`, a list of expected requests."""

    def __init__(self, script: list):
        self.script = list(script)
        self.failures: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):       # quiet
                pass

            def do_GET(self):
                fake.serve(self, b"")

            def do_POST(self):
                fake.serve(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass                                 # the client gave up (timeout tests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def fakes_of(make: Callable[..., FakeServer]) -> Iterator[Callable[..., FakeServer]]:
    """Yields a starter: `start(*script, **kw)` is a running `make(list(script), **kw)`."""
    started: list[FakeServer] = []

    def start(*script, **kw) -> FakeServer:
        started.append(make(list(script), **kw))
        return started[-1]

    yield start
    for fake in started:
        fake.close()
        assert fake.failures == []


def done(fake: FakeServer) -> None:
    """Every scripted request was made."""
    assert fake.script == [], f"requests never made: {fake.script}"


def tx3_raw() -> bytes:
    """tx3's bytes (in the mempool: spends tx2:1, pays 5,000,000 sat to C), from the wallet answer file."""
    return bytes.fromhex(load_answer("bitcoind", "gettransaction_tx3")["result"]["hex"])


class ScenarioEsplora(FakeServer):
    """An Esplora API serving the scenario by path, in any order, as a wallet sync asks it.

    A, B and C answer their files (txs_A/B/C, utxo_B/C): A used by tx1 and tx2, B's coin confirmed
    at 150, C's coin in the mempool (tx3). Every other script, D included, was never paid (an
    empty list). tx1–tx3 are served by txid, the tip is block 150 of the regtest genesis, the fee
    estimates are the answer file's. `requests` lists the paths asked, in order; a path outside
    the API is a failure.
    """

    def __init__(self, script: list):
        super().__init__(script)
        self.requests: list[str] = []
        self.files = {"/block-height/0": "block-height-0_regtest", "/blocks/tip/height": "tip_height",
                      "/blocks/tip/hash": "tip_hash", "/fee-estimates": "fee_estimates"}
        for script, name, coins in ((A, "A", "empty_list"), (B, "B", "utxo_B"), (C, "C", "utxo_C")):
            self.files[f"/scripthash/{_scripthash(script)}/txs"] = f"txs_{name}"
            self.files[f"/scripthash/{_scripthash(script)}/utxo"] = coins
        self.hexes = {TX1: load_answer("esplora", "tx1_hex")["body"], TX2: tx2_raw().hex(), TX3: tx3_raw().hex()}

    def serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        self.requests.append(f"{h.command} {h.path}")
        parts = h.path.split("/")
        if h.command == "GET" and h.path in self.files:
            doc = load_answer("esplora", self.files[h.path])
            content = doc["body"]
            text = content if isinstance(content, str) else json.dumps(content)
            return self.send(h, doc["status"], text.encode(), "text/plain" if isinstance(content, str)
                             else "application/json")
        if h.command == "GET" and len(parts) == 4 and parts[1] == "scripthash" and parts[3] in ("txs", "utxo"):
            return self.send(h, 200, b"[]")
        if h.command == "GET" and len(parts) == 4 and parts[1] == "tx" and parts[3] == "hex" \
                and parts[2] in self.hexes:
            return self.send(h, 200, self.hexes[parts[2]].encode(), "text/plain")
        self.failures.append(f"unexpected {h.command} {h.path}")
        self.send(h, 404, b"not in the scenario", "text/plain")


def _scripthash(script: bytes) -> str:
    """Esplora's script hash: SHA-256 of the scriptPubKey, byte-reversed."""
    import hashlib

    return hashlib.sha256(script).digest()[::-1].hex()


class CoreNode(FakeServer):
    """Bitcoin Core's RPC port as `watch broadcast` meets it, answering in any order and recording
    each JSON-RPC method in `calls` as it arrives.

    getblockchaininfo answers the scenario's regtest tip; testmempoolaccept the answer file
    `testmempoolaccept_allowed`, or `testmempoolaccept_rejected` ("min relay fee not met") when
    `rejects`; sendrawtransaction the txid. The txid in each answer is the one of the transaction
    sent, as a node computes it. Any other method is a failure (an RPC error -32601).
    """

    def __init__(self, script: list, *, rejects: bool = False):
        super().__init__(script)
        self.rejects = rejects
        self.calls: list[str] = []

    def serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        from embit.transaction import Transaction

        doc = json.loads(body)
        method, params = doc.get("method"), doc.get("params")
        self.calls.append(method)
        if method == "getblockchaininfo":
            reply = load_answer("bitcoind", "getblockchaininfo_regtest")
        elif method in ("testmempoolaccept", "sendrawtransaction"):
            raw = bytes.fromhex(params[0][0] if method == "testmempoolaccept" else params[0])
            txid = Transaction.parse(raw).txid().hex()
            if method == "sendrawtransaction":
                reply = {"result": txid}
            else:
                reply = load_answer("bitcoind", "testmempoolaccept_rejected" if self.rejects
                                    else "testmempoolaccept_allowed")
                reply["result"][0]["txid"] = txid
        else:
            self.failures.append(f"unexpected RPC {method}")
            reply = {"result": None, "error": {"code": -32601, "message": "Method not found"}}
        self.send(h, 200, json.dumps({"error": None, **reply, "id": doc.get("id")}).encode())
