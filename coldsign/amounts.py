"""Bitcoin amounts as people write them (pure): "0.5", "0.5 BTC", "50000sat", "50000 sat" → satoshis,
and back to "0.50000000 BTC". Exact: decimals, never floats.

Only plain ASCII digits with an optional decimal point are read. NOTE: Python's `Decimal` and
`int` would also take "1_000", "1e3" and non-ASCII digits such as "١" (Arabic-Indic one): an
amount a reviewer reads one way must not be paid another, so those are refused; and a number is
checked for length before it is converted, so a pasted wall of digits is a clear refusal rather
than a crash.
"""

from __future__ import annotations

import re

from coldsign.errors import BadInput

SAT_PER_BTC = 100_000_000
MAX_MONEY_SAT = 21_000_000 * SAT_PER_BTC
_SAT_RE = re.compile(r"^([0-9]+)\s*sats?$", re.IGNORECASE | re.ASCII)
_BTC_RE = re.compile(r"^(.*?)\s*btc$", re.IGNORECASE)
_NUMBER_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_MAX_DIGITS = len(str(MAX_MONEY_SAT))   # more significant digits than this is out of range anyway
_HINT = "give BTC like 0.5 or \"0.5 BTC\", or satoshis like 50000sat"


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """Satoshis of `text`: BTC (up to 8 decimals, optional "BTC") or "<n> sat"; BadInput otherwise."""
    stripped = str(text).strip()
    match = _SAT_RE.match(stripped)
    if match:
        sat = _whole(match.group(1), text, allow_zero)
    else:
        btc_match = _BTC_RE.match(stripped)
        number = btc_match.group(1) if btc_match else stripped
        negative = number.startswith("-")
        parts = _NUMBER_RE.fullmatch(number[1:] if negative else number)
        if parts is None or not (parts.group(1) or parts.group(2)):
            raise BadInput(f"amount {_shown(text)!r} is not a number", hint=_HINT)
        whole, fraction = parts.group(1), (parts.group(2) or "").rstrip("0")
        if len(fraction) > 8:
            raise BadInput(f"amount {_shown(text)!r} has more than 8 decimals (below one satoshi)", hint=_HINT)
        sat = _whole(whole + fraction.ljust(8, "0"), text, allow_zero)
        if negative and sat:
            raise _out_of_range(text, allow_zero)
    if not (0 if allow_zero else 1) <= sat <= MAX_MONEY_SAT:
        raise _out_of_range(text, allow_zero)
    return sat


def _whole(digits: str, text: str, allow_zero: bool) -> int:
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        raise _out_of_range(text, allow_zero)
    return int(significant or "0")


def _out_of_range(text: str, allow_zero: bool) -> BadInput:
    return BadInput(f"amount {_shown(text)!r} must be {'at least' if allow_zero else 'above'} zero and at most "
                    f"21,000,000 BTC")


def _shown(text: str) -> str:
    text = str(text)
    return text if len(text) <= 40 else f"{text[:37]}..."


def format_btc(sat: int) -> str:
    """"1.25000000 BTC" (exact, 8 decimals; negative amounts keep their sign)."""
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), SAT_PER_BTC)
    return f"{sign}{whole}.{frac:08d} BTC"
