"""The record commands: customers, contacts, staff, interactions, orders, workflows.

Each group lives in its own module; importing them registers their commands on ``cli``.
"""

from crmkit.cli import activity, customer, workflow  # noqa: F401
