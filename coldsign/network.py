"""Bitcoin networks. Always passed explicitly: the core has no default network."""

from __future__ import annotations

from enum import Enum


class Network(str, Enum):
    MAIN = "main"
    TEST = "test"
    SIGNET = "signet"
    REGTEST = "regtest"

    @property
    def embit(self) -> dict:
        """embit's parameter dict (address prefixes, xpub versions) for this network."""
        from embit.networks import NETWORKS

        return NETWORKS[{"main": "main", "test": "test", "signet": "signet",
                         "regtest": "regtest"}[self.value]]

    @property
    def bip32_coin_type(self) -> int:
        """The coin type of BIP-44/48/84/86 paths: 0 on main, 1 elsewhere."""
        return 0 if self is Network.MAIN else 1

    @classmethod
    def parse(cls, text: str) -> "Network":
        aliases = {"mainnet": "main", "bitcoin": "main", "testnet": "test", "testnet3": "test"}
        value = aliases.get(text.lower(), text.lower())
        try:
            return cls(value)
        except ValueError:
            from coldsign.errors import UsageProblem

            raise UsageProblem(f"unknown network {text!r}",
                               hint="use one of: main, test, signet, regtest") from None
