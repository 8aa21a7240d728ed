"""The ceremony rehearsal's scenario: a whole 2-of-3 cold-storage withdrawal on the embedded regtest
chain, as a table of steps (`STEPS`: stage, name, role, title, function) that
`coldsign.cli.rehearsal.rehearse` plays in order.

  1 key ceremony  keystores from the seeds, identity keys into the roster, the 2-of-3
                  wsh(sortedmulti) vault registered from a BSMS file on each signer and imported
                  on the coordinator, logs opened, the first policy signed by 2 admins and installed
  2 funding       0.6 and 0.5 BTC mined to receive 0 and 1
  3 withdrawal    `watch send` 0.7 BTC to the exchange; Olivia's request; Carol's and Bob's approvals
  4 the bundle    the approved bundle shown as BBQr frames, photographed by the signers' cameras
  5 signing       alice and bob each sign straight from the camera pictures (`psbt sign --images`)
                  under the policy and answer with their signatures only as UR frames
                  (`--frames-dir`), photographed in turn
  6 broadcast     the coordinator collects, finalizes, broadcasts, mines and syncs: confirmed
  7 audit         each log closed and exported; the auditor verifies them against the roster and
                  its copy of the chain, and writes HTML reports

Seeds: fixed test entropy (alice 0x01 * 16, bob 0x02, carol 0x03, olivia 0x04: never real), or
fresh from the operating system's generator with `Options.random`. The first policy is written by
`coldsign.policy.examples` (the writer `policy init` uses too). A step returns what crossed the air
gap and how many QR frames, for the narration; a value it learns goes into `Ceremony.values`.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from typing import Callable

from coldsign.cli.rehearsal import Ceremony, CliResult, StepRefused, frames_in
from coldsign.errors import ExitStatus

CUSTODIANS = ("alice", "bob", "carol")
SIGNERS = ("alice", "bob")                 # who sign the withdrawal
APPROVERS = ("carol", "bob")               # who approve Olivia's request (the requester may not)
ADMINS = ("alice", "bob")                  # who sign the first policy
TEST_ENTROPY = {"alice": 0x01, "bob": 0x02, "carol": 0x03, "olivia": 0x04}
WITHDRAWAL_SAT = 70_000_000                # 0.7 BTC to the exchange
FUNDING = (("0", "0.6"), ("1", "0.5"))     # receive index, BTC
FEE_RATE = "5"
CAMERA_SEED = 8                            # numpy seed of the camera degradation (replayable)
# NOTE: the exchange's deposit address is a P2WPKH script nobody holds a key for (the hash of a
# fixed text): coins sent there are gone, which is fine on the embedded regtest chain.
EXCHANGE_TAG = b"coldsign rehearsal: the exchange's deposit address"
ATTACKER_TAG = b"coldsign rehearsal: an attacker's address"


def tagged_address(tag: bytes) -> str:
    """A regtest P2WPKH address whose program is the first 20 bytes of SHA-256(tag)."""
    import hashlib

    from coldsign.network import Network
    from coldsign.psbt.review import address_of

    return address_of(bytes.fromhex("0014") + hashlib.sha256(tag).digest()[:20], Network.REGTEST)


# --- the steps ---------------------------------------------------------------------------------

StepFunction = Callable[[Ceremony], "tuple[str, int] | None"]


@dataclass(frozen=True)
class Step:
    stage: int
    name: str
    role: str
    title: str
    run: StepFunction


def _prepare(c: Ceremony) -> None:
    from embit import bip39

    for role in ("coordinator", *CUSTODIANS, "auditor", "transfer", "secrets"):
        (c.work / role).mkdir(parents=True, exist_ok=True)
    c.secret_file("x").parent.chmod(0o700)
    for who in (*CUSTODIANS, "olivia"):
        entropy = secrets.token_bytes(16) if c.options.random else bytes([TEST_ENTROPY[who]]) * 16
        words = c.secret_file(f"{who}-words.txt")
        words.write_text(bip39.mnemonic_from_bytes(entropy) + "\n")
        password = c.secret_file(f"{who}-password.txt")
        password.write_text(f"rehearsal password of {who} " + secrets.token_hex(8) + "\n")
        for path in (words, password):
            path.chmod(0o600)
    c.cli("coordinator", "regtest", "init")


def _keystores(c: Ceremony) -> tuple[str, int]:
    for who in CUSTODIANS:
        doc = c.cli(who, "key", "restore", *c.keystore(who), "--mnemonic-file", str(c.secret_file(f"{who}-words.txt")))
        c.values[f"{who}-fingerprint"] = doc["fingerprint"]
    c.cli("coordinator", "key", "restore", *c.keystore("olivia"),
          "--mnemonic-file", str(c.secret_file("olivia-words.txt")))
    return ("", 0)


def _roster(c: Ceremony) -> tuple[str, int]:
    roster = c.transfer / "roster.json"
    for who in CUSTODIANS:
        doc = c.cli(who, "key", "identity", *c.keystore(who), "--roster", str(roster), "--name", who.title(),
                    "--role", "custodian")
        c.values[f"{who}-identity"] = doc["public_key"]
    c.values["olivia-identity"] = c.cli("coordinator", "key", "identity", *c.keystore("olivia"))["public_key"]
    return ("roster.json on the USB medium", 0)


def _vault(c: Ceremony) -> tuple[str, int]:
    keys = []
    for who in CUSTODIANS:
        doc = c.cli(who, "key", "export", *c.keystore(who), "--script-type", "wsh-multi", "--format", "descriptor",
                    "--out", str(c.transfer / f"{who}-key.txt"))
        keys.append(doc["key"])
    descriptor = "wsh(sortedmulti(2," + ",".join(f"{k}/<0;1>/*" for k in keys) + "))"
    first = c.cli("coordinator", "wallet", "register", "--name", "vault", "--descriptor", descriptor)["first_address"]
    bsms = c.transfer / "vault.bsms"
    c.cli("coordinator", "wallet", "export", "vault", "--format", "bsms", "--out", str(bsms))
    imported = c.cli("coordinator", "watch", "import", "--name", "vault", "--file", str(bsms))
    _same(c, "coordinator", "watch import first address", imported["first_address"], first)
    for who in CUSTODIANS:
        doc = c.cli(who, "wallet", "register", "--name", "vault", "--file", str(bsms), *c.keystore(who))
        _same(c, who, "registered first address", doc["first_address"], first)
    c.values["first-address"] = first
    return ("3 account keys in, vault.bsms out (BSMS)", 0)


def _policy_text(c: Ceremony) -> str:
    """Policy "treasury" v1: the custodians are approvers and admins, Olivia requests (operations);
    only to the exchange, at most 1 BTC a transaction and 1.5 BTC a day, fee at most 0.001 BTC and
    200 sat/vB, 2 approvals of "approver", the requester not counted."""
    from coldsign.policy.examples import Person, Rule, policy_toml

    people = [Person(who.title(), c.values[f"{who}-identity"], ("custodian", "approver", "admin"))
              for who in CUSTODIANS]
    people.append(Person("Olivia", c.values["olivia-identity"], ("operations",)))
    rule = Rule("vault-to-exchange", 2, "approver", wallets=("vault",), destinations=("exchange",),
                max_per_tx="1 BTC", velocity_24h="1.5 BTC", fee_max="0.001 BTC", fee_max_rate_sat_vb=200,
                initiator_may_approve=False)
    return policy_toml(network="regtest", people=people, exchange=[tagged_address(EXCHANGE_TAG)], rules=[rule])


def _policy(c: Ceremony) -> tuple[str, int]:
    policy = c.transfer / "treasury-v1.toml"
    policy.write_text(_policy_text(c))
    digest = c.cli("coordinator", "policy", "show", str(policy))["digest"]
    signatures = []
    for admin in ADMINS:
        out = c.transfer / f"treasury-v1.{admin}.sig.json"
        doc = c.cli(admin, "policy", "approve-doc", str(policy), *c.keystore(admin), "--out", str(out))
        _same(c, admin, "signed policy digest", doc["policy_digest"], digest)
        signatures.append(str(out))
    for who in CUSTODIANS:
        doc = c.cli(who, "policy", "install", str(policy), *signatures, "--first", *c.keystore(who))
        _same(c, who, "installed policy digest", doc["digest"], digest)
    c.values["policy-digest"] = digest
    return ("treasury-v1.toml and 2 admin signatures", 0)


def _open_logs(c: Ceremony) -> tuple[str, int]:
    for who in CUSTODIANS:
        c.cli(who, "log", "open", "--participants", "Alice,Bob,Carol,Olivia,witness", *c.keystore(who))
    return ("", 0)


def _fund(c: Ceremony) -> tuple[str, int]:
    for index, amount in FUNDING:
        address = c.cli("coordinator", "wallet", "address", "vault", index)["address"]
        c.cli("coordinator", "regtest", "fund", address, amount)
    doc = c.cli("coordinator", "watch", "sync", "vault")
    c.values["funded-sat"] = doc.get("balance", {}).get("confirmed_sat")
    return ("", 0)


def _withdrawal(c: Ceremony) -> tuple[str, int]:
    unsigned = c.home("coordinator") / "w1.psbt"
    doc = c.cli("coordinator", "watch", "send", "vault", "--to", f"{tagged_address(EXCHANGE_TAG)}:0.7",
                "--fee-rate", FEE_RATE, "--out", str(unsigned))
    c.values["psbt-id"] = str(doc["psbt_id"])
    c.values["unsigned"] = unsigned
    return ("", 0)


def _request(c: Ceremony) -> tuple[str, int]:
    bundle = c.home("coordinator") / "w1.request.json"
    doc = c.cli("coordinator", "request", "create", str(c.values["unsigned"]), "--wallet", "vault",
                *c.keystore("olivia"), "--expires", "4h", "--memo", "rehearsal: exchange top-up", "--out", str(bundle))
    c.values["nonce"] = doc["nonce"]
    c.values["bundle"] = bundle
    return ("", 0)


def _approvals(c: Ceremony) -> tuple[str, int]:
    # NOTE: the approvers review on their own signers; the bundle travels to them on the USB medium
    # here (the approved bundle then crosses to the signers as QR, stage 4).
    bundle = c.values["bundle"]
    for who in APPROVERS:
        mine = c.home(who) / "w1.request.json"
        shutil.copyfile(bundle, mine)
        c.cli(who, "request", "approve", str(mine), *c.keystore(who), "--yes")
        bundle = mine
    approved = c.home("coordinator") / "w1.approved.json"
    shutil.copyfile(bundle, approved)
    c.values["approved"] = approved
    return ("request bundle by USB", 0)


def _bundle_out(c: Ceremony) -> tuple[str, int]:
    folder = c.transfer / "w1-bundle-qr"
    frames = c.encode_frames("coordinator", c.values["approved"], folder, "--type", "json", "--format", "bbqr")
    c.values["bundle-frames"] = frames
    c.photograph(frames, c.transfer / "w1-bundle-camera", CAMERA_SEED)
    return (f"approved bundle as {len(frames)} BBQr frames, photographed", len(frames))


def _sign(c: Ceremony) -> tuple[str, int]:
    back = 0
    for n, who in enumerate(SIGNERS):
        signed, answer = c.home(who) / "w1-signed.psbt", c.transfer / f"w1-signed-{who}-qr"
        doc = c.cli(who, *sign_from_camera(c, who), "--out", str(signed), "--frames-dir", str(answer),
                    "--qr-format", "ur", "--density", "medium")
        c.frames_out += doc["received"]["frames_seen"]
        c.values[f"{who}-signed-inputs"] = doc["signed_inputs"]
        frames = frames_in(answer)
        c.photograph(frames, c.transfer / f"w1-signed-{who}-camera", CAMERA_SEED + 1 + n)
        back += len(frames)
    return (f"{len(SIGNERS)} signers read the bundle from the camera pictures, signed, answered with their "
            "signatures as UR frames (photographed)", back)


def sign_from_camera(c: Ceremony, who: str) -> tuple[str, ...]:
    """WHO's `psbt sign` of the bundle read from the camera pictures of the coordinator's screen."""
    return ("psbt", "sign", "-", "--images", str(c.transfer / "w1-bundle-camera" / "camera-*.png"),
            *c.keystore(who))


def _collect(c: Ceremony) -> tuple[str, int]:
    seen = 0
    files = []
    for who in SIGNERS:
        out = c.home("coordinator") / f"w1-signed-{who}.psbt"
        seen += c.scan("coordinator", c.transfer / f"w1-signed-{who}-camera", out)["frames_seen"]
        files.append(str(out))
    c.frames_back += seen
    doc = c.cli("coordinator", "watch", "collect", "vault", c.values["psbt-id"], *files)
    _same(c, "coordinator", "final after collecting", doc.get("final"), True)
    return (f"coordinator read {len(SIGNERS)} signed PSBTs", seen)


def _broadcast(c: Ceremony) -> tuple[str, int]:
    doc = c.cli("coordinator", "watch", "broadcast", "vault", c.values["psbt-id"])
    c.values["txid"] = doc["txid"]
    c.cli("coordinator", "regtest", "mine", "--blocks", "1")
    c.cli("coordinator", "watch", "sync", "vault")
    c.values["height"] = c.cli("coordinator", "regtest", "status").get("height")
    return ("", 0)


def _confirmed(c: Ceremony) -> tuple[str, int]:
    doc = c.cli("coordinator", "watch", "psbts", "vault")
    row = next(p for p in doc["psbts"] if str(p["id"]) == c.values["psbt-id"])
    _same(c, "coordinator", "withdrawal status", row["status"], "confirmed")
    # the block that holds it: the height of the change coin it created (the coordinator's view)
    coins = c.cli("coordinator", "watch", "utxos", "vault")["coins"]
    heights = {coin["height"] for coin in coins if coin["outpoint"].startswith(c.values["txid"] + ":")}
    _same(c, "coordinator", "blocks holding the withdrawal's change", len(heights), 1)
    c.values["confirmed_height"] = heights.pop()
    return ("", 0)


def _close_and_export(c: Ceremony) -> tuple[str, int]:
    for who in CUSTODIANS:
        doc = c.cli(who, "log", "close", "--outcome", "rehearsal: w1 signed", *c.keystore(who))
        c.values[f"{who}-root"] = doc["checkpoint"]["root"]
        c.cli(who, "log", "export", "--out", str(c.home("auditor") / f"{who}-log.json"))
    # The auditor's own view of the chain: a copy of the coordinator's embedded chain after the sync.
    shutil.copytree(c.home("coordinator") / "regtest", c.home("auditor") / "regtest", dirs_exist_ok=True)
    return (f"{len(CUSTODIANS)} log exports by USB", 0)


def _audit(c: Ceremony) -> tuple[str, int]:
    roster = str(c.transfer / "roster.json")
    verdicts = {}
    for who in CUSTODIANS:
        export = str(c.home("auditor") / f"{who}-log.json")
        doc = c.cli("auditor", "audit", "verify", export, "--roster", roster, "--chain-source", "regtest")
        verdicts[who] = {"ok": doc["ok"], "entries": doc["entries"]}
        c.cli("auditor", "audit", "report", export, "--roster", roster, "--chain-source", "regtest",
              "--format", "html", "--out", str(c.home("auditor") / f"{who}-report.html"))
    c.values["audit"] = verdicts
    return ("", 0)


def _same(c: Ceremony, role: str, what: str, got, expected) -> None:
    if got != expected:
        raise StepRefused(role, c.step, CliResult((what,), int(ExitStatus.VERIFICATION_FAILED),
                                                  json.dumps({"error": {"code": "rehearsal-mismatch",
                                                              "message": f"{what}: {got!r}, expected {expected!r}"}}),
                                                  ""))


STEPS: tuple[Step, ...] = (
    Step(1, "prepare", "coordinator", "seeds and passwords on paper; the embedded chain starts", _prepare),
    Step(1, "keystores", "custodians", "each custodian restores a seed into an encrypted keystore", _keystores),
    Step(1, "roster", "custodians", "identity keys into the roster; Olivia's identity on the coordinator", _roster),
    Step(1, "vault", "all", "2-of-3 wsh(sortedmulti) vault: registered on each signer, imported on the coordinator",
         _vault),
    Step(1, "log-open", "custodians", "each signer opens its ceremony log", _open_logs),
    Step(1, "policy", "admins", "first policy signed by 2 admins, installed on each signer (logged)", _policy),
    Step(2, "fund", "coordinator", "1.1 BTC mined to receive 0 and 1, confirmed; watch sync", _fund),
    Step(3, "withdrawal", "coordinator", "watch send: 0.7 BTC to the exchange, change back to the vault", _withdrawal),
    Step(3, "request", "coordinator", "Olivia signs the request (expires in 4 h)", _request),
    Step(3, "approvals", "approvers", "Carol and Bob review and approve", _approvals),
    Step(4, "bundle-qr", "coordinator", "the approved bundle shown as QR", _bundle_out),
    Step(5, "sign", "signers", "scan the bundle from camera pictures; review, policy, sign, log; the signatures "
         "as QR", _sign),
    Step(6, "collect", "coordinator", "scan the signatures back, collect, finalize (libbitcoinkernel)", _collect),
    Step(6, "broadcast", "coordinator", "broadcast, mine one block, sync", _broadcast),
    Step(6, "confirmed", "coordinator", "the withdrawal is confirmed", _confirmed),
    Step(7, "log-export", "custodians", "each signer closes its log and exports it for the auditor",
         _close_and_export),
    Step(7, "audit", "auditor", "audit verify against the roster and the chain; HTML reports", _audit),
)
STEP_NAMES = tuple(step.name for step in STEPS)


def summary(c: Ceremony) -> dict:
    """The contract's summary (ARCHITECTURE §4) and a few extra fields."""
    audit = c.values.get("audit", {})
    return {
        "txid": c.values.get("txid"),
        "confirmed_height": c.values.get("confirmed_height"),
        "tip_height": c.values.get("height"),
        "signers": list(SIGNERS),
        "frames_out": c.frames_out,
        "frames_back": c.frames_back,
        "audit_ok": bool(audit) and all(v["ok"] for v in audit.values()),
        "audit": audit,
        "policy_digest": c.values.get("policy-digest"),
        "first_address": c.values.get("first-address"),
        "fingerprints": {who: c.values.get(f"{who}-fingerprint") for who in CUSTODIANS},
        "checkpoint_roots": {who: c.values.get(f"{who}-root") for who in CUSTODIANS},
        "random_seeds": c.options.random,
    }
