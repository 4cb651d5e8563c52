"""Reliability drills (``make drills``): scripts a maintainer runs, never collected by pytest."""
