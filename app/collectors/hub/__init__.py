"""The ``hub`` source: another Supervision Hub's northbound API (city hub → provincial hub)."""
