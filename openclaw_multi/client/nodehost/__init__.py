"""The node host: this machine's commands served to a gateway (``openclaw node run``).

Modules: ``rules`` (pure decisions: paths in roots, the run allowlist, output caps,
backoff), ``commands`` (the registry and ``system.*``), ``fs_commands`` (``fs.list``,
``fs.read``), ``run_command`` (``system.run``), ``host`` (the link: connect, serve,
reconnect), ``logs`` and ``app`` (running as a profile). docs/nodes.md has the wire shapes.
"""
