"""Learning-path planning: pure, deterministic, vectorized with numpy."""
