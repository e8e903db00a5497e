"""The report's plot: each run's mean rating on a question as a dot with its 95% interval, on the
question's scale. Laid out here, drawn by `templates/comparisons/plots/intervals.svg` (no
JavaScript, every text escaped by the template), as the evaluation app's plots are."""

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from annotation.scales import get_scale

LABEL_W = 170
PLOT_W = 330
ROW_H = 22


def intervals_chart(question: dict) -> SafeString:
    """`question` is one entry of the report's `questions`."""
    values = get_scale(question["scale"]).values
    low, high = min(values), max(values)

    def x(value: float) -> str:
        return f"{LABEL_W + (value - low) / ((high - low) or 1) * PLOT_W:.1f}"

    rows = []
    for i, run in enumerate(question["runs"]):
        y = 14 + i * ROW_H
        row = {"name": run["name"], "y": y, "text_y": y + 4, "mean": None}
        if run["mean"] is not None:
            ci = run["ci95"]
            row |= {
                "mean": f"{run['mean']:.2f}",
                "cx": x(run["mean"]),
                "ci": {"x1": x(ci[0]), "x2": x(ci[1]), "text": f"{ci[0]:.2f}–{ci[1]:.2f}"},
            }
        rows.append(row)
    height = ROW_H * len(rows) + 30
    context = {
        "question": question["name"],
        "width": LABEL_W + PLOT_W + 60,
        "height": height,
        "ticks": [{"x": x(v), "label": v} for v in values],
        "guide_bottom": height - 22,
        "tick_y": height - 8,
        "rows": rows,
        "label_x": LABEL_W - 8,
        "na_x": LABEL_W + 4,
        "num_x": LABEL_W + PLOT_W + 8,
    }
    # The template ends without a newline, so the SVG is exactly what it draws.
    return render_to_string("comparisons/plots/intervals.svg", context)
