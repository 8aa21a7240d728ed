"""Faults injected into the ceremony rehearsal, and where each must be caught.

Each attack runs right after one named step of `coldsign.cli.rehearsal_steps.STEPS` and changes
what the next steps receive, as a compromised coordinator, a confused operator or a tampering
insider would. The rehearsal then continues; the first command that refuses ends it. The attack is
*caught* when that refusal comes from the role and check the attack names (`role`, `codes`):

  destination-swapped  the payment's address is swapped in the bundle's PSBT after the approvals
                       → the signer refuses: the PSBT's digest is not the one the request names
  foreign-change       the change output pays our key with foreign cosigners but keeps our
                       derivation path → the review refuses it as foreign-change
  fee-inflated         the change is cut by 0.005 BTC, which goes to the fee, before the request
                       → the policy's fee cap (0.001 BTC)
  request-replayed     the signed bundle is given to the first signer again → nonce replayed
  frame-mixed          a frame of another PSBT's QR is shown among the bundle's frames
                       → `qr decode` refuses the mixed transmission (exit 3)
  log-edited           one entry of the first signer's exported log is edited → `audit verify`
                       fails (exit 5) at that entry's index

An attack edits files in the rehearsal's workdir (or runs one more command) between two steps; the
catching is left to coldsign's own checks. `coldsign.cli.rehearsal.rehearse` calls `inject` and,
at the end, `verdict`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Callable

from coldsign.cli.rehearsal import Ceremony, StepRefused
from coldsign.cli.rehearsal_steps import ATTACKER_TAG, CAMERA_SEED, SIGNERS, sign_from_camera, tagged_address
from coldsign.errors import NotFound

FOREIGN_COSIGNER_ENTROPY = bytes([0x7F]) * 16   # the foreign cosigners' seed (test only)
FEE_THEFT_SAT = 500_000                          # 0.005 BTC moved from the change to the fee
EDITED_EVENT = "signatures-produced"             # the log entry the log-edited attack changes


@dataclass(frozen=True)
class Attack:
    name: str
    after: str                       # the step after which the fault is injected
    description: str
    role: str                        # who must catch it
    codes: tuple[str, ...]           # the refusal codes that count as caught
    exit_code: int
    inject: Callable[[Ceremony], str]

    def verdict(self, refused: StepRefused | None, ceremony: Ceremony) -> dict:
        """{"attack", "caught", "by", "where", ...}: caught only by the expected role and check."""
        doc = {"attack": self.name, "expected": {"role": self.role, "codes": list(self.codes),
                                                 "exit": self.exit_code}}
        if refused is None:
            return doc | {"caught": False, "by": None, "where": None,
                          "message": "the ceremony completed: the fault was not caught"}
        by = next((code for code in refused.codes if code in self.codes), refused.code)
        caught = refused.role == self.role and by in self.codes and refused.result.exit_code == self.exit_code
        doc |= {"caught": caught, "by": by, "where": f"{refused.role}/{refused.step}",
                "exit": refused.result.exit_code, "message": refused.message, "codes": [c for c in refused.codes if c]}
        index = ceremony.values.get("edited-index")
        if index is not None:
            doc["edited_index"] = index
            errors = refused.result.doc.get("errors") or []
            doc["failed_index"] = errors[0].get("index") if errors else None
            doc["caught"] = caught and doc["failed_index"] == index
        return doc


# --- PSBT surgery ------------------------------------------------------------------------------

def _load_psbt(raw: bytes):
    from embit.psbt import PSBT

    return PSBT.parse(raw)


def _rewrite_bundle_psbt(path, change: Callable) -> None:
    """Apply `change(psbt)` to the PSBT a bundle file carries, keeping the request and approvals."""
    doc = json.loads(path.read_text())
    psbt = _load_psbt(base64.b64decode(doc["psbt"]))
    change(psbt)
    doc["psbt"] = base64.b64encode(psbt.serialize()).decode()
    path.write_text(json.dumps(doc, indent=2))


def _script_of(address: str):
    from embit.script import address_to_scriptpubkey

    return address_to_scriptpubkey(address)


def _change_index(psbt) -> int:
    """The output with a BIP-32 derivation (our change), as `watch send` builds it."""
    for index, output in enumerate(psbt.outputs):
        if output.bip32_derivations:
            return index
    raise NotFound("the withdrawal has no change output to attack")


def _payment_index(psbt) -> int:
    change = _change_index(psbt)
    return next(i for i in range(len(psbt.outputs)) if i != change)


# --- the attacks -------------------------------------------------------------------------------

def _swap_destination(c: Ceremony) -> str:
    attacker = tagged_address(ATTACKER_TAG)

    def swap(psbt) -> None:
        psbt.outputs[_payment_index(psbt)].script_pubkey = _script_of(attacker)

    _rewrite_bundle_psbt(c.values["approved"], swap)
    return f"payment now goes to {attacker}"


def _foreign_change(c: Ceremony) -> str:
    """Change to wsh(sortedmulti(2, our key at the change path, 2 foreign keys)), path kept."""
    from embit import bip32, bip39
    from embit.script import Script
    from embit.script import p2wsh as embit_p2wsh

    path = c.values["unsigned"]
    psbt = _load_psbt(path.read_bytes())
    o = _change_index(psbt)
    ours = sorted(psbt.outputs[o].bip32_derivations.items(), key=lambda kv: kv[0].sec())[0][0]
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(bip39.mnemonic_from_bytes(FOREIGN_COSIGNER_ENTROPY)))
    foreign = [root.derive(f"m/48h/1h/0h/2h/1/{i}").key for i in (0, 1)]
    keys = sorted([ours.sec(), *(k.sec() for k in foreign)])
    witness_script = Script(bytes([0x52]) + b"".join(bytes([33]) + k for k in keys) + bytes([0x53, 0xAE]))
    psbt.outputs[o].script_pubkey = embit_p2wsh(witness_script)
    psbt.outputs[o].witness_script = witness_script
    path.write_bytes(psbt.serialize())
    return f"change output {o} now pays our key with 2 foreign cosigners"


def _inflate_fee(c: Ceremony) -> str:
    path = c.values["unsigned"]
    psbt = _load_psbt(path.read_bytes())
    o = _change_index(psbt)
    psbt.outputs[o].value -= FEE_THEFT_SAT
    path.write_bytes(psbt.serialize())
    return f"change output {o} cut by {FEE_THEFT_SAT} sat: the fee grows by as much"


def _replay_request(c: Ceremony) -> str:
    who = SIGNERS[0]
    c.step = "sign-again"
    c.cli(who, *sign_from_camera(c, who), "--out", str(c.home(who) / "w1-signed-again.psbt"))
    return f"the same bundle shown to {who} again"


def _mix_frame(c: Ceremony) -> str:
    """Encode another PSBT (the withdrawal with the attacker's destination) and show one of its
    frames among the bundle's camera pictures."""
    other = c.home("coordinator") / "other.psbt"
    psbt = _load_psbt(c.values["unsigned"].read_bytes())
    psbt.outputs[_payment_index(psbt)].script_pubkey = _script_of(tagged_address(ATTACKER_TAG))
    other.write_bytes(psbt.serialize())
    other_frames = c.encode_frames("coordinator", other, c.transfer / "other-qr", "--format", "bbqr")
    mixed = list(c.values["bundle-frames"])
    mixed.insert(1, other_frames[0])
    folder = c.transfer / "w1-bundle-camera"
    for old in folder.glob("camera-*.png"):
        old.unlink()
    c.photograph(mixed, folder, CAMERA_SEED)
    return "frame 1 of another PSBT's QR shown as the bundle's second frame"


def _edit_log(c: Ceremony) -> str:
    """An insider edits the first signer's exported log: the `signatures-produced` entry now names
    the attacker's address as the payment's destination (bytes of the entry changed, nothing else)."""
    who = SIGNERS[0]
    path = c.home("auditor") / f"{who}-log.json"
    doc = json.loads(path.read_text())
    index = next(i for i, line in enumerate(doc["entries"]) if json.loads(line)["event"] == EDITED_EVENT)
    entry = json.loads(doc["entries"][index])
    entry["payload"]["outputs"][0]["address"] = tagged_address(ATTACKER_TAG)
    edited = json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    # NOTE: only the entry's bytes change; the rest of the export keeps its exact form, so the audit
    # finds the edit itself rather than a re-formatted file.
    text = path.read_text()
    before, after = json.dumps(doc["entries"][index])[1:-1], json.dumps(edited)[1:-1]
    if text.count(before) != 1:
        raise NotFound(f"entry {index} is not stored as one JSON string in {path}")
    path.write_text(text.replace(before, after))
    c.values["edited-index"] = index
    return f"{who}'s exported log: entry {index} ({EDITED_EVENT}) names another destination"


ATTACKS: tuple[Attack, ...] = (
    Attack("destination-swapped", "approvals", "the payment's address swapped after the approvals", "alice",
           ("psbt-digest",), 4, _swap_destination),
    Attack("foreign-change", "withdrawal", "change sent to our key with foreign cosigners", "alice",
           ("foreign-change",), 4, _foreign_change),
    Attack("fee-inflated", "withdrawal", "the fee inflated by cutting the change", "alice",
           ("fee", "high-fee"), 4, _inflate_fee),
    Attack("request-replayed", "sign", "the signed bundle replayed", "alice", ("nonce",), 4, _replay_request),
    Attack("frame-mixed", "bundle-qr", "a frame of another PSBT among the QR frames", "alice",
           ("qr-decode",), 3, _mix_frame),
    Attack("log-edited", "log-export", "an entry of an exported log edited", "auditor",
           ("bad-signature",), 5, _edit_log),
)
ATTACK_NAMES = tuple(a.name for a in ATTACKS)


def attack_named(name: str) -> Attack:
    from coldsign.errors import UsageProblem

    for attack in ATTACKS:
        if attack.name == name:
            return attack
    raise UsageProblem(f"no attack named {name!r}", hint="choose one of: " + ", ".join(ATTACK_NAMES))
