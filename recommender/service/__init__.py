"""Use cases: compose the domain, knowledge tracing, model and storage; own transactions."""
