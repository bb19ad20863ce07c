"""The transcript's layout, as text and as chat messages: defined once for the env and its agents.

The env builds its observations and ``info["messages"]`` with these functions, and an
agent that rebuilds the conversation from a stored trajectory (a chat model's prompt,
its training data) calls the same ones, so the two can never disagree.

The text transcript is ``prompt + action_1 + feedback_1 + ...``, where the prompt (the
first observation) is::

    {system prompt}

    Question: {question}

and each ``feedback`` is the text the env appended after an action (a tool result or
an error line). As chat messages: the system prompt (``system``), ``Question: ...``
(``user``), then each action as an ``assistant`` turn and each non-empty feedback,
stripped, as a ``user`` turn.
"""

from __future__ import annotations

from collections.abc import Sequence


def first_observation(system_prompt: str, question: str) -> str:
    """The env's first observation: the system prompt, then the question."""
    return f"{system_prompt}\n\n{_question_turn(question)}\n"


def transcript_messages(
    prompt: str, question: str, steps: Sequence[tuple[str, str]]
) -> list[dict[str, str]]:
    """The transcript as chat messages (``role``, ``content``): the env's ``info["messages"]``.

    Args:
        prompt: The first observation (``first_observation(system_prompt, question)``).
        question: The question (it ends ``prompt``).
        steps: ``(action, feedback)`` of every step so far, in order.

    Raises:
        ValueError: ``prompt`` does not end with the question as ``first_observation``
            writes it.
    """
    suffix = first_observation("", question)
    if not prompt.endswith(suffix):
        raise ValueError("the prompt does not end with the question as the env writes it.")
    messages = [
        {"role": "system", "content": prompt[: -len(suffix)]},
        {"role": "user", "content": _question_turn(question)},
    ]
    for action, feedback in steps:
        messages.append({"role": "assistant", "content": action})
        if feedback:
            messages.append({"role": "user", "content": feedback.strip()})
    return messages


def _question_turn(question: str) -> str:
    return f"Question: {question}"
