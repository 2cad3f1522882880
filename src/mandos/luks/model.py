"""Pure rules of mandos-luks: bindings, what a LUKS header holds, plans, crypttab, passphrases.

Rules of this module:

1. Nothing here runs a program, reads a file or a clock: headers arrive as the text cryptsetup
   printed, times as arguments, randomness as bytes.
2. A *binding* is one key slot that belongs to Mandos: the slot, the client's name, the TLS key
   ID the client presents, a generation (1 at ``bind``, +1 per rotation), when it was made, and
   its state. A rotation adds a second binding in state ``pending``; only when the server served
   the pending secret does the old one go (its slot killed) and the pending one become ``active``.
3. On LUKS2 a binding is a token of type ``mandos`` naming its slot (``keyslots``); LUKS1 has no
   tokens, so the same dictionaries live in a root-only JSON file per volume UUID.
4. Every check that can refuse a command runs before anything changes; it raises
   :class:`LuksError` with a one-line message.
"""

from __future__ import annotations

import enum
import json
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from mandos.core.errors import EX_DATAERR, EX_TEMPFAIL, MandosError
from mandos.core.values import KeyId, Secret

TOKEN_TYPE: Final = "mandos"  # noqa: S105 - a LUKS2 token type, not a password
RECORD_VERSION: Final = 1
#: Slots per header: LUKS1 has 8, LUKS2 32 (cryptsetup's LUKS2_KEYSLOTS_MAX).
MAX_SLOTS: Final = {1: 8, 2: 32}
#: Letters and digits only: no keyscript, shell or crypttab path can mangle them.
PASSPHRASE_ALPHABET: Final = string.ascii_letters + string.digits
#: 64 characters of 62 kinds: 64 * log2(62) = 381 bits of entropy (at least 256 required).
PASSPHRASE_LENGTH: Final = 64
INITRAMFS_OPTION: Final = "initramfs"


class LuksError(MandosError):
    """A mandos-luks command cannot be done; nothing was changed."""

    exit_code = EX_DATAERR


class RotationPending(MandosError):
    """The server did not serve the new secret in time; both slots stay."""

    exit_code = EX_TEMPFAIL


class State(enum.Enum):
    """Where a binding is in its life."""

    ACTIVE = "active"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Binding:
    """One Mandos key slot of one volume (see the module rules)."""

    slot: int
    client: str
    key_id: KeyId
    generation: int
    created: datetime
    state: State = State.ACTIVE
    token_id: int | None = field(default=None, compare=False)  # LUKS2 only

    def to_json(self) -> dict[str, Any]:
        """The token (LUKS2) or record-file entry (LUKS1) for this binding."""
        return {
            "type": TOKEN_TYPE,
            "keyslots": [str(self.slot)],
            "mandos_record": RECORD_VERSION,
            "client": self.client,
            "key_id": str(self.key_id),
            "generation": self.generation,
            "created": format_time(self.created),
            "state": self.state.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], token_id: int | None = None) -> Binding:
        """Read a token or record entry back; LuksError if it is not one of ours or is damaged."""
        where = f"token {token_id}" if token_id is not None else "record"
        if data.get("type") != TOKEN_TYPE:
            raise LuksError(f"{where} is not a Mandos binding")
        try:
            slots = _typed(data, "keyslots", list)
            generation = _typed(data, "generation", int)
            client = _typed(data, "client", str)
            if len(slots) != 1 or generation < 1 or not client:
                raise ValueError("keyslots, generation or client out of range")  # noqa: TRY301
            return cls(
                slot=int(slots[0]),
                client=client,
                key_id=KeyId.parse(_typed(data, "key_id", str)),
                generation=generation,
                created=parse_time(_typed(data, "created", str)),
                state=State(data.get("state", "active")),
                token_id=token_id,
            )
        except (KeyError, ValueError, TypeError, MandosError) as exc:
            raise LuksError(f"{where}: damaged Mandos binding ({exc})") from None


_T = TypeVar("_T")


def _typed(data: Mapping[str, Any], key: str, kind: type[_T]) -> _T:
    """DATA[KEY] if it is a KIND (bool is not an int here); TypeError otherwise."""
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def format_time(when: datetime) -> str:
    """UTC, to the second, with a Z: ``2026-12-02T11:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time` (any ISO 8601 time with a zone is accepted)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return when.astimezone(UTC)


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True)
class Header:
    """What mandos-luks needs of a LUKS header."""

    version: int
    uuid: str
    slots: frozenset[int]  # the active key slots
    tokens: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # LUKS2 only

    @property
    def max_slots(self) -> int:
        """How many key slots this format has."""
        return MAX_SLOTS[self.version]

    def free_slot(self) -> int:
        """The lowest unused key slot; LuksError if there is none."""
        for slot in range(self.max_slots):
            if slot not in self.slots:
                return slot
        raise LuksError(f"no free key slot (all {self.max_slots} are in use)")

    def mandos_tokens(self) -> list[Binding]:
        """Our bindings among the LUKS2 tokens, by token number."""
        return [
            Binding.from_json(tok, token_id=tid)
            for tid, tok in sorted(self.tokens.items())
            if tok.get("type") == TOKEN_TYPE
        ]


def parse_luks2_metadata(text: str) -> Header:
    """``cryptsetup luksDump --dump-json-metadata`` output of a LUKS2 header."""
    try:
        data = json.loads(text)
        slots = frozenset(int(k) for k in data["keyslots"])
        tokens = {int(k): v for k, v in data.get("tokens", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LuksError(f"cannot read the LUKS2 metadata: {exc}") from None
    return Header(version=2, uuid="", slots=slots, tokens=tokens)


def parse_luks_dump(text: str) -> tuple[int, str, frozenset[int]]:
    """Version, UUID and (LUKS1) enabled key slots from plain ``cryptsetup luksDump`` text."""
    version, uuid, slots = 0, "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Version" and value.isdigit():
            version = int(value)
        elif key == "UUID":
            uuid = value
        elif key.startswith("Key Slot ") and value == "ENABLED":
            slots.add(int(key.removeprefix("Key Slot ")))
    if version not in MAX_SLOTS or not uuid:
        raise LuksError("cannot read the LUKS header (no version or UUID in luksDump)")
    return version, uuid, frozenset(slots)


# --------------------------------------------------------------------------- LUKS1 record file


def parse_record_file(text: str, origin: str) -> list[Binding]:
    """The bindings in a LUKS1 record file."""
    try:
        data = json.loads(text)
        version = data.get("mandos_record")
        entries = _typed(data, "bindings", list)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LuksError(f"{origin}: damaged record file ({exc})") from None
    if version != RECORD_VERSION:
        raise LuksError(f"{origin}: unknown record version {version!r}")
    if not all(isinstance(e, dict) for e in entries):
        raise LuksError(f"{origin}: damaged record file (a binding is not an object)")
    return [Binding.from_json(e) for e in entries]


def render_record_file(uuid: str, bindings: Iterable[Binding]) -> str:
    """The LUKS1 record file for these bindings."""
    data = {
        "mandos_record": RECORD_VERSION,
        "uuid": uuid,
        "bindings": [b.to_json() for b in bindings],
    }
    return json.dumps(data, indent=2) + "\n"


# --------------------------------------------------------------------------- plans


def active(bindings: Sequence[Binding]) -> Binding | None:
    """The active binding; LuksError if a volume somehow has more than one."""
    found = [b for b in bindings if b.state is State.ACTIVE]
    if len(found) > 1:
        slots = ", ".join(str(b.slot) for b in found)
        raise LuksError(f"more than one active Mandos binding (slots {slots}); unbind one")
    return found[0] if found else None


def pending(bindings: Sequence[Binding]) -> Binding | None:
    """The binding a rotation has added and not yet finished, if any."""
    found = [b for b in bindings if b.state is State.PENDING]
    return found[0] if found else None


def check_bind(device: str, header: Header, bindings: Sequence[Binding]) -> int:
    """The slot ``bind`` will use; LuksError if the volume is bound already or full."""
    if bindings:
        slots = ", ".join(str(b.slot) for b in bindings)
        raise LuksError(f"{device}: already bound to Mandos (slot {slots}); use rotate or unbind")
    try:
        return header.free_slot()
    except LuksError as exc:
        raise LuksError(f"{device}: {exc}") from None


def check_unbind(
    device: str, header: Header, bindings: Sequence[Binding], slot: int | None
) -> Binding:
    """The binding ``unbind`` removes; LuksError if it is not ours or is the last slot."""
    if slot is None:
        if not bindings:
            raise LuksError(f"{device}: not bound to Mandos")
        if len(bindings) > 1:
            slots = ", ".join(str(b.slot) for b in bindings)
            raise LuksError(f"{device}: several Mandos slots ({slots}); name one with --slot")
        chosen = bindings[0]
    else:
        found = [b for b in bindings if b.slot == slot]
        if not found:
            raise LuksError(f"{device}: key slot {slot} is not a Mandos binding; not removing it")
        chosen = found[0]
    if chosen.slot in header.slots and header.slots <= {chosen.slot}:
        raise LuksError(
            f"{device}: key slot {chosen.slot} is the last one; removing it would leave the "
            "volume unopenable"
        )
    return chosen


def check_rotate(device: str, header: Header, bindings: Sequence[Binding]) -> tuple[Binding, int]:
    """The binding to replace and the slot for its successor; LuksError if not possible."""
    if (p := pending(bindings)) is not None:
        raise LuksError(
            f"{device}: a rotation to generation {p.generation} (slot {p.slot}) is pending; "
            "finish it with rotate --finish"
        )
    current = active(bindings)
    if current is None:
        raise LuksError(f"{device}: not bound to Mandos; use bind")
    try:
        return current, header.free_slot()
    except LuksError as exc:
        raise LuksError(f"{device}: {exc}") from None


def check_finish(device: str, bindings: Sequence[Binding]) -> tuple[Binding | None, Binding]:
    """(the binding to retire, the pending one); LuksError if no rotation is pending."""
    new = pending(bindings)
    if new is None:
        raise LuksError(f"{device}: no rotation is pending")
    old = active(bindings)
    return old, new


def finished(bindings: Sequence[Binding], old: Binding | None, new: Binding) -> list[Binding]:
    """The bindings after a rotation: the old one gone, the pending one active."""
    kept = [b for b in bindings if b != old and b != new]
    return [*kept, replace(new, state=State.ACTIVE)]


# --------------------------------------------------------------------------- passphrases


def make_passphrase(randbytes: Callable[[int], bytes]) -> Secret:
    """A fresh passphrase of PASSPHRASE_LENGTH letters and digits, unbiased (rejection sampling)."""
    size = len(PASSPHRASE_ALPHABET)
    limit = 256 - 256 % size  # bytes at or above this would favour the first letters
    out: list[str] = []
    while len(out) < PASSPHRASE_LENGTH:
        for byte in randbytes(PASSPHRASE_LENGTH):
            if byte < limit and len(out) < PASSPHRASE_LENGTH:
                out.append(PASSPHRASE_ALPHABET[byte % size])
    return Secret("".join(out).encode("ascii"))


# --------------------------------------------------------------------------- crypttab


def device_names(device: str, uuid: str, resolved: str = "") -> set[str]:
    """The ways a crypttab line can name this volume in its second field."""
    names = {device, f"UUID={uuid}", f"/dev/disk/by-uuid/{uuid}"}
    if resolved:
        names.add(resolved)
    return names


def add_initramfs_option(text: str, names: set[str]) -> tuple[str, list[str], bool]:
    """Give the crypttab lines of a volume the ``initramfs`` option (crypttab(5)).

    With it, cryptsetup-initramfs unlocks the volume in the initramfs, where Mandos runs (our
    hook hands the password to cryptroot-unlock); the root volume is unlocked there anyway.
    No keyscript is added: cryptsetup passes a keyscript the key-file field ("none") as its
    argument, which plugin-runner refuses, and the boot fails (found by the VM test).

    Returns the new text, the target names of the lines changed, and whether any line named
    the volume at all. Comments, blank lines and other volumes are left byte for byte.
    """
    out: list[str] = []
    changed: list[str] = []
    seen = False
    for line in text.splitlines(keepends=True):
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#") or fields[1] not in names:
            out.append(line)
            continue
        seen = True
        while len(fields) < 4:
            fields.append("none" if len(fields) == 2 else "luks")
        options = [o for o in fields[3].split(",") if o and o != "none"]
        if INITRAMFS_OPTION in options:
            out.append(line)
            continue
        fields[3] = ",".join([*options, INITRAMFS_OPTION])
        ending = "\n" if line.endswith("\n") else ""
        out.append(" ".join(fields) + ending)
        changed.append(fields[0])
    return "".join(out), changed, seen


# --------------------------------------------------------------------------- output


def binding_row(device: str, b: Binding) -> dict[str, Any]:
    """One binding as ``list --json`` shows it."""
    return {
        "device": device,
        "slot": b.slot,
        "client": b.client,
        "key_id": str(b.key_id),
        "generation": b.generation,
        "created": format_time(b.created),
        "state": b.state.value,
    }


def binding_line(device: str, b: Binding) -> str:
    """One binding as ``list`` prints it."""
    state = "" if b.state is State.ACTIVE else f" ({b.state.value})"
    return (
        f"{device}: slot {b.slot} client {b.client} key_id {b.key_id} "
        f"generation {b.generation} created {format_time(b.created)}{state}"
    )
