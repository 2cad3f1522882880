"""The password plugins plugin-runner starts, and password-agent (REFERENCE A14, A15).

Each plugin is a module with ``main(argv) -> int``, run as ``python -m mandos.plugins.NAME``.
:func:`mandos.plugins.layout.install_plugin_dir` writes them as executables named as the
reference names them (``password-prompt``, ``askpass-fifo``, ...) into a plugins.d directory.
This package imports nothing itself, so that each plugin starts fast.
"""
