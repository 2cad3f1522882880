"""What the initramfs programs share: argp-style options, signals and stdout, plugin names.

mandos-client, plugin-runner and the plugins import this package; it imports only the standard
library and ``mandos.core``, so that none of those programs imports another's package (and the
plugins stay free of import cycles with plugin-runner).
"""
