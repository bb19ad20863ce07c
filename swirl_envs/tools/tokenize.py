"""Text to search terms: the default word tokeniser, its stopwords, and title normalisation.

A tokeniser is any callable ``str -> list[str]``. The index and the query must use
the same one, so a saved index records the tokeniser's name (``tokenizer_name``)
and refuses to load under a different one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

Tokenizer = Callable[[str], list[str]]
"""Turns a passage or a query into the terms BM25 counts."""

ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because
    been before being below between both but by can couldn couldn't d did didn didn't do does
    doesn doesn't doing don don't down during each few for from further had hadn hadn't has
    hasn hasn't have haven haven't having he her here hers herself him himself his how i if in
    into is isn isn't it it's its itself just ll m ma me mightn mightn't more most mustn
    mustn't my myself needn needn't no nor not now o of off on once only or other our ours
    ourselves out over own re s same shan shan't she she's should should've shouldn shouldn't
    so some such t than that that'll the their theirs them themselves then there these they
    this those through to too under until up ve very was wasn wasn't we were weren weren't
    what when where which while who whom why will with won won't wouldn wouldn't y you you'd
    you'll you're you've your yours yourself yourselves
    """.split()
)
"""English stopwords (NLTK's list): words too common to help ranking."""

# Ideographs and kana are written without spaces, so each character is one term.
# Hangul is written with spaces and stays a word.
_CJK = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_TERM = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_WORD = re.compile(r"[^\W_]+")
# Combining diacritical marks (the accents of Latin, Greek and Cyrillic letters).
# Other scripts' combining marks carry meaning and are kept.
_ACCENTS = re.compile("[\u0300-\u036f]")


def fold(text: str) -> str:
    """Case-fold and strip Latin/Greek/Cyrillic accents, so "Café" and "cafe" are one word."""
    text = text.casefold()
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", _ACCENTS.sub("", unicodedata.normalize("NFKD", text)))


class WordTokenizer:
    """Fold case and accents, split into Unicode words (CJK into characters), drop stopwords.

    A class rather than a function so that its name (recorded in a saved index)
    reflects its settings and it pickles.

    Args:
        stopwords: Terms to drop (after folding).
    """

    version = 1

    def __init__(self, stopwords: Iterable[str] = ENGLISH_STOPWORDS):
        self.stopwords = frozenset(stopwords)

    @property
    def name(self) -> str:
        """An identifier of the tokeniser and its settings, stored in saved indexes."""
        if self.stopwords == ENGLISH_STOPWORDS:
            return f"word-v{self.version}"
        return f"word-v{self.version}-stopwords-{len(self.stopwords)}"

    def __call__(self, text: str) -> list[str]:
        """Return the terms of ``text`` in order (repeats kept: BM25 counts them)."""
        stopwords = self.stopwords
        return [term for term in _TERM.findall(fold(text)) if term not in stopwords]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and other.stopwords == self.stopwords

    def __hash__(self) -> int:
        return hash(self.stopwords)

    def __repr__(self) -> str:
        return f"WordTokenizer(<{len(self.stopwords)} stopwords>)"


default_tokenizer = WordTokenizer()
"""The tokeniser used unless another is given: English stopwords, Unicode-aware."""


def tokenizer_name(tokenizer: Tokenizer) -> str:
    """Name a tokeniser: its ``name`` attribute, else its module-qualified name."""
    name = getattr(tokenizer, "name", None)
    if isinstance(name, str) and name:
        return name
    target = tokenizer if hasattr(tokenizer, "__qualname__") else type(tokenizer)
    return f"{target.__module__}.{target.__qualname__}"


def normalize_title(text: str) -> str:
    """Fold case and accents and reduce punctuation and spacing, to compare a query with titles."""
    return " ".join(_WORD.findall(fold(text)))
