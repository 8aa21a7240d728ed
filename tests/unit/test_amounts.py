"""Amounts as people type them: exact satoshis, never floats."""

import pytest

from coldsign.amounts import format_btc, parse_amount
from coldsign.errors import BadInput


@pytest.mark.parametrize("text, sat", [
    ("0.5", 50_000_000), ("0.5 BTC", 50_000_000), ("1btc", 100_000_000), ("0.00000001", 1),
    ("50000sat", 50_000), ("50000 sats", 50_000), ("  12 SAT ", 12), ("21000000", 2_100_000_000_000_000),
    ("0.1", 10_000_000),   # a float would give 10000000.000000002
    (".5", 50_000_000), ("5.", 500_000_000), ("0.100000000", 10_000_000), ("0000000000000000000001 sat", 1),
])
def test_amounts(text, sat):
    assert parse_amount(text) == sat


@pytest.mark.parametrize("text, message", [
    ("abc", "amount 'abc' is not a number"),
    ("0.000000001", "amount '0.000000001' has more than 8 decimals (below one satoshi)"),
    ("0", "amount '0' must be above zero and at most 21,000,000 BTC"),
    ("21000000.00000001", "amount '21000000.00000001' must be above zero and at most 21,000,000 BTC"),
    ("-1", "amount '-1' must be above zero and at most 21,000,000 BTC"),
    ("nan", "amount 'nan' is not a number"),
    # Decimal/int would read these: a crash (exit 70) or an amount other than the one a reviewer reads
    ("1e1000000", "amount '1e1000000' is not a number"),                  # decimal.Overflow before
    ("9" * 5000 + "sat", "amount '" + "9" * 37 + "...' must be above zero and at most 21,000,000 BTC"),
    ("9" * 5000, "amount '" + "9" * 37 + "...' must be above zero and at most 21,000,000 BTC"),  # int() limit
    ("1_000", "amount '1_000' is not a number"),                          # 1000 BTC before
    ("\u0661", "amount '\u0661' is not a number"),                          # Arabic-Indic one: 1 BTC before
    ("\u0661\u0662sat", "amount '\u0661\u0662sat' is not a number"),
    ("1e-8", "amount '1e-8' is not a number"),
    ("-0.5 BTC", "amount '-0.5 BTC' must be above zero and at most 21,000,000 BTC"),
])
def test_bad_amounts(text, message):
    with pytest.raises(BadInput) as err:
        parse_amount(text)
    assert err.value.message == message


def test_zero_when_allowed_and_formatting():
    assert parse_amount("0 sat", allow_zero=True) == 0
    assert format_btc(125_000_000) == "1.25000000 BTC"
    assert format_btc(1) == "0.00000001 BTC" and format_btc(-150) == "-0.00000150 BTC"
