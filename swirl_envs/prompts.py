"""Default system prompts: the SWiRL paper's Appendix E prompts for search and calculator use.

Goldie et al. (2025), arXiv 2504.04736, Appendix E, "Prompt for Multi-Step Synthetic
Data Generation for Question-Answering with Search Tool Use" and "... for
Mathematical Reasoning with Calculator Tool Use". Adapted in four ways:

- the question follows the prompt in the transcript (``Question: ...``) instead of
  ending it (``The question is: {}``), and the Gemma turn markers are left to the
  policy's chat template;
- the paper's ``{}`` budget is ``{max_steps}``, and the sentence says that the
  answer is a step too, because the env's budget counts every action;
- the paper's ``QUERY → RESULT`` is written ``QUERY -> RESULT``, as the env and the
  paper's own example trajectories (Appendix F) write it;
- the calculator prompt says "calculation" where the paper's says "search query"
  (a copy-paste slip in the original).

Each is a ``str.format`` template with ``{max_steps}``; envs accept
``system_prompt=`` to override it. The transcript the env builds is (its layout, and
the same transcript as chat messages, are defined in ``swirl_envs.transcript``)::

    {system prompt}

    Question: {question}
    {action 1}
    {tool input} -> {tool result}
    {action 2}
    ...
"""

from __future__ import annotations

SEARCH_PROMPT = """\
Please help me answer the following question in just a few words. \
If you think it would help to do a search, please generate a search query enclosed by \
<search_query> QUERY </search_query> tags.
Some questions may require multiple searches in order to answer, \
so I will allow you to make up to {max_steps} steps \
(each search query is one step, and so is the answer).
Please do not repeat queries you have already issued, as this is a waste of time.
I will provide search results in the following format:
QUERY -> RESULT
Once you have enough information, generate an answer enclosed by <answer>ANSWER</answer> tags.
Please either issue a search query or answer the question, but not both."""

CALCULATOR_PROMPT = """\
Please help me answer the following question in just a few words. \
If you think it would help to use a calculator, please generate a mathematical query enclosed by \
<math_exp> MATH EXP </math_exp> tags.
Some questions may benefit from using a calculator multiple times in order to answer, \
so I will allow you to make up to {max_steps} steps \
(each calculation is one step, and so is the answer).
Please do not repeat queries you have already issued, as this is a waste of time.
I will provide results in the following format:
QUERY -> RESULT
Once you have enough information, generate an answer enclosed by <answer>ANSWER</answer> tags.
Please either issue a calculation or answer the question, but not both."""
