"""Pure core of the wire layer: states, ack codes, errors, topics, codec, interfaces.

Nothing in this package does I/O, awaits, or reads the clock; import-linter checks it.
"""
