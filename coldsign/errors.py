"""One error root for everything coldsign reports to a user.

Each subclass carries its exit code (ARCHITECTURE §5) and a message that says what was
wrong, where, and what to do. The CLI maps them to exit codes in one place
(`coldsign.cli.app.ColdsignGroup`); any other exception is a bug (exit 70).
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    USAGE = 2
    BAD_INPUT = 3
    REFUSED = 4
    VERIFICATION_FAILED = 5
    SECRET = 6
    ENVIRONMENT = 7
    INTERNAL = 70
    INTERRUPTED = 130


class ColdsignError(Exception):
    """Base of every user-facing error. `code` is a stable machine-readable name."""

    exit_status = ExitStatus.INTERNAL
    code = "internal"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 code: str | None = None, details: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details or []

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  → {self.hint}" if self.hint else text

    def to_json(self) -> dict:
        doc = {"code": self.code, "exit": int(self.exit_status), "message": self.message}
        if self.where:
            doc["where"] = self.where
        if self.hint:
            doc["hint"] = self.hint
        if self.details:
            doc["details"] = self.details
        return doc


class UsageProblem(ColdsignError):
    exit_status = ExitStatus.USAGE
    code = "usage"


class BadInput(ColdsignError):
    """Malformed or unsupported data: PSBT, QR, file, descriptor."""

    exit_status = ExitStatus.BAD_INPUT
    code = "bad-input"


class PSBTDecodeError(BadInput):
    code = "psbt-decode"


class DescriptorError(BadInput):
    code = "descriptor"


class TransactionDecodeError(BadInput):
    code = "tx-decode"


class NotFound(BadInput):
    code = "not-found"


class Refused(ColdsignError):
    """A safety check or the policy says no; nothing was signed or written.

    `details` lists every rule that refused: [{"code", "message", "index"?}].
    """

    exit_status = ExitStatus.REFUSED
    code = "refused"


class VerificationFailed(ColdsignError):
    """A signature, a consensus check or a log did not verify."""

    exit_status = ExitStatus.VERIFICATION_FAILED
    code = "verification-failed"


class SecretProblem(ColdsignError):
    """Wrong passphrase or password, bad mnemonic, corrupt keystore."""

    exit_status = ExitStatus.SECRET
    code = "secret"


class EnvironmentProblem(ColdsignError):
    """No camera, no libzbar, chain source unreachable, chain datadir locked."""

    exit_status = ExitStatus.ENVIRONMENT
    code = "environment"
