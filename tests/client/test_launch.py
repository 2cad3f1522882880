"""client/launch.py: mandos-client's entry point starts the share worker, then runs main()."""

from __future__ import annotations

from mandos.client import launch


def test_options_main_refuses_are_refused_as_main_does() -> None:
    """The launcher parses first only to decide on the worker; main() reports, as before."""
    assert launch.main(["--no-such-option"]) == 64
    assert launch.main(["--version"]) == 0


def test_connect_options_are_counted_by_their_spelling() -> None:
    """--connect, any abbreviation of it (--c...) and -c; options after "--" are operands."""
    assert launch.connect_options(["--connect=a:1", "-c", "b:2", "--conn", "c:3"]) == 3
    assert launch.connect_options(["-cd:4", "--pubkey=p", "--", "--connect=e:5"]) == 1
    assert launch.connect_options(["--interface=none", "--retry=1"]) == 0


def test_a_worker_forked_for_options_main_refuses_is_reaped() -> None:
    """The glance forks for two --connect; main() refuses the options; no child is left over
    (the autouse fixture fails a test that leaves one)."""
    argv = ["--connect=127.0.0.1:1", "--connect=127.0.0.1:2", "--no-such-option"]
    assert launch.main(argv) == 64
