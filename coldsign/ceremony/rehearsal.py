"""The ceremony rehearsal: a whole 2-of-3 cold-storage withdrawal on the embedded regtest chain.

Every step is a real `coldsign` command, run in-process through the root Typer app
(`coldsign.cli.main.app`) with `--json`, in the home folder of the role that does it, as if each
role had its own machine:

  coordinator  the online machine: the embedded chain, the watch-only wallet, Olivia's identity
               key (operations: she requests withdrawals)
  alice, bob, carol  the custodians' air-gapped signers (keystores, the vault, the policy, the log)
  auditor      a machine with the roster, the exported logs and its own copy of the chain
  transfer     the USB medium of the key ceremony (public keys, roster, policy, signatures)

Seeds: fixed test entropy (alice 0x01 * 16, bob 0x02, carol 0x03, olivia 0x04: never real), or
fresh from the operating system's generator with `random=True`. The keystores use coldsign's real
Argon2id defaults; `fast_kdf=True` lowers them to libsodium's INTERACTIVE limits for this process
only, and the summary says so (`"kdf"`).

Steps are data (`STEPS`: stage, role, title, function). An attack (`coldsign.ceremony.attacks`)
hooks in after a named step; the first command that refuses ends the rehearsal and is reported
with its role, step, exit code and error code, so an attack is "caught" exactly when the refusal
is the one the attack expects.

Whatever crosses the air gap in stages 4 and 5 goes as QR images: `qr encode` writes the frames'
payloads, each is drawn again as a camera picture (`coldsign.qr.camera_sim`: tilt, blur, noise,
screen contrast) to PNG, and the other side reads them with `qr decode --images`.

NOTE: this module orchestrates the CLI (it imports `coldsign.cli.main` lazily, inside `run_cli`)
and writes files under the workdir; it prints nothing: the narration goes to the `narrate`
callback (the Rich view lives in coldsign/cli/ceremony.py).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from coldsign.errors import ColdsignError, ExitStatus

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


# --- running one command -----------------------------------------------------------------------

@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict:
        try:
            parsed = json.loads(self.stdout) if self.stdout.strip() else {}
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    @property
    def error(self) -> dict:
        return self.doc.get("error") or {}


def run_cli(args: list[str]) -> CliResult:
    """Run `coldsign ARGS` in this process: exit code, stdout (the JSON document) and stderr.

    Through Typer's in-process runner (typer.testing.CliRunner, public API): it swaps stdin for an
    empty non-terminal stream, so no command can stop at a prompt, and keeps stdout and stderr apart.
    A Python exception escaping the command (a bug) becomes exit 70 with its type and text."""
    from typer.testing import CliRunner

    from coldsign.cli.main import app

    result = CliRunner().invoke(app, list(args), input="", catch_exceptions=True)
    code, stderr = result.exit_code, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = int(ExitStatus.INTERNAL)
        stderr += f"internal error ({type(result.exception).__name__}): {result.exception}\n"
    return CliResult(tuple(args), int(code), result.stdout, stderr)


# --- what the rehearsal reports ----------------------------------------------------------------

@dataclass(frozen=True)
class StepEvent:
    """One finished step, for the narration: who, what, what crossed the air gap, how long."""

    stage: int
    step: str
    role: str
    title: str
    seconds: float
    crossed: str = ""
    frames: int = 0


class StepRefused(Exception):
    """A command of the rehearsal did not succeed (the fault an attack expects, or a real failure)."""

    def __init__(self, role: str, step: str, result: CliResult):
        self.role, self.step, self.result = role, step, result
        error = result.error
        details = error.get("details") or []
        problems = result.doc.get("errors") or []          # audit verify: {"ok": false, "errors": [...]}
        self.codes = [error.get("code", "")] + [d.get("code", "") for d in details] + \
            [e.get("code", "") for e in problems]
        # the review's own finding codes, named in brackets inside a policy check's message
        for d in details:
            self.codes += [c for c in re.findall(r"\[([a-z0-9-]+)\]", d.get("message", "")) if c not in self.codes]
        self.code = next((c for c in self.codes[1:] if c), "") or self.codes[0] or f"exit-{result.exit_code}"
        self.message = error.get("message") or (f"entry {problems[0].get('index')}: {problems[0].get('message')}"
                                                if problems else (result.stderr.strip().splitlines() or [""])[-1])
        super().__init__(f"{role}/{step}: coldsign {' '.join(result.args)} exited {result.exit_code}: {self.message}")


class RehearsalFailed(ColdsignError):
    """The rehearsal stopped at a command that failed; the exit code is that command's."""

    code = "rehearsal-failed"

    def __init__(self, refused: StepRefused):
        super().__init__(f"the rehearsal stopped at {refused.role}/{refused.step}: {refused.message}",
                         where=f"coldsign {' '.join(refused.result.args)}",
                         hint="the command's own message is above; the workdir keeps every file for a look")
        try:
            self.exit_status = ExitStatus(refused.result.exit_code)
        except ValueError:
            self.exit_status = ExitStatus.INTERNAL


@dataclass
class Options:
    workdir: Path
    random: bool = False
    fast_kdf: bool = False
    attack: str | None = None


@dataclass
class Ceremony:
    """The state of one rehearsal: folders, values the commands printed, frame counts."""

    options: Options
    narrate: Callable[[StepEvent], None] = lambda event: None
    values: dict = field(default_factory=dict)
    frames_out: int = 0
    frames_back: int = 0
    stage: int = 0
    step: str = ""
    role: str = ""

    @property
    def work(self) -> Path:
        return self.options.workdir

    def home(self, role: str) -> Path:
        return self.work / role

    @property
    def transfer(self) -> Path:
        return self.work / "transfer"

    def secret_file(self, name: str) -> Path:
        return self.work / "secrets" / name

    def keystore(self, who: str) -> list[str]:
        return ["--keystore", who, "--password-file", str(self.secret_file(f"{who}-password.txt"))]

    def cli(self, role: str, *args: str, home_role: str | None = None) -> dict:
        """Run one command as `role` (in its home folder) and return its JSON; raise StepRefused."""
        home = self.home(home_role or role)
        result = run_cli(["--home", str(home), "--network", "regtest", *args, "--json"])
        if result.exit_code != 0:
            raise StepRefused(role, self.step, result)
        return result.doc

    # --- the air gap ---------------------------------------------------------------------------

    def encode_frames(self, role: str, file: Path, folder: Path, *args: str) -> list[str]:
        """`qr encode` FILE on ROLE's screen; the payloads of its frames, in order."""
        self.cli(role, "qr", "encode", str(file), "--frames-dir", str(folder), "--density", "medium", *args)
        return [line for line in (folder / "frames.txt").read_text().splitlines() if line.strip()]

    def photograph(self, payloads: list[str], folder: Path, seed: int) -> list[Path]:
        """Each payload as the receiving camera sees it: a degraded 1280x720 picture, to PNG."""
        import numpy as np

        from coldsign.qr import camera_sim

        rng = np.random.default_rng(seed)
        frames = []
        for payload in payloads:
            modules = camera_sim.qr_modules(payload)
            px = min(4.0, 640 / modules.shape[0])
            frames.append(camera_sim.camera_frame(modules, rng, px_per_module=px))
        return camera_sim.write_pngs(folder, frames, stem="camera")

    def scan(self, role: str, folder: Path, out: Path) -> dict:
        """ROLE's signer reads the camera pictures in FOLDER with `qr decode --images`."""
        return self.cli(role, "qr", "decode", "--images", str(folder / "camera-*.png"), "--out", str(out))


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
    approvers = "".join(
        f'[[approvers]]\nname = "{who.title()}"\nkey = "{c.values[who + "-identity"]}"\n'
        f'roles = ["custodian", "approver", "admin"]\n\n' for who in CUSTODIANS)
    return f'''format = "coldsign-policy/1"
name = "treasury"
version = 1
network = "regtest"
clock_skew = "5m"

[admins]
threshold = 2
role = "admin"

{approvers}[[approvers]]
name = "Olivia"
key = "{c.values["olivia-identity"]}"
roles = ["operations"]

[[address_book]]
name = "exchange"
addresses = ["{tagged_address(EXCHANGE_TAG)}"]

[[rules]]
name = "vault-to-exchange"
wallets = ["vault"]
destinations = ["exchange"]
max_per_tx = "1 BTC"
velocity = [{{ window = "24h", max = "1.5 BTC" }}]
fee = {{ max = "0.001 BTC", max_rate_sat_vb = 200 }}

[rules.approvals]
threshold = 2
group = "approver"
initiator_may_approve = false
'''


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
    payloads = c.encode_frames("coordinator", c.values["approved"], folder, "--type", "json", "--format", "bbqr")
    c.values["bundle-payloads"] = payloads
    c.photograph(payloads, c.transfer / "w1-bundle-camera", CAMERA_SEED)
    return (f"approved bundle as {len(payloads)} BBQr frames, photographed", len(payloads))


def _signers_scan(c: Ceremony) -> tuple[str, int]:
    seen = 0
    for who in SIGNERS:
        doc = c.scan(who, c.transfer / "w1-bundle-camera", c.home(who) / "w1.request.json")
        seen += doc["frames_seen"]
    c.frames_out += seen
    return (f"{len(SIGNERS)} signers read the camera pictures", seen)


def _sign(c: Ceremony) -> tuple[str, int]:
    back = 0
    for n, who in enumerate(SIGNERS):
        bundle, signed = c.home(who) / "w1.request.json", c.home(who) / "w1-signed.psbt"
        doc = c.cli(who, "psbt", "sign", "-", "--request", str(bundle), *c.keystore(who), "--out", str(signed))
        c.values[f"{who}-signed-inputs"] = doc["signed_inputs"]
        payloads = c.encode_frames(who, signed, c.transfer / f"w1-signed-{who}-qr", "--format", "ur")
        c.photograph(payloads, c.transfer / f"w1-signed-{who}-camera", CAMERA_SEED + 1 + n)
        back += len(payloads)
    return (f"{len(SIGNERS)} signed PSBTs as UR frames, photographed", back)


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
    Step(1, "policy", "admins", "first policy signed by 2 admins, installed on each signer", _policy),
    Step(1, "log-open", "custodians", "each signer opens its ceremony log", _open_logs),
    Step(2, "fund", "coordinator", "1.1 BTC mined to receive 0 and 1, confirmed; watch sync", _fund),
    Step(3, "withdrawal", "coordinator", "watch send: 0.7 BTC to the exchange, change back to the vault", _withdrawal),
    Step(3, "request", "coordinator", "Olivia signs the request (expires in 4 h)", _request),
    Step(3, "approvals", "approvers", "Carol and Bob review and approve", _approvals),
    Step(4, "bundle-qr", "coordinator", "the approved bundle shown as QR", _bundle_out),
    Step(4, "bundle-scan", "signers", "each signer scans the bundle from camera pictures", _signers_scan),
    Step(5, "sign", "signers", "review, policy, sign, log; the signed PSBT shown as QR", _sign),
    Step(6, "collect", "coordinator", "scan the signatures back, collect, finalize (libbitcoinkernel)", _collect),
    Step(6, "broadcast", "coordinator", "broadcast, mine one block, sync", _broadcast),
    Step(6, "confirmed", "coordinator", "the withdrawal is confirmed", _confirmed),
    Step(7, "log-export", "custodians", "each signer closes its log and exports it for the auditor",
         _close_and_export),
    Step(7, "audit", "auditor", "audit verify against the roster and the chain; HTML reports", _audit),
)
STEP_NAMES = tuple(step.name for step in STEPS)


@contextmanager
def _kdf(fast: bool) -> Iterator[None]:
    """Under fast=True, new keystores use Argon2id INTERACTIVE limits (this process, this rehearsal)."""
    from coldsign.keys import keystore

    saved = keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT
    if fast:
        keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = keystore.OPSLIMIT_INTERACTIVE, \
            keystore.MEMLIMIT_INTERACTIVE
    try:
        yield
    finally:
        keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = saved


def _fresh_workdir(path: Path) -> Path:
    """The workdir, emptied; refuses a non-empty folder that no earlier rehearsal made."""
    from coldsign.errors import Refused

    path = path.resolve()
    # a rehearsal's folder: the marker, or the layout of the rehearsals before it (scripts/rehearse.py)
    made_by_rehearsal = (path / ".coldsign-rehearsal").exists() or \
        ((path / "coordinator").is_dir() and (path / "alice").is_dir())
    if path.exists() and any(path.iterdir()) and not made_by_rehearsal:
        raise Refused(f"{path} is not empty and was not made by a rehearsal", code="workdir-not-empty",
                      hint="pass an empty or new folder as --workdir; a rehearsal wipes its workdir first")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / ".coldsign-rehearsal").write_text("made by coldsign ceremony rehearse; wiped by the next one\n")
    return path


def rehearse(options: Options, narrate: Callable[[StepEvent], None] = lambda event: None) -> dict:
    """Play the ceremony; returns the summary (or the attack's verdict with `options.attack`)."""
    from coldsign.ceremony.attacks import attack_named

    attack = attack_named(options.attack) if options.attack else None
    options.workdir = _fresh_workdir(options.workdir)
    ceremony = Ceremony(options=options, narrate=narrate)
    started = time.monotonic()
    refused: StepRefused | None = None
    with _kdf(options.fast_kdf):
        try:
            for step in STEPS:
                _run_step(ceremony, step)
                if attack is not None and attack.after == step.name:
                    ceremony.step, ceremony.stage = f"{step.name}+{attack.name}", step.stage
                    begun = time.monotonic()
                    note = attack.inject(ceremony)
                    narrate(StepEvent(step.stage, ceremony.step, "attacker", attack.description,
                                      time.monotonic() - begun, note))
        except StepRefused as exc:
            refused = exc
    seconds = round(time.monotonic() - started, 1)
    kdf = "argon2id interactive (--fast-kdf: rehearsal only)" if options.fast_kdf else "argon2id moderate (default)"
    if attack is not None:
        return attack.verdict(refused, ceremony) | {"seconds": seconds, "kdf": kdf,
                                                     "workdir": str(options.workdir)}
    if refused is not None:
        raise RehearsalFailed(refused)
    return summary(ceremony) | {"seconds": seconds, "kdf": kdf, "workdir": str(options.workdir)}


def _run_step(ceremony: Ceremony, step: Step) -> None:
    ceremony.stage, ceremony.step, ceremony.role = step.stage, step.name, step.role
    begun = time.monotonic()
    crossed, frames = step.run(ceremony) or ("", 0)
    ceremony.narrate(StepEvent(step.stage, step.name, step.role, step.title, time.monotonic() - begun,
                               crossed, frames))


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
