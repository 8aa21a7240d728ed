"""Bitcoin amounts as people write them (pure): "0.5", "0.5 BTC", "50000sat", "50000 sat" → satoshis,
and back to "0.50000000 BTC". Exact: decimals, never floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from coldsign.errors import BadInput

SAT_PER_BTC = 100_000_000
MAX_MONEY_SAT = 21_000_000 * SAT_PER_BTC
_SAT_RE = re.compile(r"^([0-9]+)\s*sats?$", re.IGNORECASE)
_BTC_RE = re.compile(r"^(.*?)\s*btc$", re.IGNORECASE)
_HINT = "give BTC like 0.5 or \"0.5 BTC\", or satoshis like 50000sat"


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """Satoshis of `text`: BTC (up to 8 decimals, optional "BTC") or "<n> sat"; BadInput otherwise."""
    stripped = str(text).strip()
    match = _SAT_RE.match(stripped)
    if match:
        sat = int(match.group(1))
    else:
        btc_match = _BTC_RE.match(stripped)
        number = btc_match.group(1) if btc_match else stripped
        try:
            btc = Decimal(number)
        except InvalidOperation:
            raise BadInput(f"amount {text!r} is not a number", hint=_HINT) from None
        if not btc.is_finite() or (btc * SAT_PER_BTC) != (btc * SAT_PER_BTC).to_integral_value():
            raise BadInput(f"amount {text!r} has more than 8 decimals (below one satoshi)", hint=_HINT)
        sat = int(btc * SAT_PER_BTC)
    if not (0 if allow_zero else 1) <= sat <= MAX_MONEY_SAT:
        raise BadInput(f"amount {text!r} must be {'at least' if allow_zero else 'above'} zero and at most "
                       f"21,000,000 BTC")
    return sat


def format_btc(sat: int) -> str:
    """"1.25000000 BTC" (exact, 8 decimals; negative amounts keep their sign)."""
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), SAT_PER_BTC)
    return f"{sign}{whole}.{frac:08d} BTC"
