"""Rendering a report, described once as a list of blocks, to Markdown and to self-contained HTML.

The HTML embeds every figure as a base64 PNG, so the single file can be mailed or attached to a
ticket; the Markdown links the PNGs next to it.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Block:
    """One report element.

    kind: ``"h1" | "h2" | "h3" | "p" | "banner" | "table" | "image" | "code"``; ``text`` holds the
    heading/paragraph/caption (plain text, ``**bold**`` allowed); ``headers``/``rows`` a table;
    ``path`` an image file.
    """

    kind: str
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    path: Path | None = None


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats rounded, None/NaN as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_ci(value: float | None, ci: list[float] | None, digits: int = 3) -> str:
    """``0.912 [0.880, 0.940]``."""
    if ci is None or any(c is None or c != c for c in ci):
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def render_markdown(blocks: list[Block], base_dir: Path) -> str:
    """Markdown with images linked relative to ``base_dir`` (where report.md is written)."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "banner":
            out.append("> **" + b.text + "**")
        elif b.kind == "code":
            out.append("```\n" + b.text + "\n```")
        elif b.kind == "table":
            out.append("| " + " | ".join(b.headers) + " |")
            out.append("| " + " | ".join("---" for _ in b.headers) + " |")
            out.extend("| " + " | ".join(fmt(c) for c in row) + " |" for row in b.rows)
        elif b.kind == "image" and b.path is not None:
            rel = Path(os.path.relpath(b.path, base_dir)).as_posix()
            out.append(f"![{b.text}]({rel})" + (f"\n\n*{b.text}*" if b.text else ""))
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escapes text, then turns ``**x**`` into bold."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.8em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.6em 1em;font-weight:600}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.6em}"""


def render_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page; images are embedded as base64 data URIs."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "banner":
            out.append(f'<div class="banner">{_inline(b.text)}</div>')
        elif b.kind == "code":
            out.append(f"<pre>{html.escape(b.text)}</pre>")
        elif b.kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{_inline(fmt(c))}</td>" for c in row) + "</tr>"
                           for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "image" and b.path is not None and Path(b.path).is_file():
            data = base64.b64encode(Path(b.path).read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(b.text)}" '
                       f'src="data:image/png;base64,{data}">'
                       f"<figcaption>{_inline(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(blocks: list[Block], out_dir: Path, title: str) -> tuple[Path, Path]:
    """Writes ``report.md`` and ``report.html`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(blocks, out_dir))
    page.write_text(render_html(blocks, title))
    return md, page
