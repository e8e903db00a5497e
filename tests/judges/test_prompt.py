"""The judge's answer parser: strict about the rating, tolerant about the surface."""

import pytest

from annotation.scales import get_scale
from generation.pipelines.base import ParseError
from judges.prompt import parse_rating, rating_schema, template_versions

LIKERT = get_scale("1-5")


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("rating: 4", 4),
        ("Rating: 2\n", 2),
        ("**Rating:** 5", 5),
        ("The knowledge fits the post well.\nrating: 4", 4),
        ("rating = 3", 3),
        ('{"rating": 1}', 1),
        ('{"rating": "2"}', 2),
        ("rating: 3\nrating: 3", 3),
    ],
)
def test_a_rating_is_read(answer: str, value: int) -> None:
    assert parse_rating(answer, scale=LIKERT) == {"value": value}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("I would say it is quite plausible.", 'no line "rating: N"'),
        ("4", 'no line "rating: N"'),
        ("", 'no line "rating: N"'),
        ("rating: 4\nrating: 2", r"several ratings: \[2, 4\]"),
        ("rating: 6", r"rating 6 is not on the scale \(1, 2, 3, 4, 5\)"),
        ("rating: 0", "not on the scale"),
        ('{"rating": 4.5}', "not a whole number"),
        ('{"rating": true}', "not a whole number"),
        ('{"score": 4}', 'has no "rating"'),
        ('{"rating": 4', "not valid JSON"),
        ("The rating: 4 out of 5", 'no line "rating: N"'),
    ],
)
def test_an_unreadable_answer_is_a_parse_error(answer: str, error: str) -> None:
    with pytest.raises(ParseError, match=error):
        parse_rating(answer, scale=LIKERT)


def test_binary_and_miko_scales_and_the_schema() -> None:
    assert parse_rating("rating: 0", scale=get_scale("binary")) == {"value": 0}
    with pytest.raises(ParseError):
        parse_rating("rating: 3", scale=get_scale("miko-3"))
    assert rating_schema(get_scale("miko-3"))["properties"]["rating"]["enum"] == [0, 1, 2]
    assert template_versions() == ["v1"]
