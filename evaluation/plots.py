"""Small SVG plots drawn on the server: no JavaScript, no CDN, readable without colour alone.

The functions here lay a chart out (positions, colours, labels); the templates under
`templates/evaluation/plots/` draw it, escaping every text as any template does.
"""

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

# Sequential blues for ordered values, light to dark, each of which reads with black or white
# text at 4.5:1 or more (WCAG AA): ColorBrewer's #3182bd, which reads with neither, is #2171b5.
PALETTE = ["#deebf7", "#9ecae1", "#6baed6", "#2171b5", "#08519c", "#08306b", "#041f4a"]
DARK_INK, LIGHT_INK = "#1d2330", "#ffffff"
# Krippendorff's thresholds: alpha below TENTATIVE supports no conclusion, even a tentative one;
# at RELIABLE or above the data are reliable.
TENTATIVE_ALPHA, RELIABLE_ALPHA = 0.667, 0.8
LABEL_W = 130
ROW_H = 22
PLOT_W = 360


def _value_colour(index: int, count: int) -> str:
    if count <= 1:
        return PALETTE[3]
    return PALETTE[round(index * (len(PALETTE) - 1) / (count - 1))]


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    low, high = sorted((_luminance(a), _luminance(b)))
    return (high + 0.05) / (low + 0.05)


def ink_on(colour: str) -> str:
    """The text colour that reads best on `colour`."""
    return max((DARK_INK, LIGHT_INK), key=lambda ink: contrast(ink, colour))


def _rows(figures: dict) -> list[tuple[str, dict]]:
    return [("all kinds", figures)] + list(figures.get("kinds", {}).items())


def alpha_chart(question: str, figures: dict) -> SafeString:
    """Alpha of the question overall and per kind as dots with their 95% intervals.

    Dashed guides at 0.667 and 0.8, Krippendorff's thresholds for tentative and reliable
    conclusions.
    """
    rows = _rows(figures)
    values = [
        v
        for _, f in rows
        for v in ([f["alpha"]] + (f.get("ci95") or []))
        if v is not None
    ]  # fmt: skip
    lo, hi = min([-0.2, *values]), 1.0
    height = ROW_H * len(rows) + 30

    def x(value: float) -> str:
        return f"{LABEL_W + (value - lo) / (hi - lo) * PLOT_W:.1f}"

    guides = [
        {"x": x(guide), "label": label, "dashed": guide not in (0.0, 1.0)}
        for guide, label in (
            (0.0, "0"),
            (TENTATIVE_ALPHA, ".667"),
            (RELIABLE_ALPHA, ".8"),
            (1.0, "1"),
        )  # fmt: skip
    ]
    laid_out = []
    for i, (name, f) in enumerate(rows):
        row = {"name": name, "y": 14 + i * ROW_H, "first": i == 0, "alpha": None}
        row["text_y"] = row["y"] + 4
        if f["alpha"] is None:
            row["reason"] = f.get("reason") or "undefined"
        else:
            ci = f.get("ci95")
            row |= {
                "alpha": f"{f['alpha']:.3f}",
                "cx": x(f["alpha"]),
                "ci": ci and {"x1": x(ci[0]), "x2": x(ci[1]), "text": f"{ci[0]:.3f}–{ci[1]:.3f}"},
            }
        laid_out.append(row)
    context = {
        "question": question,
        "width": LABEL_W + PLOT_W + 70,
        "height": height,
        "guide_bottom": height - 22,
        "tick_y": height - 8,
        "guides": guides,
        "rows": laid_out,
        "label_x": LABEL_W - 8,
        "na_x": LABEL_W + 4,
        "num_x": LABEL_W + PLOT_W + 8,
    }
    return _render("alpha", context)


def distribution_chart(question: str, figures: dict) -> SafeString:
    """Share of each rating value, overall and per kind, as 100% stacked bars with a legend."""
    rows = _rows(figures)
    domain = list(figures.get("values", {}))
    height = ROW_H * len(rows) + 34
    laid_out = []
    for i, (name, f) in enumerate(rows):
        y = 6 + i * ROW_H
        counts = [f.get("values", {}).get(v, 0) for v in domain]
        total = sum(counts)
        bars = []
        left = float(LABEL_W)
        for j, (value, count) in enumerate(zip(domain, counts, strict=True)):
            if not total or not count:
                continue
            w = count / total * PLOT_W
            colour = _value_colour(j, len(domain))
            bars.append(
                {
                    "x": f"{left:.1f}",
                    "width": f"{w:.1f}",
                    "colour": colour,
                    "value": value,
                    "count": count,
                    "percent": f"{100 * count / total:.0f}",
                    # A label only where it fits, in the ink that reads on the bar's colour.
                    "label_x": f"{left + w / 2:.1f}" if w > 22 else None,
                    "ink": ink_on(colour),
                }
            )
            left += w
        laid_out.append(
            {"name": name, "y": y, "text_y": y + 12, "first": i == 0, "bars": bars, "total": total}
        )
    ly = height - 10
    legend = [
        {"x": LABEL_W + j * 44, "text_x": LABEL_W + j * 44 + 14, "value": value,
         "colour": _value_colour(j, len(domain))}
        for j, value in enumerate(domain)
    ]  # fmt: skip
    context = {
        "question": question,
        "width": LABEL_W + PLOT_W + 80,
        "height": height,
        "rows": laid_out,
        "bar_h": ROW_H - 6,
        "label_x": LABEL_W - 8,
        "num_x": LABEL_W + PLOT_W + 8,
        "legend": legend,
        "legend_y": ly,
        "swatch_y": ly - 9,
    }
    return _render("distribution", context)


def _render(name: str, context: dict) -> SafeString:
    # The templates end without a newline, so the SVG is exactly what they draw.
    return render_to_string(f"evaluation/plots/{name}.svg", context)
