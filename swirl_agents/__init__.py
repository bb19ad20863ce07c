"""LLM policies, rollouts, step-wise decomposition, reward models, filtering and training for SWiRL."""

__version__ = "0.1.0"
