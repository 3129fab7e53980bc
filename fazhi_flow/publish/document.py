"""A plain data model of a report, independent of the database and of any output format.

A report is a title, opening paragraphs without a heading, a list of blocks (one per outline section,
in reading order), a closing block with the issuing bodies and the date and, optionally, an attachment
(附件): the indicator summary table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

# Punctuation that may end a run-in heading; anything else gets a full stop before the text.
HEADING_END = "。！？；："
APPENDIX_TITLE = "统计指标汇总表"
# The columns of the appendix table: (row key, printed heading).
APPENDIX_COLUMNS = (("no", "序号"), ("section", "所属部分"), ("name", "指标名称"), ("measure", "计量单位"),
                    ("value", "数值"))


def format_issue_date(value: date | None) -> str:
    """Write a date as official documents do: Arabic numerals, no zero padding (2025年1月6日)."""
    if value is None:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"


def split_paragraphs(text: str | None) -> list[str]:
    """Split text into paragraphs: one per non-empty line, surrounding whitespace removed."""
    return [line.strip() for line in (text or "").replace("\r\n", "\n").split("\n") if line.strip()]


@dataclass
class Block:
    """One section of the report.

    ``level`` is the outline depth (1 for 一、, 2 for （一）, 3 for 1., 4 for （1））; ``number`` is the
    derived heading number and empty when the section has no heading; ``run_in`` puts the heading and
    the first paragraph of text in one paragraph.
    """

    level: int
    number: str = ""
    heading: str = ""
    paragraphs: list[str] = field(default_factory=list)
    run_in: bool = False
    code: str = ""

    @property
    def has_heading(self) -> bool:
        return bool(self.heading)

    @property
    def heading_text(self) -> str:
        """The heading with its number, as printed on its own line."""
        return f"{self.number}{self.heading}"

    @property
    def run_in_heading(self) -> str:
        """The heading as it starts a run-in paragraph: numbered and closed by a full stop."""
        text = self.heading_text
        return text if text[-1:] in HEADING_END else text + "。"

    def lines(self) -> list[tuple[str, str, str]]:
        """The printed paragraphs as (kind, heading part, text part).

        kind is "heading" (a heading alone), "run_in" (heading part then text part in one paragraph)
        or "text".
        """
        out: list[tuple[str, str, str]] = []
        paragraphs = list(self.paragraphs)
        if self.has_heading:
            if self.run_in and paragraphs:
                out.append(("run_in", self.run_in_heading, paragraphs.pop(0)))
            elif self.run_in:
                out.append(("run_in", self.run_in_heading, ""))
            else:
                out.append(("heading", self.heading_text, ""))
        out.extend(("text", "", p) for p in paragraphs)
        return out


@dataclass
class ReportDocument:
    title: str
    opening: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    issuers: list[str] = field(default_factory=list)
    issue_date: date | None = None
    # Rows of the indicator summary ({"no", "section", "name", "measure", "value"}); None: no appendix.
    appendix: list[dict] | None = None

    @property
    def issue_date_text(self) -> str:
        return format_issue_date(self.issue_date)

    @property
    def has_appendix(self) -> bool:
        return self.appendix is not None

    @property
    def appendix_note(self) -> str:
        """The attachment note (附件说明) printed below the body, as GB/T 9704-2012 asks."""
        return f"附件：{APPENDIX_TITLE}" if self.has_appendix else ""

    def appendix_table(self) -> list[list[str]]:
        """The appendix as printed: the heading row, then one row per indicator (strings)."""
        if not self.has_appendix:
            return []
        rows = [[label for _, label in APPENDIX_COLUMNS]]
        rows.extend([str(row.get(key, "") if row.get(key) is not None else "") for key, _ in APPENDIX_COLUMNS]
                    for row in self.appendix)
        return rows

    def paragraphs(self) -> list[str]:
        """Every printed paragraph of the body in order (opening, headings and text), as plain text."""
        out = list(self.opening)
        for block in self.blocks:
            for kind, head, text in block.lines():
                out.append(head + text if kind == "run_in" else (head or text))
        return out

    def closing_lines(self) -> list[str]:
        lines = list(self.issuers)
        if self.issue_date:
            lines.append(self.issue_date_text)
        return lines

    def to_dict(self) -> dict:
        data = asdict(self)
        data["issue_date"] = self.issue_date.isoformat() if self.issue_date else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ReportDocument:
        issued = data.get("issue_date")
        return cls(
            title=data.get("title", ""),
            opening=list(data.get("opening") or []),
            blocks=[Block(**b) for b in data.get("blocks") or []],
            issuers=list(data.get("issuers") or []),
            issue_date=date.fromisoformat(issued) if issued else None,
            appendix=[dict(row) for row in data["appendix"]] if data.get("appendix") is not None else None,
        )
