"""Estimators of the synth family (later issues)."""
