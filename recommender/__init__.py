"""Luban Path: adaptive learning-path recommender service."""

__version__ = "0.1.0"
