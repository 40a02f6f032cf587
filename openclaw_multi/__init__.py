"""openclaw-multi: several isolated OpenClaw-compatible gateways on one host."""

__version__ = "0.1.0"
