"""Rating parsing matches the published regex exactly: first match of \\bRating:\\s*(\\d+)\\b."""

from __future__ import annotations

import re

import pytest

from codal_bench.codal.judge import parse_rating
from codal_bench.codal.templates import PAPER_SETTINGS, load_templates

PUBLISHED = re.compile(r"\bRating:\s*(\d+)\b")
SCALE = (1.0, 10.0)

# (judge output, rating the published regex yields or None for a parse failure, out of range)
CASES = [
    ("Rationale: fine.\nRating: 7/10", 7.0, False),
    ("Rating:8", 8.0, False),
    ("rating: 9", None, False),  # case-sensitive, as published
    ("RATING: 9", None, False),
    ("**Rating:** 6", None, False),  # markdown between colon and number defeats the regex
    ("**Rating: 6**", 6.0, False),
    ("Rating: 3\nOn reflection... Rating: 9", 3.0, False),  # two ratings: the first wins
    ("The answer is good, I would give it a nine.", None, False),  # none
    ("", None, False),
    ("Rating:\n\n  5", 5.0, False),  # \s* crosses newlines
    ("Rating: 10", 10.0, False),
    ("Rating: 11", 11.0, True),  # kept as parsed, flagged out of range
    ("Rating: 0", 0.0, True),
    ("Rating: 7.5", 7.0, False),  # \d+ then \b before the dot
    ("Rating: 8,5", 8.0, False),
    ("Rating: 123abc", None, False),  # no word boundary after any digit prefix
    ("Final Rating: 4", 4.0, False),
    ("MyRating: 4", None, False),  # no word boundary before R
    ("Rating: [Rating for Assistant's Response]\nRating: 2", 2.0, False),
    ("Rating: -3", None, False),
    ("Rating: 007", 7.0, False),
    (
        "Rating: ８",
        8.0,
        False,
    ),  # \d is Unicode-aware in Python: fullwidth 8 parses (int("８") == 8)
]


@pytest.mark.parametrize(("text", "expected", "oor"), CASES)
def test_rating_parse_table(text: str, expected: float | None, oor: bool) -> None:
    ours = parse_rating(text, PUBLISHED, SCALE)
    assert ours.rating == expected
    assert ours.out_of_range is oor
    # And it is what the published regex does, not what we think it should do.
    m = PUBLISHED.search(text)
    assert (float(m.group(1)) if m else None) == ours.rating


def test_rationale_is_the_text_before_the_rating_line() -> None:
    out = "Rationale: Clear and correct,\nbut verbose.\nRating: 7/10\nExtra."
    parsed = parse_rating(out, PUBLISHED, SCALE)
    assert parsed.rationale == "Clear and correct,\nbut verbose."
    failure = parse_rating("  no grade here  ", PUBLISHED, SCALE)
    assert failure.rating is None and failure.rationale == "no grade here"


def test_regex_in_settings_is_the_published_one() -> None:
    assert PAPER_SETTINGS["rating_regex"] == PUBLISHED.pattern
    assert load_templates("codal-eval").pattern.pattern == PUBLISHED.pattern
    assert load_templates("codal").name == "codal-eval"  # the set's former name still loads it
    assert load_templates().name == "paper"
    assert load_templates().pattern.pattern == PUBLISHED.pattern
