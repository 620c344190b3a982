"""Knowledge tracing in pure numpy: Bayesian Knowledge Tracing with forgetting over real time."""
