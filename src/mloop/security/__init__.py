"""Identities, credentials, roles and rate limits for mloop's HTTP API and CLI."""
