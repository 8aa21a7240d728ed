"""Esplora's REST API as a chain source (`--source esplora://HOST[:PORT][/PATH]`, `esploras://` for
HTTPS), e.g. a self-hosted electrs/Esplora or `esploras://blockstream.info/api`.

What it asks (Esplora API.md): `GET /block-height/0` once (the genesis block hash: a server of
another network than --network is refused, exit 7, naming both), `/blocks/tip/height` and
`/blocks/tip/hash` (read height, hash, height again so the pair belongs together),
`/scripthash/:hash/txs` for a script's history (up to 50 mempool transactions and the newest 25
confirmed ones; older confirmed ones are paged with `/scripthash/:hash/txs/chain/:last_seen_txid`),
`/scripthash/:hash/utxo` for its coins now, `/tx/:txid/hex`, `/tx/:txid/status` (`confirmed`, and
`block_height` when it is; a 404 is a transaction the server does not know: no height either),
`/fee-estimates` (sat/vB keyed by confirmation target) and `POST /tx` (the hex as body; a 400
answer is the network's refusal and becomes `Refused`, exit 4, with the server's text). The script
hash is SHA-256 of the scriptPubKey, byte-reversed, as in Electrum's protocol.

Esplora has no mempool acceptance test: `test_accept` only checks the transaction parses and answers
`Acceptance(True, NOT_CHECKED)`; the real check is the broadcast itself.

Every answer is checked against the documented format (types, 64-hex ids, each history transaction
really touching the script asked about); anything else is "nonsense from Esplora at …" (exit 7).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from coldsign.chain.http import (DEFAULT_BACKOFF, DEFAULT_MAX_BYTES, DEFAULT_RETRIES,
                                 DEFAULT_TIMEOUT, HttpAnswer, HttpClient, expect, expect_count,
                                 expect_field, expect_hash, expect_hex, nonsense, own_txid,
                                 raw_transaction_txid, txid_argument)
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.errors import EnvironmentProblem, NotFound, Refused
from coldsign.network import Network

NOT_CHECKED = "not checked: Esplora has no mempool acceptance test"
CHAIN_PAGE = 25                   # confirmed transactions per history page (Esplora API.md)
MAX_HISTORY_PER_SCRIPT = 10_000   # 400 pages; a custody address with more is not this tool's case
GENESIS = {
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f": ("main", Network.MAIN),
    "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943": ("testnet3", Network.TEST),
    "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043": ("testnet4", Network.TEST),
    "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6": ("signet", Network.SIGNET),
    "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206": ("regtest", Network.REGTEST),
}


class EsploraSource:
    """A ChainSource over one Esplora server."""

    lists_spends = True     # a script's history includes the transactions spending from it

    def __init__(self, host: str, port: int | None = None, *, network: Network, tls: bool = False,
                 base_path: str = "", timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        default_port = 443 if tls else 80
        port = default_port if port is None else port
        shown_host = f"[{host}]" if ":" in host else host
        shown_port = "" if port == default_port else f":{port}"
        base_path = base_path.rstrip("/")
        self.description = f"Esplora at {'https' if tls else 'http'}://{shown_host}{shown_port}{base_path}"
        self.network = network
        self._http = HttpClient(host, port, description=self.description, tls=tls,
                                base_path=base_path, timeout=timeout, retries=retries,
                                backoff=backoff, max_bytes=max_bytes)
        self._network_checked = False

    def __repr__(self) -> str:
        return f"EsploraSource({self.description!r})"

    # -- the ChainSource interface ---------------------------------------------------------------

    def tip(self) -> Tip:
        self._check_network()
        for _ in range(3):
            height = self._height()
            block_hash = expect_hash(self.description, self._text("/blocks/tip/hash"), "/blocks/tip/hash")
            if self._height() == height:
                return Tip(height=height, block_hash=block_hash)
        raise EnvironmentProblem(f"{self.description} kept finding new blocks while asked for its tip",
                                 code="source-moving", hint="try again")

    def scan(self, scripts: Sequence[bytes]) -> list[ScriptActivity]:
        scripts = [bytes(s) for s in scripts]
        self._check_network()
        known: dict[bytes, ScriptActivity] = {}
        for script in scripts:
            if script not in known:
                known[script] = self._activity(script)
        return [known[s] for s in scripts]

    def transaction(self, txid: str) -> bytes:
        txid = txid_argument(txid)
        self._check_network()
        answer = self._get(f"/tx/{txid}/hex", missing_ok=True)
        if answer.status == 404:
            raise NotFound(f"{self.description} does not know transaction {txid}",
                           hint="check the txid and --network")
        raw = expect_hex(self.description, answer.text().strip(), f"/tx/{txid}/hex")
        if raw_transaction_txid(self.description, raw, f"/tx/{txid}/hex") != txid:
            raise nonsense(self.description, f"asked for transaction {txid}, got another one")
        return raw

    def tx_height(self, txid: str) -> int | None:
        txid = txid_argument(txid)
        self._check_network()
        path = f"/tx/{txid}/status"
        answer = self._get(path, missing_ok=True)
        if answer.status == 404:
            return None
        status = expect(self.description, self._parsed(answer, path), dict, path)
        if not expect_field(self.description, status, "confirmed", bool, path):
            return None
        height = expect_count(self.description, expect_field(self.description, status, "block_height", int, path),
                              f"{path}.block_height")
        if "block_hash" in status:
            expect_hash(self.description, status["block_hash"], f"{path}.block_hash")
        return height

    def fee_rate(self, target_blocks: int) -> float:
        if isinstance(target_blocks, bool) or target_blocks < 1:
            from coldsign.errors import UsageProblem

            raise UsageProblem(f"a confirmation target of {target_blocks} blocks is not at least 1")
        self._check_network()
        estimates = self._json("/fee-estimates")
        expect(self.description, estimates, dict, "/fee-estimates")
        rates: dict[int, float] = {}
        for key, value in estimates.items():
            if not (key.isascii() and key.isdigit()) or len(key) > 6 or int(key) < 1:
                raise nonsense(self.description, f"/fee-estimates has the key {key[:20]!r}, not a block count")
            rate = expect(self.description, value, (int, float), f"/fee-estimates[{key}]")
            if not rate > 0 or rate != rate or rate == float("inf"):
                raise nonsense(self.description, f"/fee-estimates[{key}] is not a positive fee rate")
            rates[int(key)] = float(rate)
        usable = [k for k in rates if k <= target_blocks]
        if not usable:
            raise EnvironmentProblem(f"{self.description} has no fee estimate for {target_blocks} blocks",
                                     code="no-fee-estimate", hint="pass --fee-rate N (sat/vB) instead")
        # The longest target not beyond the one asked for: never a lower rate than asked.
        return rates[max(usable)]

    def test_accept(self, tx: bytes) -> Acceptance:
        own_txid(tx)
        return Acceptance(True, NOT_CHECKED)

    def broadcast(self, tx: bytes) -> str:
        txid = own_txid(tx)
        self._check_network()
        answer = self._http.request("POST", "/tx", bytes(tx).hex().encode(), content_type="text/plain")
        if answer.status == 400:
            reason = answer.text().strip()[:1000] or "no reason given"
            raise Refused(f"{self.description} refused the transaction: {reason}",
                          where=f"transaction {txid}", code="broadcast-refused",
                          details=[{"code": "http400", "message": reason}],
                          hint="nothing was sent; fix what the server names and try again")
        if answer.status != 200:
            raise self._http_problem(answer, "POST /tx")
        if expect_hash(self.description, answer.text().strip(), "POST /tx") != txid:
            raise nonsense(self.description, "POST /tx returned another txid")
        return txid

    def close(self) -> None:
        """Nothing stays open: every request uses its own connection."""

    # -- scripts ---------------------------------------------------------------------------------

    def _activity(self, script: bytes) -> ScriptActivity:
        scripthash = hashlib.sha256(script).digest()[::-1].hex()
        txids = self._history(script, scripthash)
        coins = self._unspent(script, scripthash)
        txids = tuple(dict.fromkeys([*txids, *(c.txid for c in coins)]))
        return ScriptActivity(script_pubkey=script, used=bool(txids), txids=txids, unspent=tuple(coins))

    def _history(self, script: bytes, scripthash: str) -> list[str]:
        path = f"/scripthash/{scripthash}/txs"
        page = self._history_page(script, path)
        txids = [t for t, _ in page]
        confirmed = [t for t, ok in page if ok]
        while len(confirmed) >= CHAIN_PAGE:
            if len(txids) > MAX_HISTORY_PER_SCRIPT:
                raise EnvironmentProblem(
                    f"script {script.hex()} has more than {MAX_HISTORY_PER_SCRIPT} transactions at "
                    f"{self.description}", code="source-history-too-long",
                    hint="this script is not a custody address; check the wallet descriptor")
            last = confirmed[-1]
            page = self._history_page(script, f"{path}/chain/{last}")
            if any(not ok for _, ok in page):
                raise nonsense(self.description, f"{path}/chain lists an unconfirmed transaction")
            confirmed = [t for t, _ in page]
            if set(confirmed) & set(txids):
                raise nonsense(self.description, f"{path}/chain repeats transactions already listed")
            txids.extend(confirmed)
        return txids

    def _history_page(self, script: bytes, path: str) -> list[tuple[str, bool]]:
        txs = expect(self.description, self._json(path), list, path)
        page = []
        for i, tx in enumerate(txs):
            what = f"{path}[{i}]"
            txid = expect_hash(self.description, expect_field(self.description, tx, "txid", str, what),
                               f"{what}.txid")
            status = expect_field(self.description, tx, "status", dict, what)
            confirmed = expect_field(self.description, status, "confirmed", bool, f"{what}.status")
            if not self._touches(tx, script, what):
                raise nonsense(self.description, f"{what} ({txid}) neither pays nor spends the script asked about")
            page.append((txid, confirmed))
        return page

    def _touches(self, tx: dict, script: bytes, what: str) -> bool:
        target = script.hex()
        outputs = expect_field(self.description, tx, "vout", list, what)
        for j, out in enumerate(outputs):
            if expect_field(self.description, out, "scriptpubkey", str, f"{what}.vout[{j}]") == target:
                return True
        inputs = expect_field(self.description, tx, "vin", list, what)
        for j, vin in enumerate(inputs):
            prevout = vin.get("prevout") if isinstance(vin, dict) else None
            if isinstance(prevout, dict) and prevout.get("scriptpubkey") == target:
                return True
        return False

    def _unspent(self, script: bytes, scripthash: str) -> list[Unspent]:
        path = f"/scripthash/{scripthash}/utxo"
        items = expect(self.description, self._json(path), list, path)
        coins = []
        for i, item in enumerate(items):
            what = f"{path}[{i}]"
            status = expect_field(self.description, item, "status", dict, what)
            height = None
            if expect_field(self.description, status, "confirmed", bool, f"{what}.status"):
                height = expect_count(self.description, expect_field(
                    self.description, status, "block_height", int, f"{what}.status"), f"{what}.status.block_height")
            coins.append(Unspent(
                txid=expect_hash(self.description, expect_field(self.description, item, "txid", str, what),
                                 f"{what}.txid"),
                vout=expect_count(self.description, expect_field(self.description, item, "vout", int, what),
                                  f"{what}.vout"),
                amount_sat=expect_count(self.description, expect_field(self.description, item, "value", int, what),
                                        f"{what}.value"),
                script_pubkey=script, height=height))
        return coins

    # -- the server and its network --------------------------------------------------------------

    def _check_network(self) -> None:
        if self._network_checked:
            return
        genesis = expect_hash(self.description, self._text("/block-height/0"), "/block-height/0")
        name, network = GENESIS.get(genesis, ("a custom signet", Network.SIGNET))
        if network is not self.network:
            raise EnvironmentProblem(
                f"{self.description} serves {name}, not --network {self.network.value}",
                code="source-wrong-network",
                hint="point --source at a server of the right network, or change --network")
        self._network_checked = True

    def _height(self) -> int:
        text = self._text("/blocks/tip/height")
        if not text.isdigit() or len(text) > 10:
            raise nonsense(self.description, "/blocks/tip/height is not a block height")
        return int(text)

    def _get(self, path: str, *, missing_ok: bool = False) -> HttpAnswer:
        answer = self._http.request("GET", path)
        if answer.status == 200 or (missing_ok and answer.status == 404):
            return answer
        raise self._http_problem(answer, f"GET {path}")

    def _text(self, path: str) -> str:
        return self._get(path).text().strip()

    def _json(self, path: str) -> Any:
        return self._parsed(self._get(path), path)

    def _parsed(self, answer: HttpAnswer, path: str) -> Any:
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):
            raise nonsense(self.description, f"the answer to {path} is not JSON") from None

    def _http_problem(self, answer: HttpAnswer, what: str) -> EnvironmentProblem:
        text = " ".join(answer.text().split())[:200]
        return EnvironmentProblem(f"{self.description} answered HTTP {answer.status} to {what}"
                                  + (f": {text}" if text else ""), code="source-http",
                                  hint="check --source; a 4xx means the server refuses this question")
