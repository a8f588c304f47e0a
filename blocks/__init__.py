"""obsq.blocks — JSON observing blocks, shipped as package data."""
