"""One static HTML page: sections with a navigation bar, notes, embedded PNG figures and tables whose cells
are highlighted by column name. Every text that reaches the page is HTML-escaped here."""

import html
import math
from collections.abc import Callable

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
td.sig { font-weight: bold; background: #fff3cd; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; } nav a { margin-right: 1em; }
"""
Highlight = dict[str, Callable[[float], bool]]  # {column name: whether a number in it is highlighted}


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


class Page:
    def __init__(self, title: str):
        self.title, self.parts, self.nav = title, [], []

    def section(self, anchor: str, title: str, intro: str = "") -> None:
        """A titled section, listed in the navigation bar."""
        self.nav.append((anchor, title))
        self.parts.append(f'<h2 id="{html.escape(anchor)}">{html.escape(title)}</h2>')
        if intro:
            self.note(intro)

    def heading(self, title: str) -> None:
        self.parts.append(f"<h3>{html.escape(title)}</h3>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, png_base64: str, alt: str) -> None:
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">')

    def table(
        self, table_id: str, columns: list[str], rows: list[dict], highlight: Highlight | None = None, caption: str = ""
    ) -> None:
        """`rows`: {column: value}, missing values shown as –; a number in a column of `highlight` is highlighted
        when its test says so. The first column is left-aligned, as is any text."""
        highlight = highlight or {}
        head = "".join(f'<th class="{"text" if i == 0 else ""}">{html.escape(c)}</th>' for i, c in enumerate(columns))
        body = "".join(f"<tr>{''.join(self._cell(row.get(c), highlight.get(c)) for c in columns)}</tr>" for row in rows)
        caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(
            f'<table id="{html.escape(table_id)}">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )

    @staticmethod
    def _cell(value, test: Callable[[float], bool] | None) -> str:
        classes = ["text"] if isinstance(value, str) else []
        if test is not None and is_number(value) and test(value):
            classes.append("sig")
        return f'<td class="{" ".join(classes)}">{html.escape(fmt(value))}</td>'

    def html(self, subtitle: str) -> str:
        nav = " ".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for a, t in self.nav)
        title = html.escape(self.title)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<style>{STYLE}</style></head><body><h1>{title}</h1><p class="note">{html.escape(subtitle)}</p>'
            f"<nav>{nav}</nav>{''.join(self.parts)}</body></html>\n"
        )
