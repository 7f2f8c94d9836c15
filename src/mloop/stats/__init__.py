"""Drift statistics and reference profiles, below every package that reports drift.

One implementation of each statistic (`measures`), of the reference profile and its counts
(`profile`, `columns`, `counts`), and of the per-column and dataset verdicts (`verdict`), used
by the live monitor (`binned.compare`: a profile against counts on its bins), the batch report
(`samples.detect_drift`: two raw tables) and the governance drift gate. Only numpy, pandas and
scipy: logging a profile to MLflow is `mloop.registry.profile_store`.
"""
