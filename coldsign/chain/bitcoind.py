"""Bitcoin Core over JSON-RPC as a chain source (`--source bitcoind://…`).

Two ways to learn what the wallet's scripts hold, chosen by the URL:

- **UTXO-set mode** (no `/wallet/NAME`): `scantxoutset start [raw(HEX)…]`. Needs nothing from the
  node but a synced chainstate (pruned nodes work), and finds every *confirmed* coin the scripts
  hold now. It cannot see history: a script that received coins which were all spent since looks
  exactly like a script never used, so gap-limit discovery may stop early after a wallet has
  emptied a run of addresses, and mempool coins are invisible. `ScriptActivity.used` is "holds a
  confirmed coin now" and `txids` are the transactions of those coins. One scan walks the whole
  UTXO set (about a minute on mainnet), hence the longer `scan_timeout`.
- **Watch-only wallet mode** (`/wallet/NAME`, a descriptor wallet created with private keys
  disabled, Bitcoin Core 23 or newer): the scripts are imported once with `importdescriptors`,
  then `listreceivedbyaddress` tells which were ever paid (history included) and `listunspent`
  the coins now, mempool included. It lives in `coldsign.chain.bitcoind_wallet`.

Everything else is the same in both modes: `getblockchaininfo` (tip, and the chain name: a node on
another network than --network is refused, exit 7, naming both), `getrawtransaction` (without
-txindex the node only finds mempool transactions; wallet mode falls back to `gettransaction`),
`getrawtransaction TXID true` then `getblockheader` for the height of the block holding a
transaction (`tx_height`; wallet mode falls back to `gettransaction` the same way; a node without
-txindex in UTXO-set mode knows only mempool transactions, so a confirmed one is "unknown": None),
`estimatesmartfee` (BTC/kvB → sat/vB), `testmempoolaccept`, `sendrawtransaction` (RPC errors
-26/-25/-22 are the network refusing the transaction: `Refused`, exit 4, with the node's reason;
-27 "already in the chain" returns the txid, so a repeated broadcast is harmless).

Requests are JSON-RPC 2.0; both answer styles are read: 2.0 (HTTP 200 for RPC errors, Bitcoin Core
28+) and the legacy one (HTTP 500/404 carrying the JSON error). Amounts are parsed as decimals,
never floats. The password or cookie is sent in the Authorization header only.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from coldsign.amounts import MAX_MONEY_SAT
from coldsign.chain.http import (DEFAULT_BACKOFF, DEFAULT_MAX_BYTES, DEFAULT_RETRIES,
                                 DEFAULT_TIMEOUT, HttpAnswer, HttpClient, expect, expect_count,
                                 expect_field, expect_hash, expect_hex, nonsense, own_txid,
                                 raw_transaction_txid, txid_argument)
from coldsign.chain.source import Acceptance, ScriptActivity, Tip, Unspent
from coldsign.errors import (BadInput, ColdsignError, EnvironmentProblem, NotFound, Refused,
                             UsageProblem)
from coldsign.network import Network

DEFAULT_SCAN_TIMEOUT = 600.0    # scantxoutset / importdescriptors with a rescan take minutes
COOKIE_MAX_BYTES = 4_096
MAX_FEE_TARGET = 1_008          # estimatesmartfee's longest target
CHAIN_NAMES = {"main": Network.MAIN, "test": Network.TEST, "testnet4": Network.TEST,
               "signet": Network.SIGNET, "regtest": Network.REGTEST}
# RPC error codes (Bitcoin Core src/rpc/protocol.h)
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_WALLET_NOT_FOUND = -18
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601
REFUSING_CODES = (RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED, RPC_DESERIALIZATION_ERROR)


class RpcError(Exception):
    """An error object in a JSON-RPC answer (internal: mapped to a ColdsignError by the caller)."""

    def __init__(self, code: int, message: str):
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message


class BitcoindSource:
    """A ChainSource over one Bitcoin Core node (see the module docstring for the two modes)."""

    # Neither mode lists the transactions that spent from a script (see the module docstring).
    lists_spends = False

    def __init__(self, host: str, port: int, *, network: Network, user: str | None = None,
                 password: str | None = None, cookie_file: str | Path | None = None,
                 wallet: str | None = None, birthday: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, scan_timeout: float = DEFAULT_SCAN_TIMEOUT,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        shown_host = f"[{host}]" if ":" in host else host
        self.description = f"Bitcoin Core at {shown_host}:{port}" + (
            f" (wallet {wallet!r})" if wallet is not None else "")
        self.network = network
        self.wallet = wallet
        self.birthday = birthday
        self.scan_timeout = max(scan_timeout, timeout)
        self._cookie_file = Path(cookie_file) if cookie_file is not None else None
        if self._cookie_file is not None:
            auth = self._read_cookie()
        elif user is not None and password is not None:
            auth = (user, password)
        else:
            raise UsageProblem("Bitcoin Core needs a user and password or a cookie file",
                               hint="bitcoind://USER:PASS@HOST:PORT or bitcoind://HOST:PORT?cookie=PATH")
        self._http = HttpClient(host, port, description=self.description, auth=auth,
                                timeout=timeout, retries=retries, backoff=backoff,
                                max_bytes=max_bytes, transient=_transient)
        self._ids = itertools.count(1)
        self._network_checked = False
        self._watch_only = None                        # the wallet mode, with /wallet/NAME
        if wallet is not None:
            # NOTE: imported here, not at the top: bitcoind_wallet imports this module's helpers.
            from coldsign.chain.bitcoind_wallet import WatchOnlyWallet

            self._watch_only = WatchOnlyWallet(self, birthday=birthday)

    def __repr__(self) -> str:
        return f"BitcoindSource({self.description!r})"

    # -- the ChainSource interface ---------------------------------------------------------------

    def tip(self) -> Tip:
        return self._blockchain_info()

    def scan(self, scripts: Sequence[bytes]) -> list[ScriptActivity]:
        scripts = [bytes(s) for s in scripts]
        self._check_network()
        if not scripts:
            return []
        if self._watch_only is None:
            return self._scan_utxo_set(scripts)
        return self._watch_only.scan(scripts)

    def transaction(self, txid: str) -> bytes:
        txid = txid_argument(txid)
        self._check_network()
        try:
            text = self._call("getrawtransaction", [txid])
            raw = expect_hex(self.description, text, "getrawtransaction")
        except RpcError as e:
            if e.code != RPC_INVALID_ADDRESS_OR_KEY:
                raise self._problem("getrawtransaction", e) from None
            raw = self._wallet_transaction(txid)
        if raw_transaction_txid(self.description, raw, f"transaction {txid}") != txid:
            raise nonsense(self.description, f"asked for transaction {txid}, got another one")
        return raw

    def tx_height(self, txid: str) -> int | None:
        txid = txid_argument(txid)
        self._check_network()
        what = "getrawtransaction"
        try:
            info = self._call("getrawtransaction", [txid, True])
        except RpcError as e:
            if e.code != RPC_INVALID_ADDRESS_OR_KEY:
                raise self._problem("getrawtransaction", e) from None
            what = "gettransaction"
            info = self._wallet_transaction_doc(txid)
            if info is None:
                return None
        expect(self.description, info, dict, what)
        if expect_hash(self.description, expect_field(self.description, info, "txid", str, what),
                       f"{what}.txid") != txid:
            raise nonsense(self.description, f"{what} answered about another transaction than {txid}")
        if "blockhash" not in info:
            return None                                 # in the mempool (or conflicted, wallet)
        block = expect_hash(self.description, info["blockhash"], f"{what}.blockhash")
        # NOTE: 0 with a block hash is a block no longer in the active chain (getrawtransaction);
        # negative is a conflicted wallet transaction (gettransaction). Neither is confirmed.
        if expect_field(self.description, info, "confirmations", int, what) < 1:
            return None
        return self._block_height(block)

    def _block_height(self, block: str) -> int | None:
        """The height of `block` when it is in the active chain (getblockheader: confirmations -1
        for a block off it, e.g. after a reorg between the two calls), else None."""
        header = self.rpc("getblockheader", [block, True])
        expect(self.description, header, dict, "getblockheader")
        if expect_hash(self.description, expect_field(self.description, header, "hash", str, "getblockheader"),
                       "getblockheader.hash") != block:
            raise nonsense(self.description, f"getblockheader answered about another block than {block}")
        height = expect_count(self.description, expect_field(self.description, header, "height", int,
                                                             "getblockheader"), "getblockheader.height")
        confirmations = expect_field(self.description, header, "confirmations", int, "getblockheader")
        if confirmations < 1:
            return None
        return height

    def fee_rate(self, target_blocks: int) -> float:
        if isinstance(target_blocks, bool) or not 1 <= target_blocks <= MAX_FEE_TARGET:
            raise UsageProblem(f"a confirmation target of {target_blocks} blocks is outside 1–{MAX_FEE_TARGET}")
        self._check_network()
        result = self.rpc("estimatesmartfee", [target_blocks])
        expect(self.description, result, dict, "estimatesmartfee")
        if "feerate" not in result:
            errors = result.get("errors") or ["no estimate"]
            if not isinstance(errors, list) or not all(isinstance(x, str) for x in errors):
                raise nonsense(self.description, "estimatesmartfee.errors is not a list of strings")
            raise EnvironmentProblem(
                f"{self.description} has no fee estimate for {target_blocks} blocks: "
                f"{'; '.join(errors)}", code="no-fee-estimate",
                hint="pass --fee-rate N (sat/vB) instead; a node needs some blocks with "
                     "transactions before it can estimate")
        per_kvb = _decimal(self.description, result["feerate"], "estimatesmartfee.feerate")
        # NOTE: bounded before any arithmetic: 1E+999999 would overflow the decimal context (a
        # crash), 1E+400 become an infinite float; no fee rate is above all the money there is.
        if not 0 < per_kvb <= MAX_MONEY_SAT // 100_000_000:
            raise nonsense(self.description, "estimatesmartfee.feerate is not a positive rate below "
                                             "21,000,000 BTC/kvB")
        return float(per_kvb * 100_000_000 / 1000)

    def test_accept(self, tx: bytes) -> Acceptance:
        txid = own_txid(tx)
        self._check_network()
        result = self.rpc("testmempoolaccept", [[bytes(tx).hex()]])
        expect(self.description, result, list, "testmempoolaccept")
        if len(result) != 1:
            raise nonsense(self.description, f"testmempoolaccept gave {len(result)} results for one transaction")
        entry = result[0]
        if expect_field(self.description, entry, "txid", str, "testmempoolaccept[0]") != txid:
            raise nonsense(self.description, "testmempoolaccept answered about another transaction")
        allowed = entry.get("allowed")
        if allowed is None:
            reason = entry.get("package-error", "not fully validated")
            return Acceptance(False, str(reason))
        expect(self.description, allowed, bool, "testmempoolaccept[0].allowed")
        if allowed:
            return Acceptance(True)
        reason = entry.get("reject-reason", "rejected (no reason given)")
        return Acceptance(False, expect(self.description, reason, str,
                                        "testmempoolaccept[0].reject-reason"))

    def broadcast(self, tx: bytes) -> str:
        txid = own_txid(tx)
        self._check_network()
        try:
            answer = self._call("sendrawtransaction", [bytes(tx).hex()])
        except RpcError as e:
            if e.code in REFUSING_CODES:
                raise Refused(f"{self.description} refused the transaction: {e.message}",
                              where=f"transaction {txid}", code="broadcast-refused",
                              details=[{"code": f"rpc{e.code}", "message": e.message}],
                              hint="nothing was sent; fix what the node names and try again") from None
            if e.code == RPC_VERIFY_ALREADY_IN_CHAIN:
                return txid
            raise self._problem("sendrawtransaction", e) from None
        if expect_hash(self.description, answer, "sendrawtransaction") != txid:
            raise nonsense(self.description, "sendrawtransaction returned another txid")
        return txid

    def close(self) -> None:
        """Nothing stays open: every request uses its own connection."""

    # -- modes -----------------------------------------------------------------------------------

    def _scan_utxo_set(self, scripts: list[bytes]) -> list[ScriptActivity]:
        wanted = list(dict.fromkeys(scripts))
        try:
            result = self._call("scantxoutset", ["start", [f"raw({s.hex()})" for s in wanted]],
                                timeout=self.scan_timeout, retry=False)
        except RpcError as e:
            if e.code == RPC_INVALID_PARAMETER and "in progress" in e.message.lower():
                raise EnvironmentProblem(f"{self.description} is busy with another UTXO set scan",
                                         code="source-busy",
                                         hint="wait for it to finish (bitcoin-cli scantxoutset status) "
                                              "and sync again") from None
            raise self._problem("scantxoutset", e) from None
        expect(self.description, result, dict, "scantxoutset")
        if expect_field(self.description, result, "success", bool, "scantxoutset") is not True:
            raise EnvironmentProblem(f"{self.description} did not finish the UTXO set scan",
                                     code="source-scan-aborted", hint="sync again")
        found: dict[bytes, list[Unspent]] = {s: [] for s in wanted}
        unspents = expect_field(self.description, result, "unspents", list, "scantxoutset")
        for i, item in enumerate(unspents):
            what = f"scantxoutset.unspents[{i}]"
            script = expect_hex(self.description, expect_field(self.description, item, "scriptPubKey", str, what),
                                f"{what}.scriptPubKey")
            if script not in found:
                raise nonsense(self.description, f"{what} is a script coldsign did not ask about")
            height = expect_count(self.description, expect_field(self.description, item, "height", int, what),
                                  f"{what}.height")
            found[script].append(rpc_coin(self.description, item, what, script, height))
        return [activity(s, found[s], ()) for s in scripts]

    def _wallet_transaction(self, txid: str) -> bytes:
        result = self._wallet_transaction_doc(txid)
        if result is None:
            raise NotFound(f"{self.description} does not know transaction {txid}",
                           hint="a node without -txindex finds only mempool transactions; start it "
                                "with -txindex=1 or use /wallet/NAME")
        text = expect_field(self.description, result, "hex", str, "gettransaction")
        return expect_hex(self.description, text, "gettransaction.hex")

    def _wallet_transaction_doc(self, txid: str) -> Any:
        """The watch-only wallet's `gettransaction` answer (works without -txindex); None without a
        wallet or when the wallet does not know the transaction."""
        if self.wallet is None:
            return None
        try:
            return self._call("gettransaction", [txid, True], wallet=True)
        except RpcError as e:
            if e.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise self._problem("gettransaction", e) from None

    # -- the node and its network ----------------------------------------------------------------

    def _blockchain_info(self) -> Tip:
        info = self.rpc("getblockchaininfo", [])
        chain = expect_field(self.description, info, "chain", str, "getblockchaininfo")
        height = expect_count(self.description, expect_field(self.description, info, "blocks", int,
                                                             "getblockchaininfo"), "getblockchaininfo.blocks")
        best = expect_hash(self.description, expect_field(self.description, info, "bestblockhash", str,
                                                          "getblockchaininfo"), "getblockchaininfo.bestblockhash")
        if CHAIN_NAMES.get(chain) is not self.network:
            raise EnvironmentProblem(
                f"{self.description} is on the {chain!r} chain, not --network {self.network.value}",
                code="source-wrong-network",
                hint="point --source at a node of the right network, or change --network")
        self._network_checked = True
        return Tip(height=height, block_hash=best)

    def _check_network(self) -> None:
        if not self._network_checked:
            self._blockchain_info()

    # -- JSON-RPC --------------------------------------------------------------------------------

    def _call(self, method: str, params: list | dict, *, wallet: bool = False,
              timeout: float | None = None, retry: bool = True) -> Any:
        """One JSON-RPC call; its result, or RpcError. Transport failures are EnvironmentProblem."""
        ident = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": ident, "method": method,
                           "params": params}).encode()
        path = f"/wallet/{quote(self.wallet, safe='')}" if wallet and self.wallet is not None else "/"
        answer = self._http.request("POST", path, body, timeout=timeout, retry=retry)
        if answer.status == 401 and self._cookie_file is not None:
            # NOTE: the node writes a new cookie when it restarts; read it once more.
            self._http.set_auth(self._read_cookie())
            answer = self._http.request("POST", path, body, timeout=timeout, retry=retry)
        if answer.status == 401:
            raise EnvironmentProblem(f"{self.description} refused the RPC credentials (HTTP 401)",
                                     code="source-auth",
                                     hint="check the user and password (rpcauth/rpcuser in "
                                          "bitcoin.conf) or the cookie file path")
        if answer.status == 403:
            raise EnvironmentProblem(f"{self.description} does not accept RPC from this machine (HTTP 403)",
                                     code="source-auth", hint="allow it with rpcallowip= in bitcoin.conf")
        doc = _json_or_none(answer)
        if doc is None:
            if answer.status != 200:
                raise EnvironmentProblem(f"{self.description} answered HTTP {answer.status} to {method}",
                                         code="source-http",
                                         hint="check that --source is a Bitcoin Core RPC port")
            raise nonsense(self.description, f"the answer to {method} is not JSON")
        expect(self.description, doc, dict, f"the answer to {method}")
        if doc.get("id") != ident:
            raise nonsense(self.description, f"the answer to {method} carries another request id")
        error = doc.get("error")
        if error is not None:
            code = expect_field(self.description, error, "code", int, f"{method} error")
            message = expect_field(self.description, error, "message", str, f"{method} error")
            raise RpcError(code, message)
        if answer.status != 200:
            raise EnvironmentProblem(f"{self.description} answered HTTP {answer.status} to {method}",
                                     code="source-http")
        if "result" not in doc:
            raise nonsense(self.description, f"the answer to {method} has no result")
        return doc["result"]

    def rpc(self, method: str, params: list | dict, *, wallet: bool = False,
            timeout: float | None = None, retry: bool = True) -> Any:
        """One JSON-RPC call whose RPC errors all mean "the node cannot help": EnvironmentProblem."""
        try:
            return self._call(method, params, wallet=wallet, timeout=timeout, retry=retry)
        except RpcError as e:
            raise self._problem(method, e) from None

    def _problem(self, method: str, e: RpcError) -> EnvironmentProblem:
        hints = {
            RPC_IN_WARMUP: "the node is starting up; try again in a minute",
            RPC_WALLET_NOT_FOUND: "create or load the watch-only wallet: bitcoin-cli createwallet NAME true "
                                  "true (or loadwallet NAME)",
            RPC_METHOD_NOT_FOUND: f"this node has no {method} (wallet disabled, or too old: "
                                  "coldsign needs Bitcoin Core 23 or newer)",
        }
        return EnvironmentProblem(f"{self.description} answered {method} with RPC error {e.code}: "
                                  f"{e.message}", code="source-rpc", hint=hints.get(e.code))

    def _read_cookie(self) -> tuple[str, str]:
        from coldsign.store import read_limited

        assert self._cookie_file is not None
        where = str(self._cookie_file)
        try:
            text = read_limited(self._cookie_file, COOKIE_MAX_BYTES, what="Bitcoin Core cookie file")
        except (BadInput, PermissionError) as e:
            message = e.message if isinstance(e, ColdsignError) else "cannot read the Bitcoin Core cookie file"
            raise EnvironmentProblem(message, where=where, code="source-cookie",
                                     hint="is the node running? the cookie is in its datadir "
                                          "(per network: testnet3/, signet/, regtest/)") from None
        try:
            user, _, password = text.decode("ascii").strip().partition(":")
        except UnicodeDecodeError:
            user, password = "", ""
        if not user or not password:
            raise EnvironmentProblem("this is not a Bitcoin Core cookie file (USER:PASSWORD)",
                                     where=where, code="source-cookie")
        return user, password


# -- helpers -------------------------------------------------------------------------------------

def _transient(answer: HttpAnswer) -> bool:
    """5xx is worth retrying unless it is a legacy-style RPC error (HTTP 500 carrying the JSON
    error object): asking again would get the same error."""
    if answer.status < 500:
        return False
    doc = _json_or_none(answer)
    return not (isinstance(doc, dict) and doc.get("error") is not None)


def _json_or_none(answer: HttpAnswer) -> Any:
    try:
        return json.loads(answer.body, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


def activity(script: bytes, coins: list[Unspent], received: tuple[str, ...]) -> ScriptActivity:
    """A script's activity from its coins and the transactions that paid it (either may be empty)."""
    txids = tuple(dict.fromkeys([*received, *(c.txid for c in coins)]))
    return ScriptActivity(script_pubkey=script, used=bool(txids), txids=txids, unspent=tuple(coins))


def _decimal(description: str, value: Any, what: str) -> Decimal:
    """A JSON number (parsed with parse_float=Decimal, so never rounded through a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise nonsense(description, f"{what} is not a number")
    return Decimal(value)


def rpc_coin(description: str, item: Any, what: str, script: bytes, height: int | None) -> Unspent:
    """A coin of `script` from an RPC answer entry with txid, vout and amount (scantxoutset
    unspents, listunspent); its height is worked out by the caller."""
    return Unspent(
        txid=expect_hash(description, expect_field(description, item, "txid", str, what), f"{what}.txid"),
        vout=expect_count(description, expect_field(description, item, "vout", int, what), f"{what}.vout"),
        amount_sat=_sats(description, expect_field(description, item, "amount", object, what), f"{what}.amount"),
        script_pubkey=script, height=height)


def _sats(description: str, value: Any, what: str) -> int:
    """A BTC amount as Bitcoin Core writes it (up to 8 decimals) in satoshis."""
    try:
        sats = _decimal(description, value, what) * 100_000_000
        exact = sats == sats.to_integral_value()
    except ArithmeticError:   # InvalidOperation, and Overflow for an exponent like 1E+999999
        exact = False
    if not exact or not 0 <= sats <= MAX_MONEY_SAT:
        raise nonsense(description, f"{what} is not an amount of bitcoin")
    return int(sats)

