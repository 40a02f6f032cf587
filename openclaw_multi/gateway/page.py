"""The small status page served at ``/``: which profile, port and version answered."""

from __future__ import annotations

import html


def render(*, profile: str, port: int, version: str, state_dir: str) -> bytes:
    """A self-contained page (no scripts, no external assets) naming this gateway."""
    esc = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenClaw gateway · {esc(profile)}</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:40rem;padding:0 1rem;
color:#1b1b1b}}
h1{{font-size:1.4rem}} dl{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}}
dt{{font-weight:600}} code{{background:#f2f2f2;padding:0 .25rem;border-radius:3px}}
</style></head>
<body><main>
<h1>OpenClaw gateway</h1>
<dl>
<dt>Profile</dt><dd id="profile">{esc(profile)}</dd>
<dt>Port</dt><dd id="port">{port}</dd>
<dt>Version</dt><dd id="version">openclaw-multi {esc(version)}</dd>
<dt>State dir</dt><dd><code>{esc(state_dir)}</code></dd>
</dl>
<p>Probes: <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> ·
<a href="/startupz">/startupz</a>. Clients connect with WebSocket on this same port.</p>
</main></body></html>
""".encode()
