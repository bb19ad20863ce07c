"""The judges' prompts (the SWiRL paper's Appendix E) and the parser of their verdicts.

Goldie et al. (2025), arXiv 2504.04736, Appendix E: "Prompt for Process-Filtering on
Multi-Step Search Tool Use Trajectories" (GOOD/BAD, reasoning first, no gold answer)
and "Prompt for Evaluation / Outcome-Filtering on Multi-Step Trajectories with Search
Tool Use" / "... with Calculator Tool Use" (YES/NO against the answer key; the math
version says that "10", "10.00", "$10" and "$10.00" are equivalent). Adapted in
four ways:

- the conversation is the env's transcript (``{state}``), and the step being judged
  is repeated after it as "my last message" (``{action}``), so the judge cannot
  mistake which message to rate;
- the paper gives a process prompt for search only; ``MATH_PROCESS_PROMPT`` is the
  same prompt with the calculator in place of the search engine;
- the Gemma turn markers are left to each backend's chat template, and the typo
  "to the decide" reads "to decide";
- each prompt also has a ``direct_template`` that asks for the verdict word alone,
  for judges that read its probability from the next-token logits right after
  ``answer_prefix``; ``template`` keeps the paper's "explain your reasoning, then ...".

All are ``str.format`` templates (process fields: ``question``, ``state``,
``action``; outcome fields: ``question``, ``answers``, ``prediction``) and can be
overridden.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROCESS_FIELDS = frozenset({"question", "state", "action"})
OUTCOME_FIELDS = frozenset({"question", "answers", "prediction"})


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt and the two verdict words it asks for.

    Attributes:
        template: The prompt that asks for reasoning, then the verdict word.
        direct_template: The prompt that asks for the verdict word alone; a logit
            judge appends ``answer_prefix`` and reads the next token.
        positive: The word for a good step or a correct answer (``GOOD``, ``YES``).
        negative: The word for a bad step or a wrong answer (``BAD``, ``NO``).
        answer_prefix: The text right before the verdict word in logit scoring.
    """

    template: str
    direct_template: str
    positive: str
    negative: str
    answer_prefix: str = "Verdict:"

    def check_fields(self, allowed: frozenset[str]) -> None:
        """Raise ``ValueError`` if a template names a field outside ``allowed`` or is malformed."""
        for name, template in (
            ("template", self.template),
            ("direct_template", self.direct_template),
        ):
            try:
                fields = {field for _, field, _, _ in string.Formatter().parse(template) if field}
            except ValueError as error:
                raise ValueError(
                    f"judge prompt {name} is not a valid format string: {error}"
                ) from error
            unknown = fields - allowed
            if unknown:
                raise ValueError(
                    f"judge prompt {name} uses unknown fields {sorted(unknown)}; "
                    f"allowed: {sorted(allowed)} (write literal braces as {{{{ and }}}})"
                )

    def render(self, direct: bool = False, **fields: str) -> str:
        """Fill in the reason-first (default) or the direct template."""
        return (self.direct_template if direct else self.template).format(**fields)


def _process_prompt(tool: str, actions: str, results: str, call: str) -> JudgePrompt:
    head = (
        f"My boss asked me to answer the following question with the help of {tool}: {{question}}\n"
        f"This means that I might need to decompose the question into a sequence of {actions} "
        "before being able to answer the question.\n"
        "I am trying to learn how to do this more effectively, so please provide feedback on "
        "my last message.\n"
        "Please take a look at our conversation so far:\n{state}\n"
        "My last message:\n{action}\n\n"
        "When evaluating a message, please only consider the last message and do not penalize "
        "or reward me for previous messages.\n"
        f"When evaluating an answer, please consider only whether the answer follows from the "
        f"{results}, and not whether you believe the answer to be correct.\n"
        f"If there is not enough information from the {results} to answer the question, you "
        'should rate any answer as "BAD". Pay close attention as it may initially seem like the '
        "answer is present when it is not.\n"
        f"When evaluating {call}, please consider whether it is likely to help me answer the "
        "original question.\n"
    )
    return JudgePrompt(
        template=head + 'Explain your reasoning and then answer with either "GOOD" or "BAD".',
        direct_template=head + 'Answer with either "GOOD" or "BAD" and nothing else.',
        positive="GOOD",
        negative="BAD",
    )


def _outcome_prompt(rule: str) -> JudgePrompt:
    head = (
        'I need you to help me grade the answer to the following question: "{question}".\n'
        "The answer key says: {answers}, and my answer is {prediction}. Am I correct?\n"
    )
    return JudgePrompt(
        template=head + 'Please explain your reasoning and then answer "YES" or "NO".\n' + rule,
        direct_template=head + rule + '\nAnswer with either "YES" or "NO" and nothing else.',
        positive="YES",
        negative="NO",
    )


PROCESS_PROMPT = _process_prompt("a search engine", "searches", "search results", "a search query")
"""Process judge for search trajectories (the paper's process-filtering prompt)."""

MATH_PROCESS_PROMPT = _process_prompt(
    "a calculator", "calculations", "calculation results", "a calculation"
)
"""Process judge for calculator trajectories (the search prompt, calculator in its place)."""

OUTCOME_PROMPT = _outcome_prompt(
    "Do not use your own knowledge to decide, but simply check whether I gave the answer in "
    "the answer key."
)
"""Outcome judge for question answering (the paper's search outcome prompt)."""

MATH_OUTCOME_PROMPT = _outcome_prompt(
    'There are multiple ways to write the same answer. For example, "10", "10.00", "$10", '
    'and "$10.00" are all equivalent.'
)
"""Outcome judge for math (the paper's calculator outcome prompt)."""


def default_prompts(env: Any) -> dict[str, JudgePrompt]:
    """The paper's prompts for ``env``: the math ones when it has a calculator, else search/QA.

    Returns:
        ``{"process_prompt": ..., "outcome_prompt": ...}``, keyword arguments of the
        model judges (``HFJudge``, ``EndpointJudge``).
    """
    from swirl_envs.tools.calculator import Calculator

    tools = getattr(env, "unwrapped", env).tools
    if any(isinstance(tool, Calculator) for tool in tools):
        return {"process_prompt": MATH_PROCESS_PROMPT, "outcome_prompt": MATH_OUTCOME_PROMPT}
    return {"process_prompt": PROCESS_PROMPT, "outcome_prompt": OUTCOME_PROMPT}


_QUESTION_LINE = re.compile(r"^Question: (.+)$", re.M)


def process_fields(question: str, state: str, action: str) -> dict[str, str]:
    """The process template's fields; without a question, the transcript's ``Question:`` line."""
    if not question:
        found = _QUESTION_LINE.search(state)
        question = found.group(1) if found else "(stated at the start of the conversation)"
    return {"question": question, "state": state, "action": action}


TRUNCATION_MARK = "[...]\n"
"""Put where the start of an over-long state was cut away."""


def keep_tail(text: str, max_chars: int) -> str:
    """``text`` itself, or its last ``max_chars`` characters after ``TRUNCATION_MARK``."""
    return text if len(text) <= max_chars else TRUNCATION_MARK + text[-max_chars:]


def format_answers(answers: Sequence[str]) -> str:
    """The gold answer, then its aliases: ``"Paris (also accepted: City of Paris)"``."""
    if not answers:
        return "(none given)"
    head, aliases = answers[0], [a for a in answers[1:] if a != answers[0]]
    return f"{head} (also accepted: {'; '.join(aliases)})" if aliases else head


# ---- verdict parsing -------------------------------------------------------------------

_MARKUP = re.compile(r"[*_`#>\[\]()\"“”]")
_MARKERS = (
    r"final verdict|verdict|final answer|answer|judg(?:e)?ment|decision|label|conclusion|"
    r"rating|evaluation|assessment|grade|output|overall|therefore"
)
_NEGATIONS = re.compile(r"\b(?:not|never|hardly|no longer|\w+n[’']t)\s+(?:\w+\s+)?$")
_NEGATION_WINDOW = 40


def parse_verdict(text: str, positive: str, negative: str) -> bool | None:
    """Read a judge's verdict: True for ``positive``, False for ``negative``, None if unclear.

    Accepted, in order of precedence (case and markdown ignored):

    1. an explicit marker: ``Verdict: GOOD``, ``**Final answer** - yes``, ``The judgement
       is BAD`` (the last marker wins, so a final verdict overrides earlier ones);
    2. a last line that is the verdict word alone (``GOOD``, ``No.``);
    3. otherwise every mention of a verdict word, if all of them agree and none is
       negated (``the step is good``).

    Anything else, such as both words with no marker, ``not good``, an empty reply or
    unrelated text, is unparseable (None): it is counted as such, never guessed.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    cleaned = _MARKUP.sub(" ", text).lower()
    labels = {positive.lower(): True, negative.lower(): False}
    # "no longer" is not a verdict.
    label = "({})\\b(?!\\s+longer)".format("|".join(re.escape(word) for word in labels))
    markers = list(
        re.finditer(rf"\b(?:{_MARKERS})\s*(?:is|was|:|=|-|–|—)?\s*[:=]?\s*{label}", cleaned)
    )
    if markers:
        return labels[markers[-1].group(1)]
    lines = [line.strip(string.punctuation + " \t") for line in cleaned.splitlines()]
    lines = [line for line in lines if line]
    if lines and lines[-1] in labels:
        return labels[lines[-1]]
    mentions = list(re.finditer(rf"\b{label}", cleaned))
    if not mentions:
        return None
    windows = (cleaned[max(0, m.start() - _NEGATION_WINDOW) : m.start()] for m in mentions)
    if any(_NEGATIONS.search(window) for window in windows):
        return None
    found = {labels[match.group(1)] for match in mentions}
    return found.pop() if len(found) == 1 else None
