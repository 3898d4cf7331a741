"""records commands (being written)."""
