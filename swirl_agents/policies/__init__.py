"""Policies: anything that maps a batch of observations to a batch of actions.

``Policy`` and ``Observation`` (``base``) are the contract; shipped policies are
``HFPolicy`` (``hf``, a local transformers model), ``OpenAIPolicy``
(``openai_compat``, any OpenAI-compatible server) and the scripted ``OraclePolicy``,
``NoisyOraclePolicy`` and ``RandomPolicy`` (``scripted``). ``make_policy`` builds
one from a short spec string, as the CLI does; the model-backed modules are
imported only when asked for, so scripted rollouts need neither torch nor httpx.
"""

from __future__ import annotations

from typing import Any

from swirl_agents.policies.base import (
    Observation,
    Policy,
    PolicyStats,
    SamplingSettings,
    describe_policy,
    episode_seed,
    step_seed,
)
from swirl_agents.policies.scripted import NoisyOraclePolicy, OraclePolicy, RandomPolicy

__all__ = [
    "NoisyOraclePolicy",
    "Observation",
    "OraclePolicy",
    "Policy",
    "PolicyStats",
    "RandomPolicy",
    "SamplingSettings",
    "describe_policy",
    "episode_seed",
    "make_policy",
    "step_seed",
]

POLICY_SPECS = "oracle | noisy-oracle | random | hf:NAME_OR_PATH | openai:BASE_URL[,BASE_URL...]"


def make_policy(
    spec: str,
    *,
    sampling: SamplingSettings | None = None,
    noise: float = 0.3,
    hf: dict[str, Any] | None = None,
    openai: dict[str, Any] | None = None,
) -> Policy:
    """Build a policy from a spec string.

    Args:
        spec: ``oracle``, ``noisy-oracle``, ``random``, ``hf:NAME_OR_PATH`` or
            ``openai:BASE_URL`` (for example ``openai:http://127.0.0.1:8000/v1``;
            ``openai:URL1,URL2,...`` for several replicas of one model).
        sampling: Sampling settings of the model policies.
        noise: Step error probability of ``noisy-oracle``.
        hf: Extra ``HFPolicy.from_pretrained`` arguments (``device``, ``dtype``,
            ``prompt_format``).
        openai: Extra ``OpenAIPolicy`` arguments; ``model`` is required.

    Raises:
        ValueError: The spec names no known policy.
    """
    kind, _, target = spec.partition(":")
    if kind == "oracle" and not target:
        return OraclePolicy()
    if kind == "noisy-oracle" and not target:
        return NoisyOraclePolicy(noise)
    if kind == "random" and not target:
        return RandomPolicy()
    if kind == "hf" and target:
        from swirl_agents.policies.hf import HFPolicy

        return HFPolicy.from_pretrained(target, sampling=sampling, **(hf or {}))
    if kind == "openai" and target:
        from swirl_agents.policies.openai_compat import OpenAIPolicy

        options = dict(openai or {})
        if not options.get("model"):
            raise ValueError("an openai: policy needs the served model's name (model=...).")
        return OpenAIPolicy(target, options.pop("model"), sampling=sampling, **options)
    raise ValueError(f"unknown policy {spec!r}; expected one of: {POLICY_SPECS}.")
