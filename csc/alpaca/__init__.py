"""ASCOM Alpaca, the HTTP/JSON protocol of real devices: wire formats (pure), addresses and a client (issue 24)."""
