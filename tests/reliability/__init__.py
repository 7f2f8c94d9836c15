"""Reliability proven wholesale: fuzzing, faults, access (issue 15)."""
