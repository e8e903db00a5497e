"""Rating scales: their values, labelled anchors, and the agreement level they imply."""

from dataclasses import dataclass

from annotation.errors import AnnotationError


@dataclass(frozen=True)
class Scale:
    key: str
    label: str
    values: tuple[int, ...]
    anchors: dict[int, str]
    level: str  # the Krippendorff level that fits: nominal, ordinal, interval, ratio

    def __contains__(self, value: object) -> bool:
        return value in self.values


SCALES: dict[str, Scale] = {
    scale.key: scale
    for scale in [
        Scale(
            "1-5",
            "Likert 1–5",
            (1, 2, 3, 4, 5),
            {1: "Not at all", 2: "Slightly", 3: "Moderately", 4: "Very", 5: "Completely"},
            "ordinal",
        ),
        Scale(
            "1-7",
            "Likert 1–7",
            (1, 2, 3, 4, 5, 6, 7),
            {1: "Not at all", 4: "Moderately", 7: "Completely"},
            "ordinal",
        ),
        Scale("binary", "Yes / no", (0, 1), {0: "No", 1: "Yes"}, "nominal"),
        Scale(
            "miko-3",
            "MIKO's three levels",
            (0, 1, 2),
            {0: "Not relevant", 1: "Somewhat relevant", 2: "Highly relevant"},
            "ordinal",
        ),
    ]
}

DEFAULT_QUESTIONS: dict[str, str] = {
    "plausibility": "Could this be why the user posted, or what follows, given the post?",
    "typicality": "Is this a typical, representative reading of this post?",
}


def get_scale(key: str) -> Scale:
    """The scale of this key; an AnnotationError names the known ones otherwise."""
    try:
        return SCALES[key]
    except KeyError:
        known = ", ".join(SCALES)
        raise AnnotationError(f"unknown scale {key!r}; known scales: {known}") from None
