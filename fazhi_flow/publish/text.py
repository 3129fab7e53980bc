"""Plain text: the title, a blank line, one paragraph per line, a blank line, the closing block."""
from __future__ import annotations

from .document import ReportDocument


def render_text(document: ReportDocument) -> str:
    lines = [document.title, ""]
    lines.extend(document.paragraphs())
    closing = document.closing_lines()
    if closing:
        lines.append("")
        lines.extend(closing)
    return "\n".join(lines) + "\n"
