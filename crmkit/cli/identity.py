"""``crmkit identity`` commands (being built for issue 15)."""
