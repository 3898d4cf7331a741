"""The settings that bound rendering a reply template, their defaults and their check.

Apart from :mod:`.limits` (Jinja2's sandbox, bounded): the plugin's hook module reads
these when the CRM opens, and must not import Jinja2 to do so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the settings (``[knowledgebase]``) and their defaults
DEFAULTS: dict[str, Any] = {
    "template_time_limit": 2.0,
    "template_max_output": 200_000,
    "template_max_range": 10_000,
    "template_max_loop_iterations": 100_000,
}


def validate_settings(values: Mapping[str, Any]) -> None:
    """Refuse limit settings that are not positive numbers (ValueError naming the setting)."""
    limit = values["template_time_limit"]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit <= 3600:
        raise ValueError("template_time_limit must be a number of seconds above 0 (2.0 by default)")
    for key in ("template_max_output", "template_max_range", "template_max_loop_iterations"):
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a whole number of at least 1 ({DEFAULTS[key]:_})")


__all__ = ["DEFAULTS", "validate_settings"]
