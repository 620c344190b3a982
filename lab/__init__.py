"""The research lab around the simulator: not part of the service, never shipped in its wheel.

`recommender simulate` compares what a user compares (adaptive paths, the syllabus, the oracle).
The lab adds the experiments behind docs/simulator-experiments.md: a particle filter that bounds
what knowledge tracing could do from the same observations (`bayes`), an oracle fed noisy truth
with a margin on role levels, and a popularity baseline. They run through the product simulator's
own loop as `Policy` objects (recommender.service.simulate). `python -m lab --help` lists the
commands.
"""
