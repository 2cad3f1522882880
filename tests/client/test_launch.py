"""client/launch.py: mandos-client's entry point starts the share worker, then runs main()."""

from __future__ import annotations

from mandos.client import launch


def test_options_main_refuses_are_refused_as_main_does() -> None:
    """The launcher parses first only to decide on the worker; main() reports, as before."""
    assert launch.main(["--no-such-option"]) == 64
    assert launch.main(["--version"]) == 0
