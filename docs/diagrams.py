"""Render the README's diagrams (docs/*.mmd, Mermaid) as SVG pictures (docs/*.svg).

HACS's markdown renderer shows a Mermaid block as code, so the README embeds the pictures and
the Mermaid sources stay here to edit. The flowchart goes through Graphviz (`dot`, Debian package
`graphviz`); the sequence diagram is laid out here. Run `.venv/bin/python docs/diagrams.py`
after changing a source and commit both.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
import re
import shutil
import subprocess

DOCS = Path(__file__).parent
FONT = "font-family:Helvetica,Arial,sans-serif;font-size:13px"
NODE = re.compile(r'^\s*(\w+)\["(.+)"\]\s*$')
EDGE = re.compile(r'^\s*(\w+) --(?: "(.+)" --)?> (\w+)\s*$')
PARTICIPANT = re.compile(r"^\s*participant (\w+) as (.+)$")
MESSAGE = re.compile(r"^\s*(\w+)(--?)>>(\w+): (.+)$")
NOTE = re.compile(r"^\s*Note over (\w+): (.+)$")


def flowchart_dot(source: str) -> str:
    """The Mermaid flowchart as a Graphviz graph (left to right, labels kept)."""
    lines = [
        "digraph G {",
        "  rankdir=LR; bgcolor=white; nodesep=0.4; ranksep=0.7;",
        (
            '  node [shape=box, style="rounded,filled", fillcolor="#e8f4fd", color="#03a9f4",'
            ' fontname="Helvetica", fontsize=11];'
        ),
        '  edge [fontname="Helvetica", fontsize=10, color="#555555"];',
    ]
    for line in source.splitlines():
        if node := NODE.match(line):
            label = node.group(2).replace("<br/>", "\\n")
            lines.append(f'  {node.group(1)} [label="{label}"];')
        elif edge := EDGE.match(line):
            label = f' [label="{edge.group(2)}"]' if edge.group(2) else ""
            lines.append(f"  {edge.group(1)} -> {edge.group(3)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _text(x: float, y: float, text: str, anchor: str = "middle", weight: str = "") -> str:
    style = FONT + (f";font-weight:{weight}" if weight else "")
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" style="{style}">'
        f"{escape(text)}</text>"
    )


def sequence_svg(source: str) -> str:
    """The Mermaid sequence diagram as SVG: participants as columns, messages as arrows."""
    participants: list[tuple[str, list[str]]] = []
    steps: list[tuple[str, str, str, str]] = []  # kind, from, to, text
    for line in source.splitlines():
        if found := PARTICIPANT.match(line):
            participants.append((found.group(1), found.group(2).split("<br/>")))
        elif found := MESSAGE.match(line):
            kind = "reply" if found.group(2) == "--" else "call"
            steps.append((kind, found.group(1), found.group(3), found.group(4)))
        elif found := NOTE.match(line):
            steps.append(("note", found.group(1), found.group(1), found.group(2)))
    column = 250
    x = {name: 130 + i * column for i, (name, _) in enumerate(participants)}
    width = 130 * 2 + column * (len(participants) - 1)
    top, step_height = 70, 44
    height = top + 30 + step_height * len(steps) + 20
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
            'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
            "</marker></defs>"
        ),
    ]
    for name, label in participants:
        cx = x[name]
        out.append(
            f'<rect x="{cx - 115}" y="10" width="230" height="{14 + 16 * len(label)}" rx="8" '
            'fill="#e8f4fd" stroke="#03a9f4"/>'
        )
        for i, part in enumerate(label):
            out.append(_text(cx, 28 + 16 * i, part, weight="bold" if i == 0 else ""))
        out.append(
            f'<line x1="{cx}" y1="{24 + 16 * len(label)}" x2="{cx}" y2="{height - 10}" '
            'stroke="#999" stroke-dasharray="4 4"/>'
        )
    for index, (kind, source_name, target, text) in enumerate(steps):
        y = top + 30 + step_height * index
        if kind == "note":
            cx = x[source_name]
            out.append(
                f'<rect x="{cx - 120}" y="{y - 16}" width="240" height="24" fill="#fff8e1" '
                'stroke="#ffc107"/>'
            )
            out.append(_text(cx, y, text))
            continue
        x1, x2 = x[source_name], x[target]
        dash = ' stroke-dasharray="6 4"' if kind == "reply" else ""
        out.append(
            f'<line x1="{x1}" y1="{y + 6}" x2="{x2}" y2="{y + 6}" stroke="#555"{dash} '
            'marker-end="url(#arrow)"/>'
        )
        out.append(_text((x1 + x2) / 2, y, text))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    """Write docs/architecture.svg and docs/pairing.svg from their Mermaid sources."""
    flowchart = (DOCS / "architecture.mmd").read_text(encoding="utf-8")
    dot = shutil.which("dot")
    if dot is None:
        raise SystemExit("Graphviz is not installed: apt-get install graphviz")
    svg = subprocess.run(  # noqa: S603 - Graphviz on our own source
        [dot, "-Tsvg"], input=flowchart_dot(flowchart), capture_output=True, text=True, check=True
    ).stdout
    (DOCS / "architecture.svg").write_text(svg, encoding="utf-8")
    sequence = (DOCS / "pairing.mmd").read_text(encoding="utf-8")
    (DOCS / "pairing.svg").write_text(sequence_svg(sequence), encoding="utf-8")


if __name__ == "__main__":
    main()
