"""Frozen value classes without ``dataclasses``, for modules on the client's boot path.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``): about 1.2 MiB
of mandos-client's peak RSS (docs/performance.md, "Client"). A subclass lists its fields in
``__slots__``, sets them once with ``_init`` and gets what ``@dataclass(frozen=True,
slots=True)`` would give it: equality with its own class only, hashing, a ``Name(field=...)``
repr, copying and pickling, ``_replace``, and no assignment after ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from typing import ClassVar, Self


class Frozen:
    """Base of frozen value classes; ``_compared`` (default: every slot) is what ==, hash and
    repr see, so a field can be kept out of them (a share's words)."""

    __slots__ = ()
    _compared: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        if not cls.__dict__.get("_compared"):
            cls._compared = tuple(cls.__dict__.get("__slots__", ()))

    def _init(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _replace(self, **changes: object) -> Self:
        """A copy with ``changes`` (every slot is an argument of the subclass's ``__init__``)."""
        names: tuple[str, ...] = self.__slots__
        fields = {name: getattr(self, name) for name in names}
        return type(self)(**{**fields, **changes})

    def _key(self) -> tuple[object, ...]:
        # A list, not a generator: half the time, and a registry of 10,000 clients hashes
        # and compares 20,000 key IDs and fingerprints as it is built.
        return tuple([getattr(self, name) for name in self._compared])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._compared)
        return f"{type(self).__qualname__}({shown})"

    if not TYPE_CHECKING:  # pragma: no branch - hidden from mypy, which would allow any name

        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        names: tuple[str, ...] = self.__slots__
        return (_rebuild, (type(self), {name: getattr(self, name) for name in names}))


def _rebuild(cls: type[Frozen], fields: dict[str, object]) -> Frozen:
    """An unpickled or copied instance: its fields as they were (as dataclasses, no __init__)."""
    obj = cls.__new__(cls)
    obj._init(**fields)
    return obj
