"""Wallet registrations on the signer: `<home>/wallets/<NAME>.json`.

A registration pins a wallet's descriptor (canonical `/<0;1>/*` form with checksum) and its
network under a name. The signer only signs for registered wallets, so registering is where
the checks live: checksum, key origins, network version bytes and, when a seed is given, that
the seed really holds one of the wallet's keys. Names are never reused for another descriptor.

Files are written atomically (store.atomic_write) and read with a size limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from coldsign.errors import BadInput, DescriptorError, NotFound, Refused
from coldsign.limits import LIMITS
from coldsign.network import Network
from coldsign.store import atomic_write, read_limited
from coldsign.wallet.descriptor import WalletDescriptor, WalletKey
from coldsign.keys.derive import format_path

if TYPE_CHECKING:
    from coldsign.keys.seed import SeedKey

WALLET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
FILE_FORMAT = "coldsign-wallet"
FILE_VERSION = 1


@dataclass
class Registration:
    name: str
    descriptor: WalletDescriptor
    network: Network
    created: str  # ISO 8601 UTC
    path: Path

    def to_json(self) -> dict:
        doc = {"name": self.name, "network": self.network.value, "created": self.created}
        doc.update(self.descriptor.describe())
        doc["path"] = str(self.path)
        return doc

    def file_document(self) -> dict:
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "name": self.name,
                "network": self.network.value, "created": self.created,
                "descriptor": self.descriptor.canonical(), "kind": self.descriptor.kind,
                "policy": self.descriptor.policy,
                "keys": [k.describe() for k in self.descriptor.keys]}


def wallets_dir(home: Path) -> Path:
    return Path(home) / "wallets"


def check_name(name: str) -> str:
    if not WALLET_NAME.match(name or ""):
        raise BadInput(f"wallet name {name[:80]!r} is not allowed",
                       hint="use 1 to 64 letters, digits, '_' or '-'")
    return name


def wallet_path(home: Path, name: str) -> Path:
    return wallets_dir(home) / f"{check_name(name)}.json"


def seed_key_in(descriptor: WalletDescriptor, seed: "SeedKey") -> WalletKey | None:
    """The wallet key this seed derives: same origin fingerprint AND the same xpub at the
    origin path (fingerprints are 32 bits and can collide; the xpub cannot)."""
    root = seed.root.reveal()
    for key in descriptor.keys:
        if key.origin.fingerprint != seed.fingerprint:
            continue
        derived = root.derive(list(key.origin.path))
        if derived.key.sec() == key.xpub.key.sec() and derived.chain_code == key.xpub.chain_code:
            return key
    return None


def require_seed_in_wallet(descriptor: WalletDescriptor, seed: "SeedKey", *, name: str) -> WalletKey:
    key = seed_key_in(descriptor, seed)
    if key is not None:
        return key
    fingerprints = ", ".join(k.origin.fingerprint.hex() for k in descriptor.keys)
    same_fp = [k for k in descriptor.keys if k.origin.fingerprint == seed.fingerprint]
    if same_fp:
        why = (f"the seed's fingerprint {seed.fingerprint_hex} is in the wallet but the xpub it derives at "
               f"{format_path(same_fp[0].origin.path, master=True)} is different")
    else:
        why = f"the seed's fingerprint {seed.fingerprint_hex} is not among the wallet's keys ({fingerprints})"
    raise Refused(f"this seed holds none of the keys of wallet {name!r}: {why}", code="seed-not-in-wallet",
                  hint="check the mnemonic and the passphrase (a different passphrase is a different seed)",
                  details=[{"code": "seed-not-in-wallet", "message": why}])


def register(home: Path, name: str, descriptor: str, network: Network, *,
             change_descriptor: str | None = None, seed: "SeedKey | None" = None) -> Registration:
    """Parse, check and store a wallet. The same descriptor again is a no-op; another
    descriptor under an existing name, or the same descriptor under another name, is refused
    (exit 4)."""
    path = wallet_path(home, name)
    wallet = WalletDescriptor.parse(descriptor, network, change_descriptor)
    if seed is not None:
        require_seed_in_wallet(wallet, seed, name=name)
    if path.exists():
        existing = load(home, name)
        if existing.descriptor.canonical() == wallet.canonical() and existing.network == network:
            return existing
        raise Refused(f"a wallet named {name!r} is already registered with a different "
                      f"{'network' if existing.network != network else 'descriptor'}",
                      code="wallet-exists", where=str(path),
                      hint="choose another name; a registered wallet is never replaced")
    # NOTE: one wallet, one name: the signer's ledger counts what a wallet spent (velocity limits) by
    # its registered name, so a second name for the same descriptor would start a fresh count.
    twin = next((r for r in list_wallets(home)
                 if r.network == network and r.descriptor.canonical() == wallet.canonical()), None)
    if twin is not None:
        raise Refused(f"this wallet is already registered as {twin.name!r}: one wallet has one name (the "
                      f"policy's limits count by it)", code="wallet-registered", where=str(twin.path),
                      hint=f"use --wallet {twin.name}")
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    registration = Registration(name=name, descriptor=wallet, network=network, created=created, path=path)
    atomic_write(path, json.dumps(registration.file_document(), indent=2) + "\n", mode=0o644)
    return registration


def load(home: Path, name: str) -> Registration:
    """The registration named `name`; NotFound naming the wallets folder when there is none."""
    path = wallet_path(home, name)
    if not path.is_file():
        raise NotFound(f"no wallet named {name!r} is registered in {wallets_dir(home)}",
                       hint="list them with `coldsign wallet list`, or register it first")
    return _read(path)


def _read(path: Path) -> Registration:
    raw = read_limited(path, LIMITS.wallet_file_max_bytes, what="wallet file")
    try:
        doc = json.loads(raw)
        if doc.get("format") != FILE_FORMAT or doc.get("version") != FILE_VERSION:
            raise ValueError("not a coldsign wallet file of version 1")
        name, network = doc["name"], Network(doc["network"])
        if f"{name}.json" != path.name:
            raise ValueError(f"it names the wallet {name!r}")
        wallet = WalletDescriptor.parse(doc["descriptor"], network)
        created = str(doc["created"])
    except DescriptorError as e:
        raise BadInput(f"the stored descriptor is invalid: {e.message}", where=str(path)) from None
    except RecursionError:
        raise BadInput("corrupt wallet file: nested too deeply", where=str(path),
                       hint="restore it from a backup or register the wallet again under a new name") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadInput(f"corrupt wallet file: {e}", where=str(path),
                       hint="restore it from a backup or register the wallet again under a new name") from None
    return Registration(name=name, descriptor=wallet, network=network, created=created, path=path)


def list_wallets(home: Path) -> list[Registration]:
    """Every registration, by name."""
    folder = wallets_dir(home)
    if not folder.is_dir():
        return []
    return [_read(p) for p in sorted(folder.glob("*.json")) if WALLET_NAME.match(p.stem)]
