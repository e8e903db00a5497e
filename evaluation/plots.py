"""Small SVG plots drawn on the server: no JavaScript, no CDN, readable without colour alone."""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Sequential blues for ordered values, light to dark; text on a bar picks black or white.
PALETTE = ["#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b", "#041f4a"]
LABEL_W = 130
ROW_H = 22


def _value_colour(index: int, count: int) -> str:
    if count <= 1:
        return PALETTE[3]
    return PALETTE[round(index * (len(PALETTE) - 1) / (count - 1))]


def alpha_chart(question: str, figures: dict) -> SafeString:
    """Alpha of the question overall and per kind as dots with their 95% intervals.

    Dashed guides at 0.667 and 0.8, Krippendorff's thresholds for tentative and reliable
    conclusions.
    """
    rows = [("all kinds", figures)] + list(figures.get("kinds", {}).items())
    values = [
        v
        for _, f in rows
        for v in ([f["alpha"]] + (f.get("ci95") or []))
        if v is not None
    ]  # fmt: skip
    lo = min([-0.2, *values])
    hi = 1.0
    plot_w, width = 360, LABEL_W + 360 + 70
    height = ROW_H * len(rows) + 30

    def x(value: float) -> float:
        return LABEL_W + (value - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="alpha-{escape(question)}">',
        f'<title id="alpha-{escape(question)}">Krippendorff\'s alpha of {escape(question)} per '
        f"item kind, with 95% bootstrap intervals</title>",
    ]
    for guide, label in ((0.0, "0"), (0.667, ".667"), (0.8, ".8"), (1.0, "1")):
        gx = x(guide)
        dash = "" if guide in (0.0, 1.0) else ' stroke-dasharray="3 3"'
        parts.append(
            f'<line x1="{gx:.1f}" y1="4" x2="{gx:.1f}" y2="{height - 22}" stroke="#b8bfcc"{dash}/>'
            f'<text x="{gx:.1f}" y="{height - 8}" text-anchor="middle" class="tick">{label}</text>'
        )
    for i, (name, f) in enumerate(rows):
        y = 14 + i * ROW_H
        weight = ' font-weight="600"' if i == 0 else ""
        parts.append(
            f'<text x="{LABEL_W - 8}" y="{y + 4}" text-anchor="end"{weight}>{escape(name)}</text>'
        )
        if f["alpha"] is None:
            reason = escape(f.get("reason") or "undefined")
            parts.append(
                f'<text x="{LABEL_W + 4}" y="{y + 4}" class="tick">n/a'
                f"<title>{reason}</title></text>"
            )
            continue
        ci = f.get("ci95")
        if ci:
            parts.append(
                f'<line x1="{x(ci[0]):.1f}" y1="{y}" x2="{x(ci[1]):.1f}" y2="{y}" '
                f'stroke="#2457c5" stroke-width="2"/>'
            )
        parts.append(
            f'<circle cx="{x(f["alpha"]):.1f}" cy="{y}" r="4.5" fill="#2457c5">'
            f"<title>{escape(name)}: alpha {f['alpha']:.3f}"
            + (f", 95% CI {ci[0]:.3f}–{ci[1]:.3f}" if ci else "")
            + "</title></circle>"
            f'<text x="{LABEL_W + plot_w + 8}" y="{y + 4}" class="num">{f["alpha"]:.3f}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def distribution_chart(question: str, figures: dict) -> SafeString:
    """Share of each rating value, overall and per kind, as 100% stacked bars with a legend."""
    rows = [("all kinds", figures)] + list(figures.get("kinds", {}).items())
    domain = list(figures.get("values", {}))
    plot_w, width = 360, LABEL_W + 360 + 80
    height = ROW_H * len(rows) + 34
    parts = [
        f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="dist-{escape(question)}">',
        f'<title id="dist-{escape(question)}">Distribution of {escape(question)} ratings per '
        f"item kind</title>",
    ]
    for i, (name, f) in enumerate(rows):
        y = 6 + i * ROW_H
        counts = [f.get("values", {}).get(v, 0) for v in domain]
        total = sum(counts)
        weight = ' font-weight="600"' if i == 0 else ""
        parts.append(
            f'<text x="{LABEL_W - 8}" y="{y + 12}" text-anchor="end"{weight}>{escape(name)}</text>'
        )
        left = float(LABEL_W)
        for j, (value, count) in enumerate(zip(domain, counts, strict=True)):
            if not total or not count:
                continue
            w = count / total * plot_w
            colour = _value_colour(j, len(domain))
            parts.append(
                f'<rect x="{left:.1f}" y="{y}" width="{w:.1f}" height="{ROW_H - 6}" '
                f'fill="{colour}"><title>{escape(name)}: {escape(value)} given {count} times '
                f"({100 * count / total:.0f}%)</title></rect>"
            )
            if w > 22:
                ink = "#fff" if j >= len(domain) / 2 else "#1d2330"
                parts.append(
                    f'<text x="{left + w / 2:.1f}" y="{y + 12}" text-anchor="middle" '
                    f'fill="{ink}" class="tick">{escape(value)}</text>'
                )
            left += w
        parts.append(f'<text x="{LABEL_W + plot_w + 8}" y="{y + 12}" class="num">n={total}</text>')
    ly = height - 10
    for j, value in enumerate(domain):
        lx = LABEL_W + j * 44
        colour = _value_colour(j, len(domain))
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"'
            f' stroke="#5b6475" stroke-width=".5"/><text x="{lx + 14}" y="{ly}" class="tick">'
            f"{escape(value)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
