"""Build a judge from a spec string, the one way every command and script does it."""

from __future__ import annotations

from typing import Any

JUDGE_SPECS = "programmatic, hf:NAME_OR_PATH, openai:BASE_URL[,BASE_URL...]"


def make_judge(
    spec: str,
    env: Any,
    *,
    programmatic: dict[str, Any] | None = None,
    hf: dict[str, Any] | None = None,
    openai: dict[str, Any] | None = None,
    **prompts: Any,
) -> Any:
    """Build the judge ``spec`` names for trajectories of ``env``.

    Model judges get the paper's prompts for ``env`` (the math versions for envs with
    a calculator) unless ``process_prompt=`` / ``outcome_prompt=`` are given.

    Args:
        spec: ``programmatic`` (checks against the env's tasks), ``hf:NAME_OR_PATH``
            (a local Hugging Face model) or ``openai:BASE_URL`` (an OpenAI-compatible
            endpoint; ``openai:URL1,URL2,...`` for several replicas of one model).
        env: The env whose trajectories are judged (wrapped or not).
        programmatic: Extra ``ProgrammaticJudge.from_env`` arguments (``process_rule``).
        hf: Extra ``HFJudge`` arguments (``model`` to reuse a loaded model, ``tokenizer``,
            ``mode``, ``batch_size``, ``device``, ...).
        openai: Extra ``EndpointJudge`` arguments; ``model`` (the served model's name)
            is required.
        **prompts: ``process_prompt`` / ``outcome_prompt`` overrides.

    Raises:
        ValueError: The spec names no known judge, or an endpoint judge has no model name.
    """
    from swirl_agents.judges.prompts import default_prompts

    backend, target = judge_backend(spec)
    if backend == "programmatic":
        from swirl_agents.judges.programmatic import ProgrammaticJudge

        return ProgrammaticJudge.from_env(env, **(programmatic or {}))
    prompts = {**default_prompts(env), **prompts}
    if backend == "hf":
        from swirl_agents.judges.hf import HFJudge

        options = {"model": target, "name": f"hf:{target}", **(hf or {})}
        return HFJudge(options.pop("model"), **options, **prompts)
    from swirl_agents.judges.endpoint import EndpointJudge

    options = dict(openai or {})
    if not options.get("model"):
        raise ValueError("an openai: judge needs the served model's name (model=...).")
    return EndpointJudge(target, options.pop("model"), **options, **prompts)


def judge_backend(spec: str) -> tuple[str, str]:
    """``(backend, target)`` of a judge spec, checked without building the judge.

    So a caller that builds its judge later (per env, on first use) can reject a bad spec
    at once: ``"programmatic"`` gives ``("programmatic", "")``, ``"hf:PATH"`` ``("hf", PATH)``.

    Raises:
        ValueError: The spec names no known judge, or an ``openai:`` one a bad base URL.
    """
    if spec == "programmatic":
        return spec, ""
    backend, _, target = spec.partition(":")
    if backend not in ("hf", "openai") or not target:
        raise ValueError(f"unknown judge {spec!r}; expected one of: {JUDGE_SPECS}.")
    if backend == "openai":
        from swirl_agents.replicas import parse_base_urls

        parse_base_urls(target)
    return backend, target
