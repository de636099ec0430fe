"""Hypothesis settings for the unit tier.

The default profile keeps the tier quick (a few dozen examples a property,
no example database written into the checkout, which the UML guest shares);
IPVSCTL_HYPOTHESIS=long runs thousands of examples a property and keeps
hypothesis's database in .hypothesis/ (git-ignored), e.g.

    IPVSCTL_HYPOTHESIS=long .venv/bin/python -m pytest tests/unit -k properties
"""

from __future__ import annotations

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra; the kernel tier does not need it
    settings = None

if settings is not None:
    settings.register_profile("default", max_examples=40, deadline=None, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("long", max_examples=3000, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("IPVSCTL_HYPOTHESIS", "default"))
