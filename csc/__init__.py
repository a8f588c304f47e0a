"""obsq.csc — the wire layer, the component framework, the component services and the CLI."""

__version__ = "0.1.0"
