"""Governance: promotion policies, gates, approval requests, the audit chain, model cards."""
