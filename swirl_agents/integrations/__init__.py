"""Adapters from swirl envs and judges to other training stacks, one module per stack.

- ``swirl_agents.integrations.trl``: TRL's ``GRPOTrainer`` (``environment_factory``,
  reward functions). It does not import ``trl`` itself, so importing it needs no extra.

Nothing is imported here, so ``import swirl_agents.integrations`` stays free.
"""
