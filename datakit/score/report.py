"""reports/score.html: one offline page (inline SVG, no scripts, nothing fetched) from score.json's content."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

COLOURS = {"model": "#3d6bb3", "baseline": "#8a5cc2", "retrieval_vote": "#d08a24", "majority": "#8c939f"}
HEADLINE = {"coding": "all_three_exact", "impression": "rouge_l"}
WIDTH, LABEL, ROW = 360, 230, 16  # chart scale width, label column, pixels per system mark


def _x(value: float | None) -> float | None:
    return None if value is None else round(LABEL + WIDTH * max(0.0, min(1.0, value)), 1)


def _marks(cells: dict[str, Any], systems: list[str], metric: str) -> list[dict[str, Any]]:
    out = []
    for system in systems:
        cell = cells[system][metric]
        lo, hi = cell["ci"]
        out.append(
            {
                "system": system,
                "colour": COLOURS.get(system, "#333"),
                "x": _x(cell["value"]),
                "lo": _x(lo),
                "hi": _x(hi),
                "text": "n/a" if cell["value"] is None else f"{cell['value']:.3f}",
            }
        )
    return out


def _chart(rows: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    laid, y = [], 24
    for label, marks in rows:
        for i, mark in enumerate(marks):
            mark["y"] = y + i * ROW
        laid.append({"label": label, "y": y + (len(marks) - 1) * ROW / 2 + 4, "marks": marks})
        y += len(marks) * ROW + 10
    ticks = [{"x": _x(t / 4), "label": f"{t / 4:.2f}"} for t in range(5)]
    return {"rows": laid, "height": y + 10, "width": LABEL + WIDTH + 70, "ticks": ticks, "top": 14, "bottom": y}


def charts(summary: dict[str, Any]) -> dict[str, Any]:
    systems = summary["systems"]
    overall = summary["overall"]["systems"]
    metric_rows = [(m["label"], _marks(overall, systems, m["name"])) for m in summary["metrics"] if m["name"] != "bleu"]
    headline = HEADLINE.get(summary["task"], summary["metrics"][0]["name"])
    facets = {}
    for facet, levels in summary["slices"].items():
        rows = [(f"{level} (n={e['n']:,})", _marks(e["systems"], systems, headline)) for level, e in levels.items()]
        facets[facet] = _chart(rows)
    return {"overall": _chart(metric_rows), "facets": facets, "headline": headline}


def render_html(summary: dict[str, Any]) -> str:
    env = Environment(loader=PackageLoader("datakit.report", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("score.html").render(
        s=summary,
        c=charts(summary),
        colours=COLOURS,
    )
