"""SWiRL for language models: policies, rollouts, decomposition, judges, filters, training."""

__version__ = "0.1.0"
