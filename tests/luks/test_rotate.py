"""rotate: the old slot goes only after a server served the new secret and it opened the volume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.luks.conftest import (
    KDF,
    NEW_KEYS,
    Rig,
    fetch_with_our_client,
    finish,
    make_image,
    opens,
    serve,
    wait_for_file,
)
from tests.server.ourserver import RunningServer


def slots(rig: Rig) -> list[tuple[int, int, str]]:
    """(slot, generation, state) of every binding, by mandos-luks list --json."""
    done = rig.run("list", "--json", str(rig.image))
    assert done.returncode == 0, done.stderr
    return [(r["slot"], r["generation"], r["state"]) for r in json.loads(done.stdout)]


def rotate_args(server: RunningServer, out: Path, *extra: str) -> list[str]:
    return [
        f"--connect={server.connect}", f"--output={out}", "--retry=0.3", "--no-ssh",
        "--no-initramfs", *KDF, *extra,
    ]  # fmt: skip


def bound_and_served(rig: Rig, server: RunningServer) -> bytes:
    """Bind, serve the section; the secret the client now gets (generation 1)."""
    serve(server, rig.bind())
    done = fetch_with_our_client(rig.keydir, server.connect)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rotate_with_the_server_reloaded_in_between(rig: Rig, server: RunningServer) -> None:
    old = bound_and_served(rig, server)
    out = rig.base / "gen2.conf"
    proc = rig.start("rotate", *rotate_args(server, out, "--timeout=PT90S"), str(rig.image))
    try:
        section = wait_for_file(out)
        # Phase 1 is done and the server still serves generation 1: both slots are there.
        assert slots(rig) == [(1, 1, "active"), (2, 2, "pending")]
        assert opens(rig.image, old, slot=1)
        serve(server, section)
    finally:
        status, _, err = finish(proc)
    assert status == 0, err
    new = fetch_with_our_client(rig.keydir, server.connect).stdout
    assert new != old
    assert opens(rig.image, new, slot=2)
    assert not opens(rig.image, old)  # the old passphrase opens nothing any more
    assert slots(rig) == [(2, 2, "active")]
    assert f"{rig.image}: removed key slot 1 (generation 1)" in err
    assert f"{rig.image}: key slot 2 (generation 2) is now active" in err


def test_server_never_updated_keeps_both_slots_then_finish(rig: Rig, server: RunningServer) -> None:
    old = bound_and_served(rig, server)
    out = rig.base / "gen2.conf"
    done = rig.run("rotate", *rotate_args(server, out, "--timeout=PT2S"), str(rig.image))
    assert done.returncode == 75, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("mandos-luks: rotation to generation 2 not finished: ")
    assert "no server served the new secret within PT2S" in error
    assert f"both key slots stay on {rig.image} (old slot 1, new slot 2)" in error
    assert f"'mandos-luks rotate --finish {rig.image}'" in error
    assert opens(rig.image, old, slot=1)
    assert slots(rig) == [(1, 1, "active"), (2, 2, "pending")]
    # rotate again refuses while one is pending
    again = rig.run("rotate", *rotate_args(server, out, "--timeout=PT2S"), str(rig.image))
    assert again.returncode != 0
    assert "is pending" in again.stderr
    # still not served: --finish also waits, then gives up with both slots
    early = rig.run(
        "rotate", "--finish", *rotate_args(server, out, "--timeout=PT1S"), str(rig.image)
    )
    assert early.returncode == 75, early.stderr
    assert slots(rig) == [(1, 1, "active"), (2, 2, "pending")]
    serve(server, out.read_text())
    late = rig.run("rotate", "--finish", f"--connect={server.connect}", str(rig.image))
    assert late.returncode == 0, late.stderr
    assert slots(rig) == [(2, 2, "active")]
    assert not opens(rig.image, old)


def test_rotate_keys_old_and_new_key_ids_work_until_it_finishes(
    rig: Rig, server: RunningServer
) -> None:
    old_secret = bound_and_served(rig, server)
    old_keys = rig.base / "old-keys"
    shutil.copytree(rig.keydir, old_keys)
    out = rig.base / "gen2.conf"
    args = rotate_args(server, out, "--keys", *NEW_KEYS)
    done = rig.run("rotate", *args, "--timeout=PT1S", str(rig.image))
    assert done.returncode == 75, done.stderr
    transitional = out.read_text()
    (key_line,) = [ln for ln in transitional.splitlines() if ln.startswith("key_id = ")]
    assert len(key_line.split()) == 4  # key_id = NEW OLD
    new_keys = rig.keydir / "rotating"
    serve(server, transitional)
    # During the rotation both the old and the new keys get the new secret.
    by_old = fetch_with_our_client(old_keys, server.connect)
    by_new = fetch_with_our_client(new_keys, server.connect)
    assert by_old.returncode == 0, by_old.stderr
    assert by_new.returncode == 0, by_new.stderr
    assert by_old.stdout == by_new.stdout != old_secret
    assert opens(rig.image, by_new.stdout, slot=2)
    finished = rig.run("rotate", "--finish", *args, str(rig.image))
    assert finished.returncode == 0, finished.stderr
    assert not new_keys.exists()
    for name in ("tls-pubkey.pem", "pubkey.txt"):  # the new keys are in place
        assert (rig.keydir / name).read_bytes() != (old_keys / name).read_bytes()
    final = out.read_text()
    (final_line,) = [ln for ln in final.splitlines() if ln.startswith("key_id = ")]
    assert len(final_line.split()) == 3
    assert final_line.split()[2] == key_line.split()[2]
    serve(server, final)
    # After it: only the new keys.
    assert rig.run("test", f"--connect={server.connect}", str(rig.image)).returncode == 0
    refused = rig.run("test", f"--keydir={old_keys}", f"--connect={server.connect}", str(rig.image))
    assert refused.returncode == 1
    assert "fetch: failed" in refused.stdout
    assert not opens(rig.image, old_secret)


def test_test_command_names_the_failing_step(rig: Rig, server: RunningServer) -> None:
    rig.bind()
    done = rig.run("test", f"--connect={server.connect}", str(rig.image))
    assert done.returncode == 1
    assert f"{server.connect}: fetch: failed: " in done.stdout
    serve(server, (rig.base / "bind.conf").read_text())
    done = rig.run("test", f"--connect={server.connect}", str(rig.image))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{server.connect}: fetch: ok; decrypt: ok",
        f"{server.connect}: {rig.image}: open: ok",
    ]
    stranger = make_image(rig.base / "stranger.img", rig.version)
    done = rig.run("test", f"--connect={server.connect}", str(stranger))
    assert done.returncode == 1
    assert f"{stranger}: open: failed" in done.stdout
