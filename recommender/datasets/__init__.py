"""Data files in and out: the generic event format, learner files, and converters from public
learning datasets (ASSISTments, OULAD, Junyi) to that format."""
