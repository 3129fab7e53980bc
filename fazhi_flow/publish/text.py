"""Plain text: the title, a blank line, one paragraph per line, a blank line, the closing block; with
an appendix, the attachment note above the closing block and the table (tab-separated) after it."""
from __future__ import annotations

from .document import APPENDIX_TITLE, ReportDocument


def render_text(document: ReportDocument) -> str:
    lines = [document.title, ""]
    lines.extend(document.paragraphs())
    if document.has_appendix:
        lines.extend(["", document.appendix_note])
    closing = document.closing_lines()
    if closing:
        lines.append("")
        lines.extend(closing)
    if document.has_appendix:
        lines.extend(["", "附件", "", APPENDIX_TITLE, ""])
        lines.extend("\t".join(row) for row in document.appendix_table())
    return "\n".join(lines) + "\n"
