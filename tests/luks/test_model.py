"""The pure rules of mandos-luks: records, header parsing, plans, passphrases, crypttab."""

from __future__ import annotations

import json
import string
from contextlib import suppress
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.values import KeyId
from mandos.luks import model as m

KEY = KeyId("AB" * 32)
WHEN = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


def binding(slot: int = 1, state: m.State = m.State.ACTIVE, generation: int = 1) -> m.Binding:
    return m.Binding(slot, "client1", KEY, generation, WHEN, state)


def header(*slots: int, version: int = 2) -> m.Header:
    return m.Header(version, "uuid-1", frozenset(slots))


bindings = st.builds(
    m.Binding,
    slot=st.integers(0, 31),
    client=st.text(min_size=1),
    key_id=st.binary(min_size=32, max_size=32).map(lambda b: KeyId(b.hex().upper())),
    generation=st.integers(1, 10**6),
    created=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=0)),
    state=st.sampled_from(m.State),
)


@given(bindings)
def test_binding_json_round_trip(b: m.Binding) -> None:
    token = json.loads(json.dumps(b.to_json()))
    assert token["type"] == "mandos"
    assert token["keyslots"] == [str(b.slot)]
    assert m.Binding.from_json(token) == b


@given(
    st.dictionaries(st.text(), st.one_of(st.none(), st.integers(), st.text(), st.lists(st.text())))
)
def test_from_json_raises_only_luks_error(data: dict[str, object]) -> None:
    with suppress(m.LuksError):
        m.Binding.from_json({**data, "type": "mandos"})


@given(st.text())
def test_record_file_parser_raises_only_luks_error(text: str) -> None:
    with suppress(m.LuksError):
        m.parse_record_file(text, "r.json")


@given(st.lists(bindings, max_size=4))
def test_record_file_round_trip(bs: list[m.Binding]) -> None:
    assert m.parse_record_file(m.render_record_file("u", bs), "r") == bs


def test_damaged_records_name_the_problem() -> None:
    with pytest.raises(m.LuksError, match="token 3 is not a Mandos binding"):
        m.Binding.from_json({"type": "clevis"}, token_id=3)
    with pytest.raises(m.LuksError, match="token 0: damaged Mandos binding"):
        m.Binding.from_json({**binding().to_json(), "generation": True}, token_id=0)
    with pytest.raises(m.LuksError, match="unknown record version 7"):
        m.parse_record_file('{"mandos_record": 7, "bindings": []}', "r")


@given(st.text())
def test_luks_dump_parser_raises_only_luks_error(text: str) -> None:
    with suppress(m.LuksError):
        m.parse_luks_dump(text)
    with suppress(m.LuksError):
        m.parse_luks2_metadata(text)


def test_luks1_dump() -> None:
    text = "Version:       \t1\nUUID:          \tu-1\n\nKey Slot 0: ENABLED\nKey Slot 1: DISABLED\n"
    assert m.parse_luks_dump(text) == (1, "u-1", frozenset({0}))


def test_luks2_metadata_keeps_every_token() -> None:
    meta = {"keyslots": {"0": {}, "3": {}}, "tokens": {"1": {"type": "other", "keyslots": ["0"]}}}
    h = m.parse_luks2_metadata(json.dumps(meta))
    assert h.slots == {0, 3}
    assert h.tokens == {1: {"type": "other", "keyslots": ["0"]}}
    assert h.mandos_tokens() == []


def test_free_slot_and_full_headers() -> None:
    assert header(0, 1, 3).free_slot() == 2
    assert header(*range(8), version=1).max_slots == 8
    with pytest.raises(m.LuksError, match=r"no free key slot \(all 8 are in use\)"):
        header(*range(8), version=1).free_slot()
    with pytest.raises(m.LuksError, match="all 32"):
        header(*range(32)).free_slot()


def test_plans() -> None:
    assert m.check_bind("d", header(0), []) == 1
    with pytest.raises(m.LuksError, match="already bound"):
        m.check_bind("d", header(0, 1), [binding()])
    assert m.check_unbind("d", header(0, 1), [binding()], None) == binding()
    with pytest.raises(m.LuksError, match="last one"):
        m.check_unbind("d", header(1), [binding()], 1)
    with pytest.raises(m.LuksError, match="slot 0 is not a Mandos binding"):
        m.check_unbind("d", header(0, 1), [binding()], 0)
    two = [binding(), binding(2, m.State.PENDING, 2)]
    with pytest.raises(m.LuksError, match="several Mandos slots"):
        m.check_unbind("d", header(0, 1, 2), two, None)
    assert m.check_rotate("d", header(0, 1), [binding()]) == (binding(), 2)
    with pytest.raises(m.LuksError, match="pending; finish it"):
        m.check_rotate("d", header(0, 1, 2), two)
    assert m.check_finish("d", two) == (two[0], two[1])
    assert m.finished(two, two[0], two[1]) == [binding(2, m.State.ACTIVE, 2)]
    with pytest.raises(m.LuksError, match="no rotation is pending"):
        m.check_finish("d", [binding()])


def test_passphrase_is_long_printable_and_draws_every_byte_fairly() -> None:
    p = m.make_passphrase(lambda n: bytes(range(256))[:n])
    text = p.reveal().decode("ascii")
    assert len(text) == m.PASSPHRASE_LENGTH
    assert set(text) <= set(string.ascii_letters + string.digits)
    # Bytes 248..255 would bias the first letters: they are skipped, not folded in.
    skipped = m.make_passphrase(lambda n: bytes([255] * 8 + [0] * (n - 8)))
    assert skipped.reveal() == b"a" * m.PASSPHRASE_LENGTH
    assert m.PASSPHRASE_LENGTH * 5.95 >= 256  # log2(62) > 5.95 bits per character


CRYPTTAB = "# comment\n\ncryptroot UUID=u1 none luks,discard\nswap /dev/sdb2 /dev/urandom swap\n"


def test_initramfs_option_is_added_once() -> None:
    names = m.device_names("/dev/sda2", "u1")
    text, changed, seen = m.add_initramfs_option(CRYPTTAB, names)
    assert seen
    assert changed == ["cryptroot"]
    assert text.splitlines()[2] == "cryptroot UUID=u1 none luks,discard,initramfs"
    assert text.splitlines()[:2] == CRYPTTAB.splitlines()[:2]
    assert text.splitlines()[3] == CRYPTTAB.splitlines()[3]
    again, changed_again, _ = m.add_initramfs_option(text, names)
    assert (again, changed_again) == (text, [])


def test_missing_fields_are_filled_and_no_keyscript_is_added_or_touched() -> None:
    text, _, _ = m.add_initramfs_option("root /dev/sda2\n", {"/dev/sda2"})
    assert text == "root /dev/sda2 none luks,initramfs\n"
    text, _, _ = m.add_initramfs_option("root /dev/sda2 none keyscript=/bin/x\n", {"/dev/sda2"})
    assert text == "root /dev/sda2 none keyscript=/bin/x,initramfs\n"
    text, _, _ = m.add_initramfs_option("root /dev/sda2 /key none\n", {"/dev/sda2"})
    assert text == "root /dev/sda2 /key initramfs\n"


def test_a_volume_without_a_line_is_reported() -> None:
    text, changed, seen = m.add_initramfs_option(CRYPTTAB, {"/dev/nothere"})
    assert (text, changed, seen) == (CRYPTTAB, [], False)


@given(st.lists(st.text(alphabet=" \tabcUID=/#,\n", max_size=30), max_size=8))
def test_crypttab_edit_leaves_other_lines_byte_for_byte(lines: list[str]) -> None:
    text = "".join(ln + "\n" for ln in lines)
    new, _changed, _ = m.add_initramfs_option(text, {"UUID=u1"})
    assert len(new.splitlines()) == len(text.splitlines())
    for old_line, new_line in zip(text.splitlines(), new.splitlines(), strict=True):
        fields = old_line.split()
        if len(fields) < 2 or fields[0].startswith("#") or fields[1] != "UUID=u1":
            assert new_line == old_line
    assert m.add_initramfs_option(new, {"UUID=u1"})[1] == []


def test_the_rules_module_is_pure() -> None:
    """mandos.luks.model, like mandos.core, imports no I/O library."""
    import subprocess
    import sys

    forbidden = ["asyncio", "socket", "ctypes", "subprocess", "dbus_fast", "zeroconf"]
    probe = f"import sys, mandos.luks.model; print(sorted(set({forbidden!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
