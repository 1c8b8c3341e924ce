"""One look for every HTML report: a page shell and a table helper (no external assets)."""

from __future__ import annotations

import html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
td.l, th.l { text-align: left; }
th { background: #f4f4f4; } li.ok { color: #1a7f37; } li.bad { color: #b42318; }
code { background: #f4f4f4; padding: 0 3px; }
.warn { background: #fff4e5; border-left: 4px solid #f79009; padding: 6px 12px; margin: 4px 0; }
.crit { background: #fef3f2; border-left: 4px solid #d92d20; padding: 6px 12px; margin: 4px 0; }
.none { background: #ecfdf3; border-left: 4px solid #12b76a; padding: 6px 12px; }
.grade { font-size: 3em; font-weight: 700; margin: 0 .3em 0 0; }
.muted { color: #667085; font-size: .9em; }
"""


def fmt(v: object, digits: int = 3) -> str:
    """A table cell's text: floats to ``digits`` significant places, None as a dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:.{digits}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) \
            else f"{v:.{digits}f}"
    return str(v)


def html_table(rows: list[dict], columns: list[tuple[str, str]], *,
               left: tuple[str, ...] = ()) -> str:
    """An HTML table of ``rows`` with ``columns`` as (key, header); ``left`` keys align left."""
    head = "".join(f"<th class='{'l' if k in left else ''}'>{html.escape(t)}</th>"
                   for k, t in columns)
    body = []
    for row in rows:
        cells = "".join(f"<td class='{'l' if k in left else ''}'>"
                        f"{html.escape(fmt(row.get(k, '')))}</td>" for k, _ in columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def warning_boxes(items: list[tuple[str, str]], none_text: str) -> str:
    """The warnings section's boxes: ``(level, inner HTML)`` each (``critical`` in red, any
    other level in amber), or one green box saying ``none_text`` when there are none."""
    if not items:
        return f"<div class='none'>{html.escape(none_text)}</div>"
    return "\n".join(f"<div class='{'crit' if level == 'critical' else 'warn'}'><b>"
                     f"{html.escape(level)}</b> · {inner}</div>" for level, inner in items)


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body``."""
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
