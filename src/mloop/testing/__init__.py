"""Reusable tests for a project's own model (a pytest plugin: `mloop.testing.plugin`).

Fixtures (`plugin.py`): `mloop_project`, `mloop_settings`, `mloop_contract`, `mloop_model`,
`mloop_client`. Checks (plain functions raising AssertionError, usable without pytest):
`check_examples_predict`, `check_invariance`, `check_directional`, `check_min_metrics`,
`check_api_payloads`. Importing this package is light: the plugin is loaded into every pytest
run of an environment with mloop installed.
"""

from mloop.testing.checks import (
    check_api_payloads,
    check_directional,
    check_examples_predict,
    check_invariance,
    check_min_metrics,
    example_rows,
)

__all__ = [
    "check_api_payloads",
    "check_directional",
    "check_examples_predict",
    "check_invariance",
    "check_min_metrics",
    "example_rows",
]
