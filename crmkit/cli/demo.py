"""demo commands (being written)."""
