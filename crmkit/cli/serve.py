"""``crmkit serve`` commands (being built for issue 15)."""
