"""Sweep definitions and the Ray Tune launcher. All Ray calls live in this package."""
