"""``python -m mandos.server``: the same as the ``mandos`` command."""

from mandos.server.main import entry

entry()
