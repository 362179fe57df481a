"""Lsn: Postgres' text form, ordering, arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.capture.lsn import Lsn

U64 = st.integers(0, (1 << 64) - 1)


def test_parse_and_format_like_postgres() -> None:
    lsn = Lsn.parse("16/B374D848")
    assert lsn.value == (0x16 << 32) | 0xB374D848
    assert str(lsn) == "16/B374D848"
    assert repr(lsn) == "Lsn('16/B374D848')"
    assert int(lsn) == lsn.value
    assert str(Lsn(0x16B3748)) == "0/16B3748"
    assert Lsn.parse("0/016b3748") == Lsn.parse("0/16B3748")  # zero-padded (PostgreSQL 19) and lower case
    assert Lsn.parse(" FFFFFFFF/FFFFFFFF ").value == (1 << 64) - 1


@pytest.mark.parametrize("text", ["", "0", "0/", "/0", "0/123456789", "G/0", "0x1/2", "1/2/3", "-1/0"])
def test_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not an LSN"):
        Lsn.parse(text)


@pytest.mark.parametrize("value", [-1, 1 << 64, 1.5, "1", True])
def test_value_must_be_an_unsigned_64_bit_int(value: object) -> None:
    with pytest.raises(ValueError):
        Lsn(value)  # type: ignore[arg-type]


def test_order_arithmetic_truth_and_hash() -> None:
    a, b = Lsn.parse("0/FFFFFFFF"), Lsn.parse("1/0")
    assert a < b and b > a and max(a, b) is b and sorted([b, a]) == [a, b]
    assert a + 1 == b and b - a == 1 and a - b == -1
    assert not Lsn.ZERO and Lsn(1)
    assert {Lsn(5), Lsn(5)} == {Lsn(5)}
    with pytest.raises(ValueError):
        Lsn.ZERO + -1
    with pytest.raises(TypeError):
        a + 1.0  # type: ignore[operator]
    with pytest.raises(TypeError):
        a - 1  # type: ignore[operator]
    with pytest.raises(AttributeError):
        a.value = 3  # type: ignore[misc]


@given(U64)
def test_text_round_trip(value: int) -> None:
    lsn = Lsn(value)
    assert Lsn.parse(str(lsn)) == lsn


@given(U64, U64)
def test_order_is_numeric_order(x: int, y: int) -> None:
    assert (Lsn(x) < Lsn(y)) == (x < y)
    assert (Lsn(x) == Lsn(y)) == (x == y)
