"""crmkit-loyalty: loyalty programs as data, an append-only points ledger, tiers, rewards.

Python API::

    from crmkit_loyalty import loyalty
    svc = loyalty(crm)
    svc.load_program_file("retail_club.toml")
    svc.enrol(customer_id, program="retail-club")
    svc.redeem(customer_id, "coffee", program="retail-club")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.plugin import lazy_attributes

if TYPE_CHECKING:
    from crmkit_loyalty.program import Program, load_program_file, parse_program
    from crmkit_loyalty.service import LoyaltyService, loyalty

__all__ = ["LoyaltyService", "Program", "load_program_file", "loyalty", "parse_program"]

# name -> module, imported on first use (PEP 562): loading the plugin's hooks, which
# imports this package first, then costs no SQLAlchemy (``crmkit --help`` stays quick)
_LAZY = {
    **dict.fromkeys(("Program", "load_program_file", "parse_program"), "crmkit_loyalty.program"),
    **dict.fromkeys(("LoyaltyService", "loyalty"), "crmkit_loyalty.service"),
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
