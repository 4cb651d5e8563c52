"""Southbound collectors (§8). The framework and sources come with the collectors issue."""
