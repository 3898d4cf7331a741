"""The record commands: customers, contacts, staff, interactions, orders, workflows.

Each group lives in its own module; importing them registers their commands on ``cli``
(``people`` adds edit, remove and deactivate to the ``contact`` and ``staff`` groups).
"""

from crmkit.cli import activity, customer, people, workflow  # noqa: F401
