"""SynthHop: generated multi-hop questions over a world of fictional entities.

A world (``build_world``) holds a few hundred people, companies, cities and
countries with made-up names built from syllables, linked by functional relations
(``RELATIONS``: every person was born in exactly one city, every company has one
founder, ...). Each entity has one passage, titled with its name, that states its
own relations; the whole world's passages are the search corpus.

A question composes 2-4 relations from a start entity. Only the start entity is
named, and each passage states only its own entity's relations, so answering
takes one search per hop. The gold path searches each entity of the chain and
then answers, every name written after a space inside the tag (a real episode)::

    Question: In which country is the birthplace of the founder of Stozu Industries?
    <search_query> Stozu Industries</search_query>
    Stozu Industries -> Stozu Industries: Stozu Industries is a food company. It was
    founded by Lesar Zema. Its CEO is Sustustin Totribru. It is headquartered in Drustin.
    <search_query> Lesar Zema</search_query>
    Lesar Zema -> Lesar Zema: Lesar Zema is an architect. He was born in Derus. He
    lives in Zihakrin. He works for Pokrekun Systems.
    <search_query> Derus</search_query>
    Derus -> Derus: Derus is a city. It is in Mununal. Its mayor is Stazu Stotuses.
    <answer> Mununal</answer>

(the space makes a copied name tokenize as it does in the question and passages).

Splits share the world but not their questions. By default (``holdout="start"``)
every entity starts questions of one split only (``Entity.split``; every fifth entity
of each type is a test one), so no test question asks about an entity that a train
question starts from. With ``holdout="question"`` any entity starts questions of
either split and a question (start entity and relation chain) belongs to one split,
as in HotPotQA, whose test questions ask about entities training questions also use.
"""

from __future__ import annotations

import functools
import itertools
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from swirl_envs.env import AnswerJudge, SwirlEnv
from swirl_envs.prompts import SEARCH_PROMPT
from swirl_envs.scoring import qa_scores
from swirl_envs.task import Passage, Task
from swirl_envs.tools.search import SearchTool, shared_index

ENTITY_TYPES = ("person", "company", "city", "country")
SPLITS = ("train", "test")
HOLDOUTS = ("start", "question")
WORLD_SIZES = {"num_people": 240, "num_companies": 80, "num_cities": 64, "num_countries": 16}
"""Entity counts of the default world (``build_world``); ``world_scale`` multiplies them."""

TEST_EVERY = 5
"""Every fifth entity of each type (in generation order, which is random) starts only test
questions; the others start only train questions."""


@dataclass(frozen=True)
class Relation:
    """A functional relation between entity types, with the words that express it.

    Attributes:
        name: Stable key recorded in ``Task.meta["relations"]`` (``"born_in"``).
        domain: Entity type of the subject.
        range: Entity type of the value.
        statement: Sentence in the subject's passage; ``{subject}`` is "She", "He"
            or "It", ``{possessive}`` "Her", "His" or "Its", ``{value}`` the value.
        phrase: Noun phrase for the value, used inside a longer question;
            ``{x}`` is the subject.
        question: Question whose answer is the value; ``{x}`` is the subject.
    """

    name: str
    domain: str
    range: str
    statement: str
    phrase: str
    question: str


RELATIONS: dict[str, Relation] = {
    relation.name: relation
    for relation in (
        Relation(
            "born_in", "person", "city", "{subject} was born in {value}.",
            "the birthplace of {x}", "In which city was {x} born?",
        ),
        Relation(
            "lives_in", "person", "city", "{subject} lives in {value}.",
            "the home city of {x}", "In which city does {x} live?",
        ),
        Relation(
            "works_for", "person", "company", "{subject} works for {value}.",
            "the employer of {x}", "Which company does {x} work for?",
        ),
        Relation(
            "founded_by", "company", "person", "{subject} was founded by {value}.",
            "the founder of {x}", "Who founded {x}?",
        ),
        Relation(
            "ceo", "company", "person", "{possessive} CEO is {value}.",
            "the CEO of {x}", "Who is the CEO of {x}?",
        ),
        Relation(
            "headquartered_in", "company", "city", "{subject} is headquartered in {value}.",
            "the city where {x} is headquartered", "In which city is {x} headquartered?",
        ),
        Relation(
            "country", "city", "country", "{subject} is in {value}.",
            "the country {x} is in", "In which country is {x}?",
        ),
        Relation(
            "mayor", "city", "person", "{possessive} mayor is {value}.",
            "the mayor of {x}", "Who is the mayor of {x}?",
        ),
        Relation(
            "capital", "country", "city", "{possessive} capital is {value}.",
            "the capital of {x}", "What is the capital of {x}?",
        ),
    )
}  # fmt: skip
"""Every relation, keyed by name. Relations with the same domain and range (``born_in``
and ``lives_in``; ``founded_by`` and ``ceo``) can be confused and still give a valid
chain; the world makes their values differ for every entity."""

OCCUPATIONS = (
    "chemist", "teacher", "painter", "engineer", "farmer", "pilot",
    "doctor", "writer", "baker", "lawyer", "sailor", "architect",
)  # fmt: skip
INDUSTRIES = ("shipping", "software", "textile", "mining", "food", "toy", "glass", "paper")
COMPANY_SUFFIXES = ("Works", "Labs", "Group", "Industries", "Trading", "Systems")

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
           "dr", "kr", "tr", "st", "sh", "th")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s")
_MAX_ATTEMPTS_PER_TASK = 50  # draws per question before giving up (most draws succeed)


@dataclass(frozen=True)
class Entity:
    """One entity of the world.

    Attributes:
        name: Unique name, also its passage's title.
        type: One of ``ENTITY_TYPES``.
        facts: Relation name -> the value entity's name, for every relation of its type.
        passage: Its passage in the search corpus.
        split: The split whose questions may start from it.
    """

    name: str
    type: str
    facts: dict[str, str] = field(compare=False, hash=False)
    passage: Passage = field(compare=False, hash=False)
    split: str


@dataclass(frozen=True, eq=False)
class World:
    """A generated knowledge base; ``entities`` maps each (unique) name to its entity.

    Worlds compare by identity: ``build_world`` returns the same object for the
    same seed and counts, which is what keys the per-process search tool.
    """

    seed: int
    entities: dict[str, Entity]

    @property
    def passages(self) -> tuple[Passage, ...]:
        """Every entity's passage, in generation order: the search corpus."""
        return tuple(entity.passage for entity in self.entities.values())

    def of_type(self, entity_type: str) -> list[Entity]:
        """The entities of one type, in generation order."""
        return [entity for entity in self.entities.values() if entity.type == entity_type]

    def follow(self, start: str, relations: Sequence[str]) -> tuple[str, ...]:
        """The chain of names from ``start`` along ``relations`` (start first, answer last)."""
        chain = [start]
        for relation in relations:
            chain.append(self.entities[chain[-1]].facts[relation])
        return tuple(chain)


def build_world(
    seed: int = 0,
    *,
    num_people: int = WORLD_SIZES["num_people"],
    num_companies: int = WORLD_SIZES["num_companies"],
    num_cities: int = WORLD_SIZES["num_cities"],
    num_countries: int = WORLD_SIZES["num_countries"],
) -> World:
    """Generate a world deterministically from ``seed`` (cached: one build per process).

    The cache keys on the seed and the counts, however they are passed, so
    ``build_world()`` and ``build_world(0, **WORLD_SIZES)`` are the same object.

    Args:
        seed: World seed; train and test of one world share it.
        num_people: People (at least ``num_cities`` and twice ``num_companies``,
            so that mayors, founders and CEOs can be distinct).
        num_companies: Companies.
        num_cities: Cities (at least ``num_countries``: every country has a city).
        num_countries: Countries (at least 1).

    Raises:
        ValueError: The counts cannot make a world with those guarantees.
    """
    return _generate_world(seed, num_people, num_companies, num_cities, num_countries)


@functools.lru_cache(maxsize=8)
def _generate_world(
    seed: int, num_people: int, num_companies: int, num_cities: int, num_countries: int
) -> World:
    if num_countries < 1 or num_cities < max(2, num_countries) or num_companies < 1:
        raise ValueError(
            f"Need num_countries >= 1, num_cities >= max(2, num_countries) and num_companies >= 1; "
            f"got {num_countries}, {num_cities} and {num_companies}."
        )
    if num_people < max(num_cities, 2 * num_companies):
        raise ValueError(
            f"num_people={num_people} must be at least num_cities ({num_cities}) and twice "
            f"num_companies ({2 * num_companies})."
        )
    rng = random.Random(f"synth_hop/world/{seed}")
    words = _unique_words(rng, 2 * num_people + num_companies + num_cities + num_countries)
    people = [f"{words.pop()} {words.pop()}" for _ in range(num_people)]
    companies = [f"{words.pop()} {rng.choice(COMPANY_SUFFIXES)}" for _ in range(num_companies)]
    cities = [words.pop() for _ in range(num_cities)]
    countries = [words.pop() for _ in range(num_countries)]

    names = {"person": people, "company": companies, "city": cities, "country": countries}
    facts = _link(rng, people, companies, cities, countries)
    entities: dict[str, Entity] = {}
    for entity_type in ENTITY_TYPES:
        for index, name in enumerate(names[entity_type]):
            text = _passage_text(rng, name, entity_type, facts[name])
            split = "test" if index % TEST_EVERY == TEST_EVERY - 1 else "train"
            passage = Passage(name, text, name)
            entities[name] = Entity(name, entity_type, facts[name], passage, split)
    return World(seed, entities)


def _link(
    rng: random.Random,
    people: list[str],
    companies: list[str],
    cities: list[str],
    countries: list[str],
) -> dict[str, dict[str, str]]:
    """Draw every relation's value for every entity (name -> relation -> value name).

    Mayors are distinct people, as are founders and CEOs (so a founder is never
    their company's CEO), and a person's birthplace is never their home city:
    confusing ``born_in`` with ``lives_in`` (or ``founded_by`` with ``ceo``)
    always leads to a different entity.
    """
    facts: dict[str, dict[str, str]] = {
        name: {} for name in people + companies + cities + countries
    }
    # Every country gets one city first, so every country has a capital.
    extra = rng.choices(countries, k=len(cities) - len(countries))
    for city, country in zip(cities, countries + extra, strict=True):
        facts[city]["country"] = country
    for country in countries:
        own = [city for city in cities if facts[city]["country"] == country]
        facts[country]["capital"] = rng.choice(own)
    for city, mayor in zip(cities, rng.sample(people, len(cities)), strict=True):
        facts[city]["mayor"] = mayor
    leaders = rng.sample(people, 2 * len(companies))
    for index, company in enumerate(companies):
        facts[company]["founded_by"] = leaders[2 * index]
        facts[company]["ceo"] = leaders[2 * index + 1]
        facts[company]["headquartered_in"] = rng.choice(cities)
    for person in people:
        born, lives = rng.sample(cities, 2)
        facts[person].update(born_in=born, lives_in=lives, works_for=rng.choice(companies))
    return facts


def _unique_words(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct capitalised words of 2-3 syllables, in random order."""
    words: set[str] = set()
    while len(words) < count:
        syllables = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3))]
        words.add(("".join(syllables) + rng.choice(_CODAS)).capitalize())
    # Sorting first makes the order independent of set iteration order.
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


def _passage_text(rng: random.Random, name: str, entity_type: str, facts: dict[str, str]) -> str:
    if entity_type == "person":
        subject, possessive = rng.choice((("She", "Her"), ("He", "His")))
        kind = rng.choice(OCCUPATIONS)
    else:
        subject, possessive = "It", "Its"
        kind = f"{rng.choice(INDUSTRIES)} company" if entity_type == "company" else entity_type
    article = "an" if kind[0] in "aeiou" else "a"
    statements = [
        relation.statement.format(subject=subject, possessive=possessive, value=facts[key])
        for key, relation in RELATIONS.items()
        if relation.domain == entity_type
    ]
    return " ".join([f"{name} is {article} {kind}.", *statements])


def relation_chains(hops: int, relations: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Every type-correct sequence of ``hops`` relations (each value is the next subject)."""
    names = list(RELATIONS) if relations is None else list(relations)
    return [
        chain
        for chain in itertools.product(names, repeat=hops)
        if all(RELATIONS[a].range == RELATIONS[b].domain for a, b in itertools.pairwise(chain))
    ]


def question_text(start: str, relations: Sequence[str]) -> str:
    """Word the question that follows ``relations`` from ``start``."""
    subject = start
    for name in relations[:-1]:
        subject = RELATIONS[name].phrase.format(x=subject)
    return RELATIONS[relations[-1]].question.format(x=subject)


def generate_synth_hop(
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    min_hops: int = 2,
    max_hops: int = 4,
    relations: Sequence[str] | None = None,
    world: World | None = None,
    holdout: str = "start",
) -> list[Task]:
    """Generate ``n`` distinct multi-hop questions, deterministically from ``seed`` and ``split``.

    A draw picks a hop count, then a relation chain of that length, then a start
    entity of the split; draws that revisit an entity (the capital's country is
    the start again) or repeat a question are skipped.

    Args:
        n: Number of questions.
        seed: Generation seed; train and test draw from separate streams.
        split: ``"train"`` or ``"test"`` (see ``holdout``).
        min_hops: Fewest hops (searches needed).
        max_hops: Most hops.
        relations: Keys of ``RELATIONS`` that chains may use; all by default.
        world: The world to ask about; ``build_world()`` by default.
        holdout: What the test split holds out: ``"start"`` entities (test questions
            start from entities no train question starts from) or ``"question"``s
            (a start entity and relation chain is in one split; every fifth, by CRC-32,
            is a test question).

    Returns:
        Tasks whose ``passages`` are the chain's passages, ``supporting`` their
        titles, and ``meta`` holds ``relations``, ``question_type`` (the relations
        joined by ``/``), ``hops``, ``entities`` (the chain, answer last),
        ``start_type``, ``answer_type`` and ``split``.

    Raises:
        ValueError: On an invalid knob, or when fewer than ``n`` distinct
            questions exist for them.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}.")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    if not 1 <= min_hops <= max_hops:
        raise ValueError(f"Need 1 <= min_hops <= max_hops, got {min_hops} and {max_hops}.")
    unknown = sorted(set(relations or ()) - set(RELATIONS))
    if unknown:
        raise ValueError(f"Unknown relations {unknown}; known: {sorted(RELATIONS)}.")
    world = build_world() if world is None else world
    chains = {hops: relation_chains(hops, relations) for hops in range(min_hops, max_hops + 1)}
    starts = {
        entity_type: [
            e.name for e in world.of_type(entity_type) if holdout == "question" or e.split == split
        ]
        for entity_type in ENTITY_TYPES
    }
    rng = random.Random(f"synth_hop/{split}/{seed}")
    tasks: list[Task] = []
    asked: set[tuple[str, tuple[str, ...]]] = set()
    for _ in range(_MAX_ATTEMPTS_PER_TASK * max(n, 1)):
        if len(tasks) == n:
            break
        options = chains[rng.randint(min_hops, max_hops)]
        if not options:
            continue
        chain = rng.choice(options)
        candidates = starts[RELATIONS[chain[0]].domain]
        if not candidates:
            continue
        start = rng.choice(candidates)
        entities = world.follow(start, chain)
        if len(set(entities)) < len(entities) or (start, chain) in asked:
            continue
        if holdout == "question" and _question_split(start, chain) != split:
            continue
        asked.add((start, chain))
        tasks.append(
            _make_task(world, chain, entities, f"synth_hop/{split}/{seed}/{len(tasks)}", split)
        )
    if len(tasks) < n:
        raise ValueError(
            f"Could only generate {len(tasks)} of {n} distinct {split} questions with "
            f"min_hops={min_hops}, max_hops={max_hops}, relations={relations}; loosen the knobs "
            f"or build a larger world."
        )
    return tasks


def _question_split(start: str, chain: Sequence[str]) -> str:
    """The split of a question under ``holdout="question"``: every fifth, by CRC-32."""
    key = "/".join((start, *chain)).encode("utf-8")
    return "test" if zlib.crc32(key) % TEST_EVERY == TEST_EVERY - 1 else "train"


def _make_task(
    world: World, chain: tuple[str, ...], entities: tuple[str, ...], task_id: str, split: str
) -> Task:
    searched = entities[:-1]
    answer = entities[-1]
    gold_path = tuple(f"<search_query> {name}</search_query>" for name in searched)
    meta = {
        "relations": chain,
        "question_type": "/".join(chain),
        "hops": len(chain),
        "entities": entities,
        "start_type": world.entities[entities[0]].type,
        "answer_type": world.entities[answer].type,
        "split": split,
    }
    return Task(
        id=task_id,
        question=question_text(entities[0], chain),
        answers=(answer,),
        gold_path=(*gold_path, f"<answer> {answer}</answer>"),
        passages=tuple(world.entities[name].passage for name in searched),
        supporting=searched,
        meta=meta,
        unique_sound_path=True,
    )


@functools.lru_cache(maxsize=8)
def world_search_tool(world: World, *, k: int = 1, max_chars: int = 500) -> SearchTool:
    """The search tool over a whole world's passages, built once per process and world."""
    return SearchTool(shared_index(world.passages), k=k, max_chars=max_chars)


class SynthHopEnv(SwirlEnv):
    """``swirl/SynthHop-v0``: generated multi-hop questions answered with several searches.

    Args:
        split: ``"train"`` or ``"test"`` (one shared world; see ``holdout``).
        num_tasks: Number of questions generated for this env.
        seed: Question seed (not the episode seed of ``reset``).
        min_hops: Fewest hops per question.
        max_hops: Most hops per question; must leave room for the answer within
            ``max_steps``.
        relations: Keys of ``RELATIONS`` that questions may use; all by default.
        world_seed: Seed of the world (its entities, names and passages).
        holdout: What the test split holds out: ``"start"`` entities or ``"question"``s
            (see ``generate_synth_hop``).
        world_scale: Multiplies every entity count of the default world (240 people,
            80 companies, 64 cities, 16 countries). A larger world has more distinct
            names, so a small model has to learn to copy names rather than memorise
            the few it was trained on.
        max_steps: Step budget per episode.
        system_prompt: Overrides ``SEARCH_PROMPT``.
        judge: Optional answer judge (see ``SwirlEnv``).
        render_mode: ``"ansi"``, ``"human"`` or None.
        **kwargs: Passed on to ``SwirlEnv`` (``max_action_chars``, ``max_result_chars``).
    """

    def __init__(
        self,
        split: str = "train",
        num_tasks: int = 1000,
        seed: int = 0,
        *,
        min_hops: int = 2,
        max_hops: int = 4,
        relations: Sequence[str] | None = None,
        world_seed: int = 0,
        world_scale: int = 1,
        holdout: str = "start",
        max_steps: int = 5,
        system_prompt: str | None = None,
        judge: AnswerJudge | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if max_hops + 1 > max_steps:
            raise ValueError(
                f"max_steps={max_steps} leaves no room for {max_hops} searches and the answer; "
                f"use max_steps >= {max_hops + 1}."
            )
        if world_scale < 1:
            raise ValueError(f"world_scale must be a positive integer, got {world_scale}.")
        sizes = {name: count * world_scale for name, count in WORLD_SIZES.items()}
        self.world = build_world(world_seed, **sizes)
        tasks = generate_synth_hop(
            num_tasks,
            seed=seed,
            split=split,
            min_hops=min_hops,
            max_hops=max_hops,
            relations=relations,
            world=self.world,
            holdout=holdout,
        )
        super().__init__(
            tasks,
            [world_search_tool(self.world)],
            system_prompt=SEARCH_PROMPT if system_prompt is None else system_prompt,
            max_steps=max_steps,
            scorer=qa_scores,
            judge=judge,
            render_mode=render_mode,
            **kwargs,
        )
