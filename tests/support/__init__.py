"""Helpers shared by the test packages, imported as `tests.support.<kit>`.

modelkit: a small registered churn model; govkit: governed homes, policies, identities;
loopkit: monitoring receivers and models with profiles; deploykit: versions without files;
jobkit: job settings; env: MLOOP_* scrubbing; waiting: `wait_for`; apps: in-process clients.
"""
