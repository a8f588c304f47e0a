"""ASCOM Alpaca, the HTTP/JSON protocol of real observatory devices: its wire formats, pure (issue 24)."""
