"""What a ceremony-log entry may say: the event names and the shape of each event's payload.

The events follow a signing ceremony from start to end (issue 7 §1):

==================== =====================================================================
event                payload
==================== =====================================================================
ceremony-opened      participants (identity fingerprints or names), software_version,
                     package_sha256 (of the installed coldsign/**/*.py, see
                     `coldsign.ceremony.log.installed_package_digest`), machine
policy-installed     policy_sha256, version, [name]
psbt-received        sha256, source ("qr" | "file"), [bytes]
review-shown         summary_sha256
policy-decision      allowed, checks [{rule, ok, message}], [policy_sha256, version, name]
approvals-checked    ok, required, approvers [fingerprint], [request_sha256]
signatures-produced  psbt_sha256_before, psbt_sha256_after, inputs [index], txid,
                     outputs [{address, amount_sat, [change], [label]}]  (the auditor compares
                     them with the chain; `change: true` marks the wallet's own change, which
                     stays; `label`: the policy's address-book name of the destination)
refusal              rule, message
exported             format, frames, [sha256]
ceremony-closed      [outcome]
==================== =====================================================================

Builders (`psbt_received(...)` etc.) return the payload dict; `check_payload(event, payload)` is
what `CeremonyLog.append` runs on every payload, so a hand-built dict obeys the same rules: only
the listed fields, each of its type; whole numbers, never floats (canonical JSON has one spelling
of an integer but not of a float); bounded sizes.

NOTE: secrets never enter a payload. Beyond the fixed field lists, `check_payload` refuses any
string that looks like an extended private key (xprv/tprv/yprv/zprv/...), a WIF key, or twelve or
more lower-case words in a row (a mnemonic), so a careless caller cannot log one in a free-text field.

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from coldsign.errors import BadInput

CEREMONY_OPENED = "ceremony-opened"
POLICY_INSTALLED = "policy-installed"
PSBT_RECEIVED = "psbt-received"
REVIEW_SHOWN = "review-shown"
POLICY_DECISION = "policy-decision"
APPROVALS_CHECKED = "approvals-checked"
SIGNATURES_PRODUCED = "signatures-produced"
REFUSAL = "refusal"
EXPORTED = "exported"
CEREMONY_CLOSED = "ceremony-closed"

TEXT_MAX_CHARS = 1_000
LIST_MAX_ITEMS = 10_000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SECRET_LOOKING = re.compile(r"\b[xtyzuvYZUV]prv[1-9A-HJ-NP-Za-km-z]{50,}|\b[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}\b"
                             r"|\b(?:[a-z]{3,8}\s+){11,}[a-z]{3,8}\b")


# --- field types -----------------------------------------------------------------------------

def _text(value: Any) -> bool:
    # NOTE: a lone surrogate (the JSON escape \ud800 decodes to one) has no UTF-8 spelling, so a
    # payload holding one could never be written or re-serialized canonically: refuse it here.
    return isinstance(value, str) and 0 < len(value) <= TEXT_MAX_CHARS and _utf8(value)


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _version(value: Any) -> bool:
    return _count(value) or _text(value)


def _list_of(item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, list) and len(value) <= LIST_MAX_ITEMS and all(item(v) for v in value)
    return check


def _record(optional: dict[str, Callable[[Any], bool]] | None = None,
            **fields: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A dict with exactly `fields`, plus any of `optional`, each of its type."""
    optional = optional or {}

    def check(value: Any) -> bool:
        return (isinstance(value, dict) and set(fields) <= set(value) <= set(fields) | set(optional)
                and all({**fields, **optional}[k](v) for k, v in value.items()))
    return check


_check = {"rule": _text, "ok": _flag, "message": _text}
_output = {"address": _text, "amount_sat": _count}

# event -> (required fields, optional fields), each field name -> type check
SCHEMAS: dict[str, tuple[dict[str, Callable[[Any], bool]], dict[str, Callable[[Any], bool]]]] = {
    CEREMONY_OPENED: ({"participants": _list_of(_text), "software_version": _text, "package_sha256": _hex64,
                       "machine": _text}, {}),
    POLICY_INSTALLED: ({"policy_sha256": _hex64, "version": _version}, {"name": _text}),
    PSBT_RECEIVED: ({"sha256": _hex64, "source": lambda v: v in ("qr", "file")}, {"bytes": _count}),
    REVIEW_SHOWN: ({"summary_sha256": _hex64}, {}),
    POLICY_DECISION: ({"allowed": _flag, "checks": _list_of(_record(**_check))},
                      {"policy_sha256": _hex64, "version": _version, "name": _text}),
    APPROVALS_CHECKED: ({"ok": _flag, "required": _count, "approvers": _list_of(_text)},
                        {"request_sha256": _hex64}),
    SIGNATURES_PRODUCED: ({"psbt_sha256_before": _hex64, "psbt_sha256_after": _hex64,
                           "inputs": _list_of(_count), "txid": _hex64,
                           "outputs": _list_of(_record({"change": _flag, "label": _text}, **_output))}, {}),
    REFUSAL: ({"rule": _text, "message": _text}, {}),
    EXPORTED: ({"format": _text, "frames": _count}, {"sha256": _hex64}),
    CEREMONY_CLOSED: ({}, {"outcome": _text}),
}
EVENTS = tuple(SCHEMAS)


def check_payload(event: str, payload: dict) -> dict:
    """`payload` if it is a valid payload of `event`; BadInput naming the field otherwise."""
    if event not in SCHEMAS:
        raise BadInput(f"unknown ceremony event {event!r}", code="log-event",
                       hint=f"use one of: {', '.join(EVENTS)}")
    if not isinstance(payload, dict):
        raise BadInput(f"the payload of {event} is not an object", code="log-payload")
    required, optional = SCHEMAS[event]
    missing = [name for name in required if name not in payload]
    extra = sorted(set(payload) - set(required) - set(optional))
    if missing:
        raise BadInput(f"the payload of {event} lacks {missing[0]!r}", code="log-payload")
    if extra:
        raise BadInput(f"the payload of {event} has an unknown field {extra[0]!r}", code="log-payload")
    for name, value in payload.items():
        if not {**required, **optional}[name](value):
            raise BadInput(f"the payload of {event} has an invalid {name!r}", code="log-payload",
                           hint="see coldsign.ceremony.events for each field's type")
    _no_secrets(event, payload)
    return payload


def _no_secrets(event: str, value: Any) -> None:
    if isinstance(value, str) and _SECRET_LOOKING.search(value):
        raise BadInput(f"the payload of {event} holds text that looks like a private key or mnemonic; "
                       "secrets never go into the ceremony log", code="log-secret")
    if isinstance(value, dict):
        for item in value.values():
            _no_secrets(event, item)
    elif isinstance(value, list):
        for item in value:
            _no_secrets(event, item)


# --- builders --------------------------------------------------------------------------------

def ceremony_opened(participants: list[str], software_version: str, package_sha256: str, machine: str) -> dict:
    return check_payload(CEREMONY_OPENED, {"participants": list(participants), "software_version": software_version,
                                           "package_sha256": package_sha256, "machine": machine})


def policy_installed(policy_sha256: str, version: int | str, name: str | None = None) -> dict:
    doc = {"policy_sha256": policy_sha256, "version": version}
    if name is not None:
        doc["name"] = name
    return check_payload(POLICY_INSTALLED, doc)


def psbt_received(sha256: str, source: str, size: int | None = None) -> dict:
    doc: dict = {"sha256": sha256, "source": source}
    if size is not None:
        doc["bytes"] = size
    return check_payload(PSBT_RECEIVED, doc)


def review_shown(summary_sha256: str) -> dict:
    return check_payload(REVIEW_SHOWN, {"summary_sha256": summary_sha256})


def policy_decision(allowed: bool, checks: list[tuple[str, bool, str]], *, policy_sha256: str | None = None,
                    version: int | None = None, name: str | None = None) -> dict:
    """`checks`: (rule, ok, message) for each rule the policy evaluated; the policy that decided
    (its digest, version and name), so the auditor can name it for every withdrawal."""
    doc: dict = {"allowed": allowed, "checks": [{"rule": rule, "ok": ok, "message": message}
                                                for rule, ok, message in checks]}
    for key, value in (("policy_sha256", policy_sha256), ("version", version), ("name", name)):
        if value is not None:
            doc[key] = value
    return check_payload(POLICY_DECISION, doc)


def approvals_checked(ok: bool, required: int, approvers: list[str], request_sha256: str | None = None) -> dict:
    doc: dict = {"ok": ok, "required": required, "approvers": list(approvers)}
    if request_sha256 is not None:
        doc["request_sha256"] = request_sha256
    return check_payload(APPROVALS_CHECKED, doc)


def signatures_produced(psbt_sha256_before: str, psbt_sha256_after: str, inputs: list[int], txid: str,
                        outputs: list[tuple]) -> dict:
    """`outputs`: (address, amount in sat[, is_change[, label]]) of every output, in order."""
    def output(item: tuple) -> dict:
        doc = {"address": item[0], "amount_sat": item[1]}
        if len(item) > 2 and item[2]:
            doc["change"] = True
        if len(item) > 3 and item[3]:
            doc["label"] = item[3]
        return doc

    return check_payload(SIGNATURES_PRODUCED, {
        "psbt_sha256_before": psbt_sha256_before, "psbt_sha256_after": psbt_sha256_after,
        "inputs": list(inputs), "txid": txid, "outputs": [output(item) for item in outputs]})


def refusal(rule: str, message: str) -> dict:
    return check_payload(REFUSAL, {"rule": rule, "message": message})


def exported(format: str, frames: int, sha256: str | None = None) -> dict:
    doc: dict = {"format": format, "frames": frames}
    if sha256 is not None:
        doc["sha256"] = sha256
    return check_payload(EXPORTED, doc)


def ceremony_closed(outcome: str | None = None) -> dict:
    return check_payload(CEREMONY_CLOSED, {} if outcome is None else {"outcome": outcome})
