"""The watch-only wallet mode of `BitcoindSource` (`bitcoind://…/wallet/NAME`).

The wallet is a Bitcoin Core descriptor wallet created with private keys disabled (Bitcoin Core 23
or newer). The scripts of a sync are imported once as `raw(HEX)` descriptors with
`importdescriptors` (the node rescans from `birthday`, a UNIX time; 0 = the whole chain); the
scripts the wallet already watches (`listdescriptors`) are not imported again. Then
`listreceivedbyaddress` gives every transaction that ever paid each script (so `used` is exact,
spent or not) and `listunspent` the coins now, mempool included (`height` None). The transactions
that *spent from* a script are not listed in `txids` (the wallet reports receives per address);
the coins that moved are visible as missing from `unspent`.

Transport, JSON-RPC and the mapping of RPC errors stay with the node (`BitcoindSource.rpc`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coldsign.chain.bitcoind import activity, rpc_coin
from coldsign.chain.http import expect, expect_count, expect_field, expect_hash, expect_hex, nonsense
from coldsign.chain.source import ScriptActivity, Unspent
from coldsign.errors import EnvironmentProblem
from coldsign.network import Network

if TYPE_CHECKING:
    from coldsign.chain.bitcoind import BitcoindSource

TIP_ATTEMPTS = 3        # a block arriving between listunspent and the tip would skew the heights


class WatchOnlyWallet:
    """What a node's watch-only wallet knows about the scripts of a sync."""

    def __init__(self, node: BitcoindSource, *, birthday: int):
        self.node = node
        self.birthday = birthday
        self._watched: set[bytes] | None = None     # raw() scripts the wallet already watches

    @property
    def description(self) -> str:
        return self.node.description

    def scan(self, scripts: list[bytes]) -> list[ScriptActivity]:
        self._import(list(dict.fromkeys(scripts)))
        received = self._received_by_script(scripts)
        for _ in range(TIP_ATTEMPTS):
            tip = self.node.tip()
            coins = self._unspent(set(scripts), tip.height)
            if self.node.tip().block_hash == tip.block_hash:
                break
        else:
            raise EnvironmentProblem(f"{self.description} kept finding new blocks during the sync",
                                     code="source-moving", hint="sync again")
        return [activity(s, coins.get(s, []), received.get(s, ())) for s in scripts]

    def _import(self, scripts: list[bytes]) -> None:
        from embit.descriptor.checksum import add_checksum

        if self._watched is None:
            self._watched = self._watched_scripts()
        new = [s for s in scripts if s not in self._watched]
        if not new:
            return
        requests = [{"desc": add_checksum(f"raw({s.hex()})"), "timestamp": self.birthday}
                    for s in new]
        results = self.node.rpc("importdescriptors", [requests], wallet=True,
                                timeout=self.node.scan_timeout, retry=False)
        expect(self.description, results, list, "importdescriptors")
        if len(results) != len(new):
            raise nonsense(self.description, "importdescriptors gave a result count unlike the request")
        for script, result in zip(new, results):
            if expect_field(self.description, result, "success", bool, "importdescriptors[]") is not True:
                error = result.get("error") if isinstance(result.get("error"), dict) else {}
                raise EnvironmentProblem(
                    f"{self.description} could not watch script {script.hex()}: "
                    f"{error.get('message', 'no reason given')}", code="source-import",
                    hint="the wallet must be a descriptor wallet with private keys disabled: "
                         "bitcoin-cli createwallet NAME true true")
            self._watched.add(script)

    def _watched_scripts(self) -> set[bytes]:
        result = self.node.rpc("listdescriptors", [], wallet=True)
        descriptors = expect_field(self.description, result, "descriptors", list, "listdescriptors")
        watched = set()
        for i, item in enumerate(descriptors):
            desc = expect_field(self.description, item, "desc", str, f"listdescriptors.descriptors[{i}]")
            if desc.startswith("raw(") and ")" in desc:
                try:
                    watched.add(bytes.fromhex(desc[4:desc.index(")")]))
                except ValueError:
                    raise nonsense(self.description, "listdescriptors has a raw() that is not hex") from None
        return watched

    def _received_by_script(self, scripts: list[bytes]) -> dict[bytes, tuple[str, ...]]:
        by_address = {}
        for script in scripts:
            address = _address_of(script, self.node.network)
            if address is not None:
                by_address[address] = script
        rows = self.node.rpc("listreceivedbyaddress",
                             {"minconf": 0, "include_empty": True, "include_watchonly": True,
                              "include_immature_coinbase": True}, wallet=True)
        expect(self.description, rows, list, "listreceivedbyaddress")
        received: dict[bytes, tuple[str, ...]] = {}
        for i, row in enumerate(rows):
            what = f"listreceivedbyaddress[{i}]"
            address = expect_field(self.description, row, "address", str, what)
            txids = expect_field(self.description, row, "txids", list, what)
            checked = tuple(expect_hash(self.description, t, f"{what}.txids[]") for t in txids)
            if address in by_address:
                received[by_address[address]] = checked
        return received

    def _unspent(self, scripts: set[bytes], tip_height: int) -> dict[bytes, list[Unspent]]:
        rows = self.node.rpc("listunspent", {"minconf": 0, "maxconf": 9_999_999, "include_unsafe": True},
                             wallet=True)
        expect(self.description, rows, list, "listunspent")
        coins: dict[bytes, list[Unspent]] = {}
        for i, row in enumerate(rows):
            what = f"listunspent[{i}]"
            script = expect_hex(self.description, expect_field(self.description, row, "scriptPubKey", str, what),
                                f"{what}.scriptPubKey")
            if script not in scripts:
                continue          # the node's wallet may watch more than this sync asks about
            confirmations = expect_count(self.description, expect_field(
                self.description, row, "confirmations", int, what), f"{what}.confirmations")
            if confirmations > tip_height + 1:
                raise nonsense(self.description, f"{what} has more confirmations than the chain has blocks")
            height = tip_height - confirmations + 1 if confirmations else None
            coins.setdefault(script, []).append(rpc_coin(self.description, row, what, script, height))
        return coins


def _address_of(script: bytes, network: Network) -> str | None:
    from embit.script import Script

    try:
        return Script(script).address(network.embit)
    except Exception:  # noqa: BLE001 - embit raises ValueError/KeyError for scripts without one
        return None
