"""A faster ``__init__`` for the frozen, slotted dataclasses built once or more per replicated row.

A frozen dataclass' generated ``__init__`` assigns each field through ``object.__setattr__`` (to get
past its own ``__setattr__``, which raises ``FrozenInstanceError``). With ``slots=True`` the fields
are member descriptors whose ``__set__`` stores directly, which is what :func:`fast_init` calls
instead. Measured on the project's 2-core machine: 1.15 µs → 0.45 µs for a 4-field class; the
row path (XLogData, Insert, Change, plus a share of Begin/Commit/Transaction) saves about 2 µs per
row, ~20 % of the capture CPU. Everything else stays as the dataclass made it: equality, hashing,
repr, ordering, immutability (assignment still raises ``FrozenInstanceError``). Classes with a
``__post_init__`` are refused, since it would be skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of a frozen, slotted dataclass with one that sets the slots directly.

    Raises:
        TypeError: ``cls`` is not a frozen slotted dataclass, or has a ``__post_init__``.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass with slots=True")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which fast_init would skip")
    namespace: dict[str, Any] = {}
    arguments = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init or field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: only plain fields are supported")
        namespace[f"_set_{field.name}"] = cls.__dict__[field.name].__set__
        if field.default is dataclasses.MISSING:
            arguments.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            arguments.append(f"{field.name}=_default_{field.name}")
    body = "".join(f"    _set_{f.name}(self, {f.name})\n" for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    exec(f"def __init__(self, {', '.join(arguments)}):\n{body}", namespace)  # noqa: S102 - generated from field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
