"""ATMCS: the auxiliary telescope mount."""
