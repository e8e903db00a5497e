"""The dashboard's SVG plots, drawn by templates, are byte for byte the SVG kept under plots/ (the
earlier Python f-string drawing's, with bar labels in the ink that reads on their bar since issue
14), including escaped names and undefined alphas."""

from pathlib import Path

import pytest

from evaluation.plots import alpha_chart, distribution_chart

EXPECTED = Path(__file__).parent / "plots"

FIGURES = {
    "ordinal": {
        "alpha": 0.71234, "ci95": [0.61, 0.8], "reason": None,
        "values": {"1": 10, "2": 0, "3": 25, "4": 40, "5": 7},
        "kinds": {
            "xWant": {"alpha": 0.5, "ci95": [-0.35, 0.9],
                      "values": {"1": 3, "2": 0, "3": 9, "4": 1, "5": 0}},
            "oEffect": {"alpha": None, "ci95": None, "reason": "no pairable item: <b>&'\"",
                        "values": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}},
            "<script>k": {"alpha": 1.0, "ci95": None,
                          "values": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}},
        },
    },
    "nominal": {
        "alpha": None, "ci95": None, "reason": None, "values": {"0": 3, "1": 500}, "kinds": {},
    },
    "seven": {
        "alpha": -0.4, "ci95": [-0.9, 0.1],
        "values": {str(v): v * 3 for v in range(1, 8)},
        "kinds": {"open": {"alpha": 0.2, "ci95": [0.1, 0.3],
                           "values": {str(v): 1 for v in range(1, 8)}}},
    },
}  # fmt: skip
QUESTIONS = {"ordinal": "plausibility", "nominal": "is <it> 'ok' & \"fine\"", "seven": "typicality"}


@pytest.mark.parametrize("case", sorted(FIGURES))
@pytest.mark.parametrize("chart", [alpha_chart, distribution_chart], ids=["alpha", "distribution"])
def test_plots_draw_the_same_svg(case, chart):
    name = "alpha" if chart is alpha_chart else "distribution"
    expected = (EXPECTED / f"{case}.{name}.svg").read_text(encoding="utf-8").rstrip("\n")
    assert str(chart(QUESTIONS[case], FIGURES[case])) == expected
