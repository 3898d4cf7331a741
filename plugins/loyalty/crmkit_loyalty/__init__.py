"""crmkit-loyalty: loyalty programs as data, an append-only points ledger, tiers, rewards.

Python API::

    from crmkit_loyalty import loyalty
    svc = loyalty(crm)
    svc.load_program_file("retail_club.toml")
    svc.enrol(customer_id, program="retail-club")
    svc.redeem(customer_id, "coffee", program="retail-club")
"""

from crmkit_loyalty.program import Program, load_program_file, parse_program
from crmkit_loyalty.service import LoyaltyService, loyalty

__all__ = ["LoyaltyService", "Program", "load_program_file", "loyalty", "parse_program"]
