"""Hidden-truth learner simulation: the demo world's histories and the efficiency simulator.

The service never reads this truth; it only sees the assessment results the simulated learners
produce, exactly as it would see a real platform's.
"""
