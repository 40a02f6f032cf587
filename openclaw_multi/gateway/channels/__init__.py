"""Messaging channels: where people talk to the agent besides operator clients.

``base`` draws the contract a channel keeps; ``registry`` builds the configured channels,
runs them for the gateway's life and answers the ``send`` method; ``telegram`` is a Bot API
long-polling channel; webchat is the operators' own ``chat.*`` over the gateway WebSocket.
"""
