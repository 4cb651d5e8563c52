"""Southbound collectors (§8): contract (:mod:`.base`), registry, runner, scheduler, a folder per source."""
