"""Small dataset files in the published formats of GSM8K, HotPotQA, MuSiQue, BeerQA and CofCA.

The records are written here (never read from a download) so that a clone passes
its tests alone. They keep the quirks the loaders must handle: GSM8K annotations
with decimals and a solution without any; HotPotQA sentences with leading spaces,
a yes/no comparison question and extra keys; MuSiQue titles that repeat (so a title
alone is an ambiguous query), ``A >> relation`` sub-questions and ``#1`` references,
answer aliases and an unanswerable MuSiQue-Full question; BeerQA's ``{"data": ...}``
wrapper with two gold paragraphs under one title.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GSM8K = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
        "many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes "
        "of babysitting. How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    },
    {
        "question": "A shop sells 3 pens for $10. What does one pen cost, to the cent?",
        "answer": "One pen costs 10/3 = $<<10/3=3.33>>3.33.\n#### 3.33",
    },
    {
        "question": "A farm has 1,200 hens. How many hens does it have?",
        "answer": "The farm has 1,200 hens.\n#### 1,200",
    },
]

HOTPOTQA = [
    {
        "_id": "5a8b57f25542995d1e6f1371",
        "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
        "answer": "yes",
        "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood", 0]],
        "context": [
            [
                "Adam Collis",
                ["Adam Collis is an American filmmaker and actor.", " He attended Duke."],
            ],
            [
                "Ed Wood (film)",
                ["Ed Wood is a 1994 American biographical period comedy-drama film."],
            ],
            ["Scott Derrickson", ["Scott Derrickson is an American director.", " He lives in LA."]],
            [
                "Ed Wood",
                ["Edward Davis Wood Jr. was an American filmmaker.", " He made cult films."],
            ],
        ],
        "type": "comparison",
        "level": "hard",
        "annotator": "extra key kept for tolerance",
    },
    {
        "_id": "5a85ea095542994775f606a8",
        "question": "What government position was held by the woman who portrayed Corliss "
        "Archer in the film Kiss and Tell?",
        "answer": "Chief of Protocol",
        "supporting_facts": [
            ["Kiss and Tell (1945 film)", 0],
            ["Shirley Temple", 0],
            ["Shirley Temple", 1],
        ],
        "context": [
            ["Meet Corliss Archer", ["Meet Corliss Archer is an American radio sitcom."]],
            [
                "Kiss and Tell (1945 film)",
                ["Kiss and Tell is a 1945 comedy film starring Shirley Temple as Corliss Archer."],
            ],
            [
                "Shirley Temple",
                [
                    "Shirley Temple Black was an American actress and diplomat.",
                    " As an adult she served as Chief of Protocol of the United States.",
                ],
            ],
            ["Janet Waldo", ["Janet Waldo was an American radio and voice actress."]],
        ],
        "type": "bridge",
        "level": "medium",
    },
]

MUSIQUE = [
    {
        "id": "2hop__1_2",
        "question": "What is the atomic number of the element named after the Roman messenger god?",
        "answer": "80",
        "answer_aliases": ["eighty"],
        "answerable": True,
        "paragraphs": [
            {
                "idx": 0,
                "title": "Mercury (mythology)",
                "paragraph_text": "Mercury is the Roman "
                "messenger god; the element mercury is named after him.",
                "is_supporting": True,
            },
            {
                "idx": 1,
                "title": "Mercury",
                "paragraph_text": "Mercury is a planet; Mercury orbits the Sun.",
                "is_supporting": False,
            },
            {
                "idx": 2,
                "title": "Mercury",
                "paragraph_text": "Mercury is a chemical element with "
                "the symbol Hg and atomic number 80.",
                "is_supporting": True,
            },
            {
                "idx": 3,
                "title": "Venus",
                "paragraph_text": "Venus is the second planet from the Sun.",
                "is_supporting": False,
            },
        ],
        "question_decomposition": [
            {
                "id": 1,
                "question": "Roman messenger god >> named after",
                "answer": "Mercury",
                "paragraph_support_idx": 0,
            },
            {
                "id": 2,
                "question": "What is the atomic number of #1 ?",
                "answer": "80",
                "paragraph_support_idx": 2,
            },
        ],
    },
    {
        "id": "2hop__3_4",
        "question": "Who founded the company that makes the Walkman?",
        "answer": "Masaru Ibuka",
        "answer_aliases": [],
        "answerable": True,
        "paragraphs": [
            {
                "idx": 0,
                "title": "Walkman",
                "paragraph_text": "Walkman is a brand of portable audio players made by Sony.",
                "is_supporting": True,
            },
            {
                "idx": 1,
                "title": "Sony",
                "paragraph_text": "Sony was founded in 1946 by Masaru "
                "Ibuka and Akio Morita in Tokyo.",
                "is_supporting": True,
            },
            {
                "idx": 2,
                "title": "Panasonic",
                "paragraph_text": "Panasonic was founded by Konosuke Matsushita.",
                "is_supporting": False,
            },
        ],
        "question_decomposition": [
            {
                "id": 3,
                "question": "Walkman >> manufacturer",
                "answer": "Sony",
                "paragraph_support_idx": 0,
            },
            {
                "id": 4,
                "question": "Who founded #1 ?",
                "answer": "Masaru Ibuka",
                "paragraph_support_idx": 1,
            },
        ],
    },
]

MUSIQUE_UNANSWERABLE = {
    "id": "2hop__3_4_unanswerable",
    "question": "Who founded the company that makes the Walkman?",
    "answer": "Masaru Ibuka",
    "answer_aliases": [],
    "answerable": False,
    "paragraphs": [
        {
            "idx": 0,
            "title": "Walkman",
            "paragraph_text": "Walkman is a brand of portable audio players made by Sony.",
            "is_supporting": True,
        },
        {
            "idx": 1,
            "title": "Panasonic",
            "paragraph_text": "Panasonic was founded by Konosuke Matsushita.",
            "is_supporting": False,
        },
    ],
    "question_decomposition": [
        {
            "id": 3,
            "question": "Walkman >> manufacturer",
            "answer": "Sony",
            "paragraph_support_idx": 0,
        },
        {
            "id": 4,
            "question": "Who founded #1 ?",
            "answer": "Masaru Ibuka",
            "paragraph_support_idx": None,
        },
    ],
}

BEERQA = {
    "version": "1.0",
    "split": "dev",
    "data": [
        {
            "id": "b1",
            "src": "squad",
            "question": "In what year did the Normans conquer England?",
            "answers": ["1066"],
            "context": [["Normans", "The Norman conquest of England took place in 1066."]],
        },
        {
            "id": "b2",
            "src": "hotpotqa",
            "question": "Which city hosts the university where the author of Dune studied?",
            "answers": ["Seattle"],
            "context": [
                [
                    "Frank Herbert",
                    "Frank Herbert, author of Dune, studied at the University of Washington.",
                ],
                ["University of Washington", "The University of Washington is in Seattle."],
            ],
        },
        {
            "id": "b3",
            "src": "squad",
            "question": "What river runs through the capital of Hungary?",
            "answers": ["the Danube", "Danube"],
            "context": [
                ["Budapest", "Budapest is the capital and most populous city of Hungary."],
                ["Budapest", "The Danube river flows through the middle of Budapest."],
            ],
        },
    ],
}

COFCA = [
    {
        "_id": "5ab93287554299753720f78f",
        "question": "Which country is the birthplace of the inventor of the Glimmerphone?",
        "answer": "Norway",
        "supporting_facts": [["Glimmerphone", 0], ["Ada Lindqvist", 1]],
        "context": [
            ["Glimmerphone", ["The Glimmerphone was invented by Ada Lindqvist in 1911."]],
            ["Ada Lindqvist", ["Ada Lindqvist was an engineer.", " She was born in Norway."]],
            ["Telephone", ["The telephone was patented in 1876."]],
        ],
    },
    {
        "id": "5a866fee5542991e77181657",
        "question": "What sport did the founder of the Brightwater club play?",
        "answers": ["curling"],
        "context": [
            {"title": "Brightwater club", "text": "The Brightwater club was founded by Tom Reyes."},
            {"title": "Tom Reyes", "paragraph_text": "Tom Reyes played curling for twenty years."},
        ],
        "sub_questions": [
            {"question": "Who founded the Brightwater club?", "answer": "Tom Reyes"},
            {"question": "What sport did Tom Reyes play?", "answer": "curling"},
        ],
    },
]


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as a JSON document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Write ``records`` one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_gsm8k(folder: Path, records: list[Any] | None = None) -> Path:
    """``test.jsonl`` as in grade-school-math."""
    return write_jsonl(folder / "test.jsonl", GSM8K if records is None else records)


def write_hotpotqa(folder: Path, *, jsonl: bool = False) -> Path:
    """``hotpot_dev_distractor_v1.json`` (a JSON array), or the same records as JSON Lines."""
    if jsonl:
        return write_jsonl(folder / "hotpot_dev.jsonl", HOTPOTQA)
    return write_json(folder / "hotpot_dev_distractor_v1.json", HOTPOTQA)


def write_musique(folder: Path, *, full: bool = False) -> Path:
    """``musique_ans_v1.0_dev.jsonl``, or MuSiQue-Full's with an unanswerable question."""
    if full:
        return write_jsonl(folder / "musique_full_v1.0_dev.jsonl", [*MUSIQUE, MUSIQUE_UNANSWERABLE])
    return write_jsonl(folder / "musique_ans_v1.0_dev.jsonl", MUSIQUE)


def write_beerqa(folder: Path) -> Path:
    """``beerqa_dev_v1.0.json``."""
    return write_json(folder / "beerqa_dev_v1.0.json", BEERQA)


def write_cofca(folder: Path) -> Path:
    """``cofca.json`` in the shape the CofCA loader reads."""
    return write_json(folder / "cofca.json", COFCA)


WRITERS = {
    "swirl/GSM8K-v0": write_gsm8k,
    "swirl/HotPotQA-v0": write_hotpotqa,
    "swirl/MuSiQue-v0": write_musique,
    "swirl/BeerQA-v0": write_beerqa,
    "swirl/CofCA-v0": write_cofca,
}
"""The fixture writer of each real-data env id."""


def dataset_env_kwargs(env_id: str, folder: Path) -> dict[str, Any]:
    """``{"data_path": ...}`` with the env's fixture written under ``folder`` ({} for other ids)."""
    writer = WRITERS.get(env_id)
    return {} if writer is None else {"data_path": str(writer(folder))}
