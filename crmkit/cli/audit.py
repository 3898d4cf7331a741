"""``crmkit audit`` commands (being built for issue 15)."""
