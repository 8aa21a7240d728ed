"""What the chain-source tests share: the scenario of tests/data/chain and a real local HTTP server.

The scenario (described in words in tests/data/chain/README.md): alice's single-key `wpkh` wallet
from walletkit, receive scripts A–D (0/0–0/3); tx1 confirmed at 148 pays A, tx2 confirmed at 150
spends A and pays B, tx3 in the mempool pays C; the tip is block 150. The answer files carry tx1's
and tx3's bytes; tx2 is rebuilt here exactly as the README describes.

`FakeServer` is a real HTTP server on 127.0.0.1 (a free port, its own thread) that hands every
GET and POST to the subclass's `serve`; the subclass plays Bitcoin Core's RPC port or an Esplora
API from a script of expected requests. `fakes_of` starts servers for one test and, after it,
closes them and fails the test if any of them saw a request it did not expect.
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
