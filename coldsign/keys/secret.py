"""A wrapper that keeps secrets out of reprs, logs and tracebacks."""

from __future__ import annotations


class Secret:
    """Holds a secret value; its repr and str never show it. Call `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # NOTE: never pickle a secret into a file or another process
        raise TypeError("a Secret cannot be pickled")
