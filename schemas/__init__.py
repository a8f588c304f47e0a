"""obsq.schemas — JSON Schemas for component interfaces, blocks and configurations (package data)."""
