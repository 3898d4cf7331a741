"""transfer commands (being written)."""
