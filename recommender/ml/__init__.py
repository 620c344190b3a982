"""Hybrid recommender: features, LightFM training, numpy serving model, artifacts, evaluation."""
