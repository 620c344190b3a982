"""Frozen dataclasses and pure functions: the vocabulary every other layer speaks. No I/O."""
