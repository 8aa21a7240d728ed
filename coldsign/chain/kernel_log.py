"""Bitcoin Core's reject reasons for `RegtestChain.submit_block`, read from libbitcoinkernel's
log: `KernelLog` collects the lines, `reject_detail` picks the reason out of them."""

from __future__ import annotations

import re

_LOG_LINES_KEPT = 50


class KernelLog:
    """One process-wide kernel log connection; lines are kept only while a block is processed.

    The kernel's reject reason (e.g. "bad-txns-in-belowout") only reaches its log, so
    `submit_block` reads it from here.
    """

    _connection = None
    lines: list[str] | None = None

    @classmethod
    def start(cls) -> None:
        import pbk

        if cls._connection is None:
            cls._connection = pbk.LoggingConnection(cls._receive)
        cls.lines = []

    @classmethod
    def stop(cls) -> list[str]:
        lines, cls.lines = cls.lines or [], None
        return lines

    @staticmethod
    def _receive(message):
        if KernelLog.lines is not None and len(KernelLog.lines) < _LOG_LINES_KEPT:
            KernelLog.lines.append(message.strip())


def reject_detail(lines: list[str]) -> str | None:
    """The kernel's reject reason from its log: the text after the failing step's name."""
    for line in lines:
        match = re.search(r"\[error\] (?:ConnectTip|AcceptBlock|ProcessNewBlock)[^:]*: (.*)$", line)
        if match:
            return re.sub(r"^ConnectBlock [0-9a-f]{64} failed, ", "", match.group(1).strip())
    for line in lines:
        match = re.search(r"\[error\] (.*)$", line)
        if match:
            return match.group(1).strip()
    return None
