"""Profiles: names, paths, config, port rules, and the one-gateway-per-profile lock.

``names``, ``paths`` and ``ports`` are pure (tested with plain values); ``config`` reads
files; ``lock`` deals with processes, the kernel lock and listening sockets; ``discovery``
lists the profiles of a home; ``atomic`` is the one atomic file writer.

Import from the submodules: this package deliberately re-exports nothing, so a command that
needs only ``paths`` does not pay for ``config`` and ``lock`` at start-up.
"""
