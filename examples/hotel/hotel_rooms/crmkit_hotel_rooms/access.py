"""The plugin's permissions: a module of its own, so declaring them loads no database code.

``hotel_rooms.read`` to see a guest's preferences and stays, ``hotel_rooms.write`` to record
preferences; both scoped to the customers a role works on (front desk staff hold the service
roles: every guest).
"""

from __future__ import annotations

from crmkit.plugin import PermissionSpec

READ = "hotel_rooms.read"
WRITE = "hotel_rooms.write"
_SERVICE = {"technical_support": "all", "complaint_handler": "all", "manager": "all"}
PERMISSIONS = (
    PermissionSpec(READ, "see guests' room preferences and stays",
                   default_grants={"sales_rep": "own", "sales_manager": "team",
                                   "cost_accounting": "all", **_SERVICE}),
    PermissionSpec(WRITE, "record guests' room preferences",
                   default_grants={"sales_rep": "own", "sales_manager": "team", **_SERVICE}),
)  # fmt: skip
