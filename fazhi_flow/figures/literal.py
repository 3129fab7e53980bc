"""Literal-number check: a number typed into the text beside an indicator's name and unit of measure
that disagrees with the indicator's value is flagged (a warning), quoting the sentence.

The match is deliberately cautious, because a false alarm costs a liaison's time: the number must carry
the indicator's unit of measure, sit right beside the indicator's name (or its name without a generic
tail such as 总数/数量/次数), and approximate numbers (500余场) are left alone. When several indicators
could claim a number, the longest, closest name wins (镇级调委会18个 belongs to 镇级调委会, not 调委会).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from .bound import CITATION, sentences
from .numbers import format_number

MEASURES = ("人次", "场次", "户次", "件次", "万元", "亿元", "元", "%", "％", "件", "人", "次", "名", "个", "家",
            "项", "场", "份", "期", "条", "户", "起", "所", "批", "宗", "篇", "部", "天", "日")
NUMBER = re.compile(
    r"(?<![\d.,，])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(余|多)?\s*(" + "|".join(map(re.escape, MEASURES)) + r")"
)
GENERIC_TAILS = ("总数", "总量", "总计", "合计", "总额", "数量", "件数", "人数", "次数", "个数", "家数", "场次数",
                 "金额", "数额", "数", "量")
GENERIC_HEADS = ("全区", "全年", "本单位", "全市", "累计", "年度")
# A name must start at a word boundary: the sentence start, punctuation, a digit or unit of measure,
# or one of these function characters. Otherwise "调委会" inside "镇级调委会" would match.
BOUNDARY_CHARS = set("共有了计为在和与及其各全区中年并、，。；：:（）()“”\"' 达到即等至含系是将对向从于以")
# ... or a verb that governs the name ("开展涉企检查3812次"): a qualifier such as 镇级/新增/行业性 does not.
BOUNDARY_VERBS = ("开展", "办理", "查处", "受理", "审查", "组织", "发放", "建成", "建立", "设立", "完成", "举办",
                  "培训", "接待", "化解", "调解", "排查", "审结", "办结", "发布", "公示", "聘请", "聘任", "配备",
                  "录入", "承办", "实施", "作出", "做出", "督办", "处理", "提供", "收到", "报送", "备案", "清理",
                  "废止", "制定", "出台", "参加", "参与", "达到", "覆盖", "拥有", "现有", "设有", "共计", "合计")
GAP_BREAKS = set("，。、；：;:,（）()“”\"!！?？0123456789")
MAX_GAP_BEFORE = 6
MAX_GAP_AFTER = 2
APPROXIMATE_BEFORE = ("约", "近", "超", "逾", "超过", "不足", "近乎", "大约")


@dataclass(frozen=True)
class LiteralMismatch:
    indicator: object
    written: Decimal
    value: Decimal
    sentence: str

    @property
    def message(self) -> str:
        m = self.indicator.measure or ""
        return (f"正文写的是“{format_number(self.written)}{m}”，但指标“{self.indicator.name}”填报的是"
                f"{format_number(self.value)}{m}，请核对：{self.sentence}")


def keywords(name: str) -> list[str]:
    """The indicator's name and its shorter forms without a generic head or tail (length ≥ 2)."""
    forms = [name.strip()]
    base = name.strip()
    for head in GENERIC_HEADS:
        if base.startswith(head) and len(base) - len(head) >= 2:
            base = base[len(head):]
            forms.append(base)
            break
    for tail in GENERIC_TAILS:
        if base.endswith(tail) and len(base) - len(tail) >= 2:
            forms.append(base[: -len(tail)])
            break
    return [f for f in dict.fromkeys(forms) if len(f) >= 2]


def _norm_measure(m: str) -> str:
    return "%" if m == "％" else m


def _at_boundary(sentence: str, start: int) -> bool:
    if start == 0:
        return True
    before = sentence[start - 1]
    if before in BOUNDARY_CHARS or before.isdigit() or before in "".join(MEASURES):
        return True
    return sentence[max(0, start - 2):start] in BOUNDARY_VERBS


def _candidates(sentence: str, start: int, end: int, checks):
    """(score, indicator, value) for every indicator whose name sits right beside the number."""
    found = []
    for indicator, value in checks:
        for word in keywords(indicator.name):
            for m in re.finditer(re.escape(word), sentence):
                if not _at_boundary(sentence, m.start()):
                    continue
                if m.end() <= start:
                    gap = sentence[m.end():start]
                    if len(gap) <= MAX_GAP_BEFORE and not (set(gap) & GAP_BREAKS):
                        found.append(((len(word), -len(gap)), indicator, value))
                elif m.start() >= end:
                    gap = sentence[end:m.start()]
                    if len(gap) <= MAX_GAP_AFTER and not (set(gap) & GAP_BREAKS):
                        found.append(((len(word), -len(gap)), indicator, value))
    return found


def check_literals(text: str, checks) -> list[LiteralMismatch]:
    """Compare numbers in ``text`` with the values in ``checks`` (pairs of indicator, Decimal value).

    Indicators without a value are skipped. Returns one mismatch per disagreeing number.
    """
    checks = [(i, Decimal(v)) for i, v in checks if v is not None]
    if not checks or not text:
        return []
    # Citations are printed from the value itself; blank them so their digits are never read.
    plain = CITATION.sub("〔引用〕", text)
    mismatches = []
    originals = sentences(text)
    plains = sentences(plain)
    if len(originals) != len(plains):  # a code with sentence punctuation in it; show the plain text
        originals = plains
    for sentence, original in zip(plains, originals):
        for m in NUMBER.finditer(sentence):
            if m.group(3):  # 500余场: an approximate number
                continue
            before = sentence[max(0, m.start() - 2):m.start()]
            if any(before.endswith(w) for w in APPROXIMATE_BEFORE):
                continue
            measure = _norm_measure(m.group(4))
            eligible = [(i, v) for i, v in checks if _norm_measure(i.measure or "") == measure]
            if not eligible:
                continue
            candidates = _candidates(sentence, m.start(), m.end(), eligible)
            if not candidates:
                continue
            candidates.sort(key=lambda c: c[0], reverse=True)
            _, indicator, value = candidates[0]
            written = Decimal(m.group(1).replace(",", "") + (m.group(2) or ""))
            if written != value:
                mismatches.append(LiteralMismatch(indicator, written, value, original))
    return mismatches
