"""Repository-wide test settings.

CI (scripts/test.sh sets ``HYPOTHESIS_PROFILE=ci``) runs hypothesis derandomized: the same
examples every run, so a red build is always reproducible and never a roll of the dice.
Locally the default profile keeps exploring new examples and reports any it finds.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
