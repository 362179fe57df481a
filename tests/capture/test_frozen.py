"""fast_init keeps every dataclass behaviour except the slow constructor."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from meshlogs.capture._frozen import fast_init
from meshlogs.capture.txbuilder import Transaction


@fast_init
@dataclass(frozen=True, slots=True, order=True)
class Point:
    x: int
    y: int = 7


def test_behaves_like_the_dataclass() -> None:
    p = Point(1)
    assert p == Point(1, 7) == Point(x=1, y=7) and p != Point(1, 8)
    assert p < Point(2) and hash(p) == hash(Point(1, 7))
    assert repr(p) == "Point(x=1, y=7)"
    assert dataclasses.replace(p, y=3) == Point(1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, 3)  # type: ignore[call-arg]
    assert Point.__init__.__qualname__ == "Point.__init__"


def test_transaction_defaults_survive() -> None:
    tx = Transaction(1, None, None, None, ())  # type: ignore[arg-type]
    assert (tx.part, tx.final) == (0, True)


def test_refuses_what_it_cannot_do_faithfully() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclass(slots=True)
    class NotFrozen:
        x: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = field(default_factory=list)

    for cls in (NoSlots, NotFrozen, PostInit, Factory, int):
        with pytest.raises(TypeError):
            fast_init(cls)
