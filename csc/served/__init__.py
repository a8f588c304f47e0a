"""obsq's simulated observatory served as ASCOM Alpaca devices (`obsq alpaca serve`), for runs through the protocol."""
