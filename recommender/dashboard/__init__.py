"""The web dashboard: cohort overview, catalog priorities, learner pages and the model registry,
over the service layer's use cases (a second front end beside the gRPC API; no gRPC here)."""
