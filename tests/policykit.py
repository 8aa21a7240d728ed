"""The policy and signing-request fixtures the policy tests share, in words.

Identity keys: the walletkit cosigners' (alice, bob, carol), SLIP-10 index 0. `treasury_policy`:
policy "treasury" v1 on regtest, clock skew 5m; every named key is a treasurer and an admin; admins
2 of "admin"; address book "exchange" = walletkit's EXTERNAL P2WPKH on regtest; one rule
"exchange-daily": wallet vault, destinations exchange, at most 1 BTC per tx (and, when given, a
24 h velocity limit), 2 treasurer approvals, the initiator not counted. `write_bundle`: a signing
request for wallet "vault", valid 2 h from now, with the approvers' approvals, as the bundle file.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import walletkit as W
from coldsign.keys.identity import IdentityKey
from coldsign.network import Network
from coldsign.psbt.review import address_of

IDENTITIES = {name: IdentityKey.from_seed(W.seed(name)) for name in W.COSIGNERS}
EXTERNAL_ADDRESS = address_of(W.EXTERNAL_SCRIPT, Network.REGTEST)


def treasury_policy(keys: dict[str, IdentityKey], velocity_24h: str | None = None) -> str:
    """The policy's TOML text (see the module docstring), written by coldsign.policy.examples."""
    from coldsign.policy.examples import Person, Rule, policy_toml

    people = [Person(name, key.public_hex, ("treasurer", "admin")) for name, key in keys.items()]
    rule = Rule("exchange-daily", 2, "treasurer", wallets=("vault",), destinations=("exchange",), max_per_tx="1 BTC",
                velocity_24h=velocity_24h)
    return policy_toml(network="regtest", people=people, exchange=[EXTERNAL_ADDRESS], rules=[rule])


def write_bundle(path, psbt_bytes: bytes, requester: IdentityKey, approvers: list[IdentityKey], *,
                 tip_height: int, tip_hash: str, memo: str):
    """Write a request bundle for wallet "vault" (2 h to live) approved by `approvers`; the request."""
    from coldsign.policy.request import bundle_of, encode_bundle, new_request, sign_approval

    request = new_request(psbt_bytes, wallet="vault", requester=requester.public_key,
                          now=datetime.now(timezone.utc), lifetime_seconds=7_200, tip_height=tip_height,
                          tip_hash=tip_hash, memo=memo)
    bundle = replace(bundle_of(request, requester, psbt_bytes),
                     approvals=tuple(sign_approval(request, key) for key in approvers))
    path.write_bytes(encode_bundle(bundle))
    return request
