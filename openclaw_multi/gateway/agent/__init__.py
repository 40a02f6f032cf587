"""Agent runs: the run registry, the pluggable backends, and node commands as tools.

``runs.py`` owns every run (idempotency, per-session order, time bound, abort, events);
``backend.py`` is the contract a backend implements; ``offline.py`` and ``openai.py`` are
the two backends; ``tools.py`` offers connected nodes' commands to a backend; ``handlers.py``
serves ``agent`` and ``agent.wait``. docs/agent.md tells the whole story.
"""
