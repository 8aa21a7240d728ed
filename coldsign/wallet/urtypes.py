"""UR registry types for account exports: crypto-hdkey (BCR-2020-007), crypto-keypath,
crypto-output (BCR-2020-010) and crypto-account (BCR-2020-015): their tags, map keys and
limits, and the encoder (pure).

Encoding builds the CBOR of a seed's account keys (public only) with cbor2 in canonical
form. The strict decoder for untrusted input is coldsign.wallet.urtypes_decode.

Choices, where the documents leave room:
- use-info is omitted on mainnet (the BCR-2020-015 example does so) and is `{network: 1}`
  on test networks; a decoded key's use-info must match the network the caller expects.
- crypto-account carries each key's origin path without source-fingerprint (the master
  fingerprint is the account's), as its example does; a standalone crypto-output carries
  the source-fingerprint in the origin.
- A multisig cosigner key is `wsh(cosigner(KEY))` = 401(410(303)) in a standalone
  crypto-output (BCR-2020-010's `cosigner`), and 401(303) inside crypto-account, as the
  BCR-2020-015 example has it. Both decode to a cosigner key expression.
- An account-level key without `children` is used with the standard branches `/<0;1>/*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from coldsign.network import Network

H = 0x80000000

TAG_HDKEY, TAG_KEYPATH, TAG_COININFO, TAG_ECKEY, TAG_ADDRESS = 303, 304, 305, 306, 307
TAG_OUTPUT, TAG_ACCOUNT = 308, 311
TAG_SH, TAG_WSH, TAG_PK, TAG_PKH, TAG_WPKH, TAG_COMBO = 400, 401, 402, 403, 404, 405
TAG_MULTI, TAG_SORTEDMULTI, TAG_RAW, TAG_TR, TAG_COSIGNER = 406, 407, 408, 409, 410

# crypto-hdkey map keys (BCR-2020-007)
HD_IS_MASTER, HD_IS_PRIVATE, HD_KEY_DATA, HD_CHAIN_CODE, HD_USE_INFO = 1, 2, 3, 4, 5
HD_ORIGIN, HD_CHILDREN, HD_PARENT_FP, HD_NAME, HD_NOTE = 6, 7, 8, 9, 10
# crypto-keypath, crypto-coininfo, multikey, crypto-account map keys
KP_COMPONENTS, KP_SOURCE_FP, KP_DEPTH = 1, 2, 3
COIN_TYPE, COIN_NETWORK = 1, 2
MULTI_THRESHOLD, MULTI_KEYS = 1, 2
ACCOUNT_MASTER_FP, ACCOUNT_OUTPUTS = 1, 2

# NOTE: limits.py has no field for this yet; a crypto-account of every standard type is
# ~1 KB, a 15-key multisig crypto-output ~2.5 KB. 64 KiB refuses hostile sizes early.
MAX_REGISTRY_CBOR_BYTES = 64 * 1024
MAX_PATH_COMPONENTS = 32
MAX_OUTPUTS = 32
MAX_MULTISIG_KEYS = 20
MAX_TEXT_CHARS = 1024


@dataclass(frozen=True)
class StandardType:
    """A script type of BCR-2020-015 with its default account path and output wrapping."""

    name: str
    purpose: int
    tags: tuple[int, ...]         # outermost first, around the key
    script_type: int | None = None  # BIP-48 script type level (1 sh-wsh, 2 wsh)
    per_account: bool = True        # False for BIP-45's single m/45h

    def path(self, network: Network, account: int) -> tuple[int, ...]:
        if not self.per_account:
            return (self.purpose | H,)
        path = (self.purpose | H, network.bip32_coin_type | H, account | H)
        return path + ((self.script_type | H,) if self.script_type is not None else ())


# In the order of BCR-2020-015's example.
STANDARD_TYPES = {t.name: t for t in (
    StandardType("pkh", 44, (TAG_PKH,)),
    StandardType("sh-wpkh", 49, (TAG_SH, TAG_WPKH)),
    StandardType("wpkh", 84, (TAG_WPKH,)),
    StandardType("sh", 45, (TAG_SH,), per_account=False),
    StandardType("sh-wsh-multi", 48, (TAG_SH, TAG_WSH), script_type=1),
    StandardType("wsh-multi", 48, (TAG_WSH,), script_type=2),
    StandardType("tr", 86, (TAG_TR,)),
)}
# The types coldsign's wallets use, exported in a crypto-account by default.
COLDSIGN_TYPES = ("sh-wpkh", "wpkh", "wsh-multi", "tr")
MULTISIG_TYPES = ("sh", "sh-wsh-multi", "wsh-multi")


# --- encoding -----------------------------------------------------------------------------

def _dumps(item) -> bytes:
    import cbor2

    return cbor2.dumps(item, canonical=True)


def keypath_map(components: tuple[int, ...] | None, *, source_fingerprint: bytes | None = None,
                depth: int | None = None) -> dict:
    """crypto-keypath's map: components as [index, hardened, ...]."""
    doc: dict = {}
    if components is not None:
        flat: list = []
        for step in components:
            flat += [step & 0x7FFFFFFF, bool(step & H)]
        doc[KP_COMPONENTS] = flat
    if source_fingerprint is not None:
        doc[KP_SOURCE_FP] = int.from_bytes(source_fingerprint, "big")
    if depth is not None:
        doc[KP_DEPTH] = depth
    return doc


def hdkey_map(key_data: bytes, chain_code: bytes | None, network: Network, *,
              origin: tuple[int, ...] | None = None, source_fingerprint: bytes | None = None,
              depth: int | None = None, parent_fingerprint: bytes | None = None) -> dict:
    """A public derived crypto-hdkey's map (untagged), in BCR-2020-007's fields."""
    import cbor2

    doc: dict = {HD_KEY_DATA: bytes(key_data)}
    if chain_code is not None:
        doc[HD_CHAIN_CODE] = bytes(chain_code)
    if network is not Network.MAIN:
        doc[HD_USE_INFO] = cbor2.CBORTag(TAG_COININFO, {COIN_NETWORK: 1})
    if origin is not None or source_fingerprint is not None or depth is not None:
        doc[HD_ORIGIN] = cbor2.CBORTag(TAG_KEYPATH, keypath_map(
            origin, source_fingerprint=source_fingerprint, depth=depth))
    if parent_fingerprint is not None and parent_fingerprint != bytes(4):
        doc[HD_PARENT_FP] = int.from_bytes(parent_fingerprint, "big")
    return doc


def _account_hdkey(seed, path: tuple[int, ...], network: Network, *, with_source: bool):
    import cbor2

    node = seed.root.reveal().derive(list(path)).to_public()
    doc = hdkey_map(node.key.sec(), node.chain_code, network, origin=path,
                    source_fingerprint=seed.fingerprint if with_source else None,
                    parent_fingerprint=node.fingerprint)
    return cbor2.CBORTag(TAG_HDKEY, doc)


def _wrap(key, standard: StandardType, *, cosigner: bool):
    import cbor2

    item = key
    if cosigner and standard.name in MULTISIG_TYPES:
        item = cbor2.CBORTag(TAG_COSIGNER, item)
    for tag in reversed(standard.tags):
        item = cbor2.CBORTag(tag, item)
    return item


def _standard(script_type: str) -> StandardType:
    try:
        return STANDARD_TYPES[script_type]
    except KeyError:
        raise ValueError(f"unknown script type {script_type!r}") from None


def crypto_output(seed, script_type: str, path: tuple[int, ...], network: Network) -> bytes:
    """The untagged crypto-output CBOR of the seed's account key at `path` for `script_type`
    (a multisig type gives the cosigner key: `wsh(cosigner(KEY))`)."""
    key = _account_hdkey(seed, path, network, with_source=True)
    return _dumps(_wrap(key, _standard(script_type), cosigner=True))


def crypto_account(seed, network: Network, account: int = 0,
                   script_types: tuple[str, ...] = COLDSIGN_TYPES) -> bytes:
    """The untagged crypto-account CBOR: the master fingerprint and one output descriptor per
    script type at its standard path for `account` (BCR-2020-015)."""
    outputs = []
    for name in script_types:
        standard = _standard(name)
        key = _account_hdkey(seed, standard.path(network, account), network, with_source=False)
        outputs.append(_wrap(key, standard, cosigner=False))
    return _dumps({ACCOUNT_MASTER_FP: int.from_bytes(seed.fingerprint, "big"), ACCOUNT_OUTPUTS: outputs})
