"""Collector sources (§8), each against a real peer or recorded responses."""
