"""The five mandos-luks commands, composed from the pure rules and the adapters.

Order inside every command that changes a header: read and check everything first (each
device, the existing passphrase, the keys), then change all headers inside one
:func:`~mandos.luks.store.changing` block, so that any failure puts every header back.
Report lines (one per change) go to ``Env.report``; the section goes to ``--output``/stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from mandos.client.args import ConnectTarget
from mandos.core.durations import format_rfc3339
from mandos.core.values import Secret
from mandos.keygen.render import KeySpec
from mandos.keygen.threshold import taken
from mandos.luks import fetch, host
from mandos.luks import model as m
from mandos.luks.cryptsetup import Cryptsetup
from mandos.luks.store import BindingStore, Volume, changing

ROTATING_DIR = "rotating"  # under the key directory: the new keys while a rotation is pending


@dataclass
class Env:
    """What every command works with; tests build one with their own paths."""

    cs: Cryptsetup
    store: BindingStore
    backup_dir: Path
    keydir: Path
    report: TextIO = field(default_factory=lambda: sys.stderr)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    randbytes: Callable[[int], bytes] = secrets.token_bytes

    held: list[str] | None = None

    def say(self, line: str) -> None:
        """One report line (what changed); held back inside :meth:`changes`."""
        if self.held is not None:
            self.held.append(line)
            return
        self.report.write(line + "\n")
        self.report.flush()

    @contextlib.contextmanager
    def changes(self, vols: Sequence[Volume]) -> Iterator[None]:
        """All-or-nothing header changes; their report lines appear only if all succeeded."""
        self.held = []
        try:
            with changing(self.store, vols, self.backup_dir):
                yield
            lines = self.held
        finally:
            self.held = None
        for line in lines:
            self.say(line)

    def show(self, line: str) -> None:
        """One line of the command's answer (list, test)."""
        self.out.write(line + "\n")
        self.out.flush()


def _where(env: Env, vol: Volume) -> str:
    if vol.header.version == 2:
        return "a LUKS2 token"
    return str(env.store.record_path(vol.header.uuid))


def read_existing(key_file: str | None) -> Secret:
    """The volume's existing passphrase: from KEY_FILE ('-': stdin), or asked on the terminal."""
    if key_file == "-":
        return Secret(sys.stdin.buffer.read())
    if key_file is not None:
        try:
            return Secret(Path(key_file).read_bytes())
        except OSError as exc:
            raise m.LuksError(f"{key_file}: {exc.strerror}") from None
    try:
        with Path("/dev/tty").open("r+") as tty:
            typed = getpass.getpass("Existing LUKS passphrase: ", stream=tty)
    except OSError:
        raise m.LuksError(
            "no terminal to ask for the existing passphrase; use --key-file"
        ) from None
    return Secret(typed.encode("utf-8"))


def _key_spec(opts: argparse.Namespace, name: str) -> KeySpec:
    return host.key_spec(name, opts.key_type, opts.subkey_type)


def _finish_host(env: Env, opts: argparse.Namespace, vols: Sequence[Volume], *, tab: bool) -> None:
    if tab and not opts.no_crypttab:
        for line in host.wire_crypttab(
            Path(opts.crypttab), [(v.device, v.header.uuid) for v in vols]
        ):
            env.say(line)
    if not opts.no_initramfs:
        env.say(host.rebuild_initramfs(opts.update_initramfs))


# --------------------------------------------------------------------------- bind


def bind(env: Env, opts: argparse.Namespace) -> int:
    """Add a fresh random passphrase to a free slot of every device and record the binding."""
    vols = [env.store.load(d) for d in opts.devices]
    slots = [m.check_bind(v.device, v.header, v.bindings) for v in vols]
    existing = read_existing(opts.key_file)
    for v in vols:
        if not env.cs.opens(v.device, existing):
            raise m.LuksError(f"{v.device}: the existing passphrase opens no key slot")
    name = host.client_name(opts.name)
    if opts.split is not None and (old := taken(opts.split, name)):
        raise m.LuksError(f"refusing to overwrite {old[0]}")
    if not host.have_keys(env.keydir):
        host.make_keys(env.keydir, _key_spec(opts, name))
        env.say(f"{env.keydir}: made the client's TLS and OpenPGP keys")
    keys = host.read_keys(env.keydir)
    passphrase = m.make_passphrase(env.randbytes)
    make = host.section_maker(name, keys, ssh=not opts.no_ssh)
    now = env.now()
    with env.changes(vols):
        for v, slot in zip(vols, slots, strict=True):
            env.cs.add_key(v.device, existing, passphrase, slot)
            binding = m.Binding(slot, name, keys.key_id, 1, now)
            env.store.add(v, binding)
            env.say(f"{v.device}: added key slot {slot} for {name} (generation 1)")
            env.say(f"{v.device}: recorded the binding in {_where(env, v)}")
        where = host.write_sections(name, passphrase, make, opts.output, opts.split, replace=False)
    env.say(f"wrote the clients.conf section for {name} to {where}")
    _finish_host(env, opts, vols, tab=True)
    return 0


# --------------------------------------------------------------------------- list


def list_bindings(env: Env, opts: argparse.Namespace) -> int:
    """One line (or JSON object) per binding."""
    rows = []
    for device in opts.devices:
        vol = env.store.load(device)
        rows += [(device, b) for b in sorted(vol.bindings, key=lambda b: b.slot)]
    if opts.json:
        env.show(json.dumps([m.binding_row(d, b) for d, b in rows], indent=2))
    else:
        for d, b in rows:
            env.show(m.binding_line(d, b))
    return 0


# --------------------------------------------------------------------------- unbind


def unbind(env: Env, opts: argparse.Namespace) -> int:
    """Remove a Mandos key slot and its record; never the last key slot."""
    vol = env.store.load(opts.device)
    binding = m.check_unbind(vol.device, vol.header, vol.bindings, opts.slot)
    with env.changes([vol]):
        env.store.remove(vol, binding)
        if binding.slot in vol.header.slots:
            env.cs.kill_slot(vol.device, binding.slot)
    env.say(f"{vol.device}: removed key slot {binding.slot} and its Mandos record")
    return 0


# --------------------------------------------------------------------------- test


def test(env: Env, opts: argparse.Namespace) -> int:
    """Fetch now, decrypt, try the passphrase on each device; 0 only if every step passed."""
    vols = [env.store.load(d) for d in opts.devices]
    keys = fetch.key_files(env.keydir)
    answers = fetch.ask_servers(keys, opts.connect)
    if not answers:
        env.show("fetch: failed: no Mandos server found")
        return m.RotationPending.exit_code
    ok = True
    for a in answers:
        if a.secret is None:
            env.show(f"{a.server}: {a.failed}: failed: {a.reason}")
            ok = False
            continue
        env.show(f"{a.server}: fetch: ok; decrypt: ok{fetch.share_note(a)}")
    found = fetch.passphrases(answers)
    if not found:
        env.show("combine: failed: too few shares of one set for its threshold")
        ok = False
    for p in found:
        for v in vols:
            opened = env.cs.opens(v.device, p.secret)
            verdict = "open: ok" if opened else "open: failed: the secret does not open it"
            env.show(f"{p.source}: {v.device}: {verdict}")
            ok = ok and opened
    return 0 if ok else 1


# --------------------------------------------------------------------------- rotate


def _unlock_secret(
    env: Env, vols: Sequence[Volume], key_file: str | None, targets: Sequence[ConnectTarget]
) -> Secret:
    """A passphrase that opens every volume: --key-file's, or the one the server serves now."""
    if key_file is not None:
        existing = read_existing(key_file)
        for v in vols:
            if not env.cs.opens(v.device, existing):
                raise m.LuksError(f"{v.device}: the --key-file passphrase opens no key slot")
        return existing
    answers = fetch.ask_servers(fetch.key_files(env.keydir), targets)
    reasons = [f"{a.server}: {a.reason}" for a in answers if a.secret is None]
    for p in fetch.passphrases(answers):
        if all(env.cs.opens(v.device, p.secret) for v in vols):
            return p.secret
        reasons.append(f"{p.source}: its secret opens no slot")
    if answers and not reasons:
        reasons.append("too few shares of one set for its threshold")
    why = "; ".join(reasons) or "no Mandos server found"
    raise m.LuksError(f"cannot unlock the volumes with the served secret ({why}); use --key-file")


def rotate(env: Env, opts: argparse.Namespace) -> int:
    """Phase 1 (new slot, new section), then phase 2 (wait for it to be served, retire old)."""
    if opts.finish:
        return _complete(env, opts, [env.store.load(d) for d in opts.devices])
    vols = [env.store.load(d) for d in opts.devices]
    plans = [m.check_rotate(v.device, v.header, v.bindings) for v in vols]
    names = {old.client for old, _ in plans}
    if len(names) > 1:
        raise m.LuksError(f"the devices belong to different clients ({', '.join(sorted(names))})")
    name = names.pop()
    generation = max(old.generation for old, _ in plans) + 1
    existing = _unlock_secret(env, vols, opts.key_file, opts.connect)
    old_keys = host.read_keys(env.keydir)
    rotating = env.keydir / ROTATING_DIR
    try:
        new_keys = old_keys
        if opts.keys:
            host.make_keys(rotating, _key_spec(opts, name))
            new_keys = host.read_keys(rotating)
            env.say(f"{rotating}: made new TLS and OpenPGP keys (key_id {new_keys.key_id})")
        also = (old_keys,) if opts.keys else ()
        passphrase = m.make_passphrase(env.randbytes)
        make = host.section_maker(name, new_keys, also, ssh=not opts.no_ssh)
        now = env.now()
        with env.changes(vols):
            for v, (_old, slot) in zip(vols, plans, strict=True):
                env.cs.add_key(v.device, existing, passphrase, slot)
                new = m.Binding(slot, name, new_keys.key_id, generation, now, m.State.PENDING)
                env.store.add(v, new)
                env.say(f"{v.device}: added key slot {slot} for {name} (generation {generation})")
            where = host.write_sections(name, passphrase, make, opts.output, opts.split,
                                        replace=True)  # fmt: skip
    except BaseException:
        if opts.keys:  # nothing refers to the new keys: do not leave them lying around
            shutil.rmtree(rotating, ignore_errors=True)
        raise
    env.say(f"wrote the clients.conf section of generation {generation} to {where}")
    return _complete(env, opts, [env.store.load(d) for d in opts.devices])


def _complete(env: Env, opts: argparse.Namespace, vols: Sequence[Volume]) -> int:
    """Wait until a server serves the pending secret and it opens every volume; retire the old."""
    plans = [m.check_finish(v.device, v.bindings) for v in vols]
    rotating = env.keydir / ROTATING_DIR
    keydir = env.keydir
    new_ids = {new.key_id for _, new in plans}
    if host.have_keys(rotating) and host.read_keys(rotating).key_id in new_ids:
        keydir = rotating
    keys = fetch.key_files(keydir)
    deadline = time.monotonic() + opts.timeout.total_seconds()
    last = "no Mandos server found"
    while True:
        answers = fetch.ask_servers(keys, opts.connect)
        for a in answers:
            if a.secret is None:
                last = f"{a.server}: {a.failed}: {a.reason}"
        found = fetch.passphrases(answers)
        if answers and not found:
            last = "too few shares of one set for its threshold"
        for p in found:
            if _opens_pending(env, vols, plans, p.secret):
                return _retire(env, opts, vols, plans, p.secret, keydir)
            last = f"{p.source}: an older secret (not the new slot's)"
        if time.monotonic() + opts.retry > deadline:
            break
        time.sleep(opts.retry)
    pending = ", ".join(
        f"{v.device} (old slot {old.slot if old else '-'}, new slot {new.slot})"
        for v, (old, new) in zip(vols, plans, strict=True)
    )
    generation = plans[0][1].generation
    devices = " ".join(v.device for v in vols)
    raise m.RotationPending(
        f"rotation to generation {generation} not finished: no server served the new secret "
        f"within {format_rfc3339(opts.timeout)} ({last}); both key slots stay on {pending}; "
        f"install the new section on the server, reload it, then run "
        f"'mandos-luks rotate --finish {devices}'"
    )


def _opens_pending(
    env: Env, vols: Sequence[Volume], plans: Sequence[tuple[m.Binding | None, m.Binding]], s: Secret
) -> bool:
    return all(env.cs.opens(v.device, s, new.slot) for v, (_, new) in zip(vols, plans, strict=True))


def _retire(
    env: Env,
    opts: argparse.Namespace,
    vols: Sequence[Volume],
    plans: Sequence[tuple[m.Binding | None, m.Binding]],
    secret: Secret,
    keydir: Path,
) -> int:
    with env.changes(vols):
        for v, (old, new) in zip(vols, plans, strict=True):
            if old is not None:
                env.store.remove(v, old)
                if old.slot in v.header.slots:
                    env.cs.kill_slot(v.device, old.slot)
                env.say(f"{v.device}: removed key slot {old.slot} (generation {old.generation})")
            env.store.replace(v, new, replace(new, state=m.State.ACTIVE))
            env.say(f"{v.device}: key slot {new.slot} (generation {new.generation}) is now active")
    if keydir != env.keydir:
        host.install_keys(keydir, env.keydir)
        env.say(f"{env.keydir}: replaced the keys with the new ones")
        keys = host.read_keys(env.keydir)
        name = plans[0][1].client
        make = host.section_maker(name, keys, ssh=not opts.no_ssh)
        where = host.write_sections(name, secret, make, opts.output, opts.split, replace=True)
        env.say(f"wrote the final clients.conf section (key_id {keys.key_id} only) to {where}")
        try:
            _finish_host(env, opts, vols, tab=False)
        except m.LuksError as exc:
            raise m.LuksError(
                f"{exc}; the initramfs still holds the old keys: rebuild it before the server "
                "gets the final section, which no longer accepts them"
            ) from None
    return 0
