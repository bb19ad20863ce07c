"""SWiRL's reward models: judges of steps (process) and final answers (outcome).

Backends: a local Hugging Face model (``HFJudge``), an OpenAI-compatible endpoint
(``EndpointJudge``) and programmatic checks against the task (``ProgrammaticJudge``).
A ``JudgementCache`` makes reruns free; ``judge_agreement`` measures a judge against
a trusted one. The backends load on first use (torch, httpx, sympy stay unimported
until a judge is built), which keeps ``swirl --help`` fast.
"""

from swirl_agents.judges.agreement import confusion, judge_agreement
from swirl_agents.judges.base import Judge, Judgement, OutcomeQuery, ProcessQuery
from swirl_agents.judges.cache import CachedJudge, JudgementCache
from swirl_agents.judges.factory import JUDGE_SPECS, make_judge
from swirl_agents.judges.prompts import (
    MATH_OUTCOME_PROMPT,
    MATH_PROCESS_PROMPT,
    OUTCOME_PROMPT,
    PROCESS_PROMPT,
    JudgePrompt,
    default_prompts,
    parse_verdict,
)
from swirl_agents.judges.trajectories import (
    JudgedTrajectory,
    judge_trajectories,
    outcome_query,
    process_queries,
)

__all__ = [
    "JUDGE_SPECS",
    "MATH_OUTCOME_PROMPT",
    "MATH_PROCESS_PROMPT",
    "OUTCOME_PROMPT",
    "PROCESS_PROMPT",
    "CachedJudge",
    "EndpointJudge",
    "HFJudge",
    "Judge",
    "JudgePrompt",
    "JudgedTrajectory",
    "Judgement",
    "JudgementCache",
    "OutcomeQuery",
    "ProcessQuery",
    "ProgrammaticJudge",
    "confusion",
    "default_prompts",
    "judge_agreement",
    "judge_trajectories",
    "make_judge",
    "outcome_query",
    "parse_verdict",
    "process_queries",
]


_BACKENDS = {
    "HFJudge": "swirl_agents.judges.hf",
    "EndpointJudge": "swirl_agents.judges.endpoint",
    "ProgrammaticJudge": "swirl_agents.judges.programmatic",
}


def __getattr__(name: str):
    if name in _BACKENDS:
        import importlib

        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module 'swirl_agents.judges' has no attribute {name!r}")
