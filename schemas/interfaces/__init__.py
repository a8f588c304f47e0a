"""Component interface files (package data)."""
