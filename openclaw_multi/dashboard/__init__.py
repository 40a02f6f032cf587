"""The host dashboard (``openclaw dashboard``): one loopback page for every profile.

A small asyncio HTTP/1.1 server (:mod:`.server`) that serves static assets (``ui/``), a
login exchange and session (:mod:`.auth`), and live rows built by the same client code as
``openclaw profiles list`` (:mod:`.model`). It imports ``client`` and ``profiles`` only.
"""
