"""Literal-number check: a number typed into the text for an indicator that disagrees with the
indicator's value is flagged (a warning), quoting the sentence.

A number is read with its unit of measure (516件, 12.5%, 1.2亿元, 十二场) and given to the indicator
whose label its clause talks about: the words of the label (without generic heads and tails such as
全区/总数) must be found in the number's own clause, and may be completed by the clauses before it in
the same sentence ("共调解矛盾纠纷1991件，其中诉前调解880件"). Words in the text are compared in pieces
of two characters or more, so "诉前调解矛盾纠纷880件" still speaks of 诉前调解纠纷数.

A false alarm costs a liaison's time, so a number is left alone when it is approximate (500余场), a range
(3至5天), a target (力争…不低于90%), a date or ordinal (12月31日, 第3期), a comparison (较上年增长12件,
上年为480件), another period (上半年, 2023年, 以来) or another unit's number (区市场监管局…612件), and a
candidate indicator is refused when the text names a sub-category the label does not (镇级, 诉中, 公安类,
专职) or the label names one the text does not.

A number equal to LAST year's value of an indicator, where this year's value differs, is flagged as a
number left over from last year's text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from .bound import CITATION, sentences
from .numbers import format_number

MEASURES = ("人次", "场次", "户次", "件次", "万元", "亿元", "元", "%", "％", "件", "人", "次", "名", "个", "家",
            "项", "场", "份", "期", "条", "户", "起", "所", "批", "宗", "篇", "部", "天", "日")
# Units that count the same thing; money is converted between 元, 万元 and 亿元.
SAME_MEASURE = {"％": "%", "名": "人", "场次": "场"}
MONEY = {"元": Decimal(1), "万元": Decimal(10) ** 4, "亿元": Decimal(10) ** 8}
CN_NUMERALS = "零〇一二两三四五六七八九十百千"
NUMBER = re.compile(
    r"(?:(?<![\d.,])(?<!\d，)(?P<arabic>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?|(?<![" + CN_NUMERALS + r"])(?P<cn>["
    + CN_NUMERALS + r"]+))\s*(?P<approx>余|多)?\s*(?P<measure>" + "|".join(map(re.escape, MEASURES)) + r")"
)
GENERIC_TAILS = ("总数", "总量", "总计", "合计", "总额", "数量", "件数", "人数", "次数", "个数", "家数", "场次数",
                 "天数", "人次", "场次", "金额", "数额", "数", "量")
GENERIC_HEADS = ("全区", "全年", "本单位", "全市", "累计", "年度")
# A label's words right after a qualifier's last character (镇级调委会, 行业性调委会, 持证执法人员,
# 公安类案件) are a sub-category of what the label counts.
MODIFIER_ENDS = set("级性职证类型")
# Quotation marks and short asides (村（社区）) that a label or a sentence may or may not write.
ASIDES = re.compile(r"[“”‘’\"'《》〈〉「」]|[（(][^（）()\d]{1,6}[）)]")
CLAUSE_BREAKS = re.compile(r"[，,；;：:、（）()。！？!?\n]")
# Words after a number belong to it (516件行政复议申请) up to a conjunction, which starts the next one's
# (法律明白人720名和普法志愿者200名).
CONJUNCTION = re.compile(r"和|及|与|并|以及|同时")
APPROXIMATE_BEFORE = ("约", "近", "超", "逾", "超过", "不足", "近乎", "大约", "不到", "将近")
APPROXIMATE_AFTER = ("以上", "以下", "左右", "上下", "以内", "之内", "余")
RANGE_MARKS = "至到~～-－—"
TARGET = re.compile(r"力争|目标|确保|计划|预计|不低于|不少于|不超过|不高于|控制在|保持在")
# A comparison word before a number makes it a difference or an old value (较上年增长12件, 上年为480件) ...
COMPARISON = re.compile(r"上年|去年|上一年|前一年|同比|环比|同期|较(?=[上去前同往\d])|比(?=[上去前同往\d])|"
                        r"增长|增加|增幅|下降|减少|降低|上升|提高|提升|回落|缩短|多出|新增")
# ... and so does a number a change starts from (由92.3%提升至100%).
FROM_VALUE = re.compile(r"(?:由|从)(?:上年的?|去年的?)?$")
CHANGE_TO = r"(?:增|增长|增加|上升|提高|提升|下降|降低|减少|减|降|缩短|压缩|扩大)(?:至|到)"
# ... unless the number is where it went (增至516件, 提升至100%): that is this year's value.
NEW_VALUE = re.compile(CHANGE_TO + "$")
PERIOD = re.compile(r"上半年|下半年|[一二三四1-4]季度|前三季度|以来|年来|历年|截至|截止|期间|\d{1,2}月(?:份|底|末)?")
THIS_PERIOD = re.compile(r"全年|本年|今年|年内")
YEAR = re.compile(r"(\d{4})年")
# Another unit's own number (区市场监管局办理…612件) is not the indicator's value.
ORGANISATION = re.compile(r"市政府|省政府|(?<![各全本我乡城该布格大结开当部个\d（(])(?:分局|局|街道|人民法院|法院|检察院|派出所|司法所|镇(?![级村街（(]))")
# Words that name a sub-category: the text and the label must agree on them.
QUALIFIERS = ("诉前", "诉中", "诉后", "一审", "二审", "再审", "上诉", "区级", "镇级", "村级", "街道级", "社区级",
              "市级", "县级", "行业性", "专业性", "专职", "兼职", "持证", "纠错", "维持", "驳回", "撤销", "败诉", "胜诉",
              "刑事", "民事", "简易", "联合", "线上", "线下", "上半年", "下半年")
NOT_A_CATEGORY = ("各类", "分类", "种类", "门类", "此类", "该类", "这类", "归类", "两类", "大类", "同类")
NOT_A_COUNT_AFTER = ("百分点", "工作日", "月", "小时", "星期", "季度")
# What a clause may say besides the number and still speak of the clause before (共516件, 增至516件).
BARE_WORDS = re.compile(CHANGE_TO + r"|其中|共计|合计|总计|累计|共有|分别|全年|全区|达到|共|计|达|为|有|已|均|另|还|是")
MIN_RATIO = Decimal("0.6")
MIN_RATIO_WITH_HEAD = Decimal("0.4")


@dataclass(frozen=True)
class LiteralMismatch:
    indicator: object
    written: Decimal
    value: Decimal
    sentence: str
    previous: Decimal | None = None  # set when the number is last year's value of the indicator
    as_written: str = ""

    @property
    def message(self) -> str:
        m = self.indicator.measure or ""
        shown = self.as_written or f"{format_number(self.written)}{m}"
        if self.previous is not None:
            return (f"正文写的是“{shown}”，这是指标“{self.indicator.name}”上年的数值，今年填报的是"
                    f"{format_number(self.value)}{m}，是否沿用了上年的文字？请核对：{self.sentence}")
        return (f"正文写的是“{shown}”，但指标“{self.indicator.name}”填报的是"
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
    m = (m or "").strip()
    return SAME_MEASURE.get(m, m)


@lru_cache(maxsize=256)
def _comparable(written_measure: str, indicator_measure: str | None) -> Decimal | None:
    """Factor turning the written number into the indicator's unit, or None when they count different things."""
    a, b = _norm_measure(written_measure), _norm_measure(indicator_measure)
    if a in MONEY and b in MONEY:
        return MONEY[a] / MONEY[b]
    return Decimal(1) if a == b else None


def _cn_value(text: str) -> int:
    """十二 → 12, 三十二 → 32, 两百 → 200, 一〇五 → 105."""
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
    units = {"十": 10, "百": 100, "千": 1000}
    if all(c in digits for c in text):
        return int("".join(str(digits[c]) for c in text))
    total, current = 0, None
    for c in text:
        if c in digits:
            current = digits[c]
        else:
            total += (1 if current is None else current) * units[c]
            current = None
    return total + (current or 0)


@dataclass(frozen=True)
class _Number:
    start: int
    end: int
    value: Decimal | None  # None: approximate, not read
    measure: str
    text: str


@dataclass(frozen=True)
class _Place:
    """Where a number sits: its own words (before and after it) and the sentence's earlier clauses."""
    before: str  # from the clause start (or the previous number) to the number
    after: str  # from the unit of measure to the clause end (or the next number)
    clause_before: str  # from the clause start to the number
    topic: str  # the sentence before the number's own words
    is_part: bool  # a 其中 clause: the number is a part of what the clause before counts


def _numbers(sentence: str) -> list[_Number]:
    found = []
    for m in NUMBER.finditer(sentence):
        if m.group("arabic"):
            value = Decimal(m.group("arabic").replace(",", "") + (m.group("frac") or ""))
        else:
            value = _cn_value(m.group("cn"))
            value = Decimal(value) if value >= 2 else None  # 一个, 一件事: not a count
        if m.group("approx"):
            value = None
        found.append(_Number(m.start(), m.end(), value, m.group("measure"), m.group(0)))
    return found


def _places(sentence: str, numbers: list[_Number]) -> list[_Place]:
    breaks = [b.start() for b in CLAUSE_BREAKS.finditer(sentence)]
    places = []
    for k, num in enumerate(numbers):
        c_start = max([b + 1 for b in breaks if b < num.start], default=0)
        c_end = min([b for b in breaks if b >= num.end], default=len(sentence))
        start = max(c_start, numbers[k - 1].end if k else 0)
        end = min(c_end, numbers[k + 1].start if k + 1 < len(numbers) else len(sentence))
        joined = CONJUNCTION.search(sentence, num.end, end)
        end = joined.start() if joined else end
        clause = sentence[c_start:c_end]
        part = "其中" in clause or sentence[max(0, c_start - 3):c_start].startswith("其中")
        places.append(_Place(sentence[start:num.start], sentence[num.end:end], sentence[c_start:num.start],
                             sentence[:start], part))
    return places


def _not_a_figure(sentence: str, num: _Number, place: _Place) -> bool:
    """Approximations, ranges, dates, ordinals, durations and targets are never compared."""
    before, after = place.before, place.after
    if num.value is None or before.endswith(APPROXIMATE_BEFORE) or after.startswith(APPROXIMATE_AFTER):
        return True
    ahead = sentence[num.end:num.end + 2]
    if len(ahead) == 2 and ahead[0] in RANGE_MARKS and (ahead[1].isdigit() or ahead[1] in CN_NUMERALS):
        return True  # 3天至5天: the lower end of a range
    behind = sentence[max(0, num.start - 2):num.start]
    if len(behind) == 2 and behind[1] in RANGE_MARKS and (behind[0].isdigit() or behind[0] in CN_NUMERALS):
        return True  # 3至5天
    if before.endswith("第") or (num.measure == "日" and before.endswith("月")):
        return True  # 第3期, 12月31日
    if num.measure == "个" and after.startswith(NOT_A_COUNT_AFTER):
        return True  # 2.3个百分点, 5个工作日
    return bool(TARGET.search(place.clause_before))


def _other_context(label: str, place: _Place, year: int | None, unit: str | None) -> bool:
    """A comparison, another period or another unit's number, unless the label itself says so."""
    words = [m.group(0) for m in COMPARISON.finditer(place.before)]
    if words and not NEW_VALUE.search(place.before) and any(w not in label for w in words):
        return True
    if FROM_VALUE.search(place.before):
        return True
    said_before = place.topic + place.clause_before
    if not THIS_PERIOD.search(place.before) and any(m.group(0) not in label for m in PERIOD.finditer(said_before)):
        return True  # 截至6月底，…5场 — but 一季度…806次，全年…3812次 is the year's figure
    if year is not None and any(int(y) != year for y in YEAR.findall(said_before)):
        return True
    return _other_unit(label, place.clause_before, unit)


def _other_unit(label: str, clause: str, unit: str | None) -> bool:
    """The clause names an organisation, and it is not the unit writing the text (区人民法院 in its own)."""
    for m in ORGANISATION.finditer(clause):
        mention = clause[max(0, m.start() - 1):m.end()]
        if m.group(0) not in label and not (unit and mention in unit):
            return True
    return False


@lru_cache(maxsize=1024)
def _qualifiers(text: str) -> frozenset[str]:
    """Sub-category words in ``text``: those of QUALIFIERS and any "XX类" (公安类) but 各类/分类."""
    found = {q for q in QUALIFIERS if q in text}
    found |= {text[i - 2:i + 1] for i, ch in enumerate(text)
              if ch == "类" and i >= 2 and text[i - 1:i + 1] not in NOT_A_CATEGORY}
    return frozenset(found)


def _qualifiers_agree(label: str, place: _Place) -> bool:
    """The number's words name no sub-category the label lacks, and the label's are in the sentence."""
    own = place.before + "|" + place.after
    if any(q not in label for q in _qualifiers(own)):
        return False
    return all(q in place.topic + own for q in _qualifiers(label))


def _pieces(core: str, text: str) -> list[tuple[int, int, int]]:
    """(position in core, position in text, length) of the label's pieces (≥ 2 characters) found in text."""
    found, i = [], 0
    while i < len(core) - 1:
        length = 0
        while i + length < len(core) and core[i:i + length + 1] in text:
            length += 1
        if length >= 2:
            found.append((i, text.find(core[i:i + length]), length))
            i += length
        else:
            i += 1
    return found


def _covered(pieces) -> set[int]:
    return {i + k for i, _, n in pieces for k in range(n)}


def _score(core: str, place: _Place):
    """(ratio of the label found, characters found in the number's own words, label length), or None."""
    own = place.before + "|" + place.after
    local = _pieces(core, own)
    for i, at, _n in local:
        if i == 0 and at > 0 and own[at - 1] in MODIFIER_ENDS and own[max(0, at - 2):at] not in NOT_A_CATEGORY:
            return None  # 镇级调委会: a sub-category of 调委会
    mine, theirs = _covered(local), _covered(_pieces(core, place.topic))
    bare = not BARE_WORDS.sub("", own.replace("|", "")).strip()
    if place.is_part and not (mine - theirs):
        return None  # 其中…: a part, never the whole the clause before counts
    if len(mine) < 2 and not bare:
        return None
    ratio = Decimal(len(mine | theirs)) / len(core)
    if theirs - mine and Decimal(len(mine)) / len(core) < MIN_RATIO:
        # The clause before completes the label only when the number's own words are mostly the label's
        # (其中诉前调解880件), not another thing that shares a word with it (纠正问题文件2件).
        content = BARE_WORDS.sub("", own.replace("|", ""))
        if content and len(content) - len(mine) >= len(mine):
            return None
    head = {len(core) - 2, len(core) - 1} <= mine and len(mine) >= 3
    if ratio >= MIN_RATIO or (head and ratio >= MIN_RATIO_WITH_HEAD):
        return ratio, len(mine), len(core)
    return None


@lru_cache(maxsize=1024)
def _core(name: str) -> str:
    return keywords(_plain_words(name))[-1]


def _plain_words(text: str) -> str:
    """Without quotation marks and short asides: 纳入“白名单”企业 reads as 纳入白名单企业."""
    return ASIDES.sub("", text)


def _attribute(num: _Number, place: _Place, checks, year, unit):
    """The indicator this number states: (indicator, value, previous, written) or None."""
    best = None
    for indicator, value, previous in checks:
        factor = _comparable(num.measure, indicator.measure)
        if factor is None:
            continue
        label = indicator.name
        if _other_context(label, place, year, unit) or not _qualifiers_agree(label, place):
            continue
        score = _score(_core(label), place)
        written = num.value * factor
        if score is None:
            # Last year's number left in the text: a weaker mention of the label is enough.
            if previous is None or written != previous or previous == value:
                continue
            if len(_covered(_pieces(_core(label), place.topic + place.before + "|" + place.after))) < 2:
                continue
            score = (Decimal(0), 0, 0)
        if best is None or score > best[0]:
            best = (score, (indicator, value, previous, written))
    return None if best is None else best[1]


def check_literals(text: str, checks, previous: dict | None = None, year: int | None = None,
                   unit: str | None = None) -> list[LiteralMismatch]:
    """Compare numbers in ``text`` with the values in ``checks`` (pairs of indicator, Decimal value).

    ``previous`` maps an indicator's code to last year's value: a number equal to it (and not to this
    year's value) is flagged as left over from last year's text. ``year`` is the report's year: numbers
    said of another year are not compared. ``unit`` is the name of the unit writing the text: numbers of
    another organisation named in the clause are not compared, its own are. Indicators without a value
    are skipped. Returns one mismatch per disagreeing number.
    """
    previous = previous or {}
    checks = [(i, Decimal(v), _decimal(previous.get(getattr(i, "code", None)))) for i, v in checks if v is not None]
    if not checks or not text:
        return []
    # Citations are printed from the value itself; blank them so their digits are never read.
    plain = CITATION.sub("〔引用〕", text)
    originals, plains = sentences(text), sentences(plain)
    if len(originals) != len(plains):  # a code with sentence punctuation in it; show the plain text
        originals = plains
    mismatches = []
    for sentence, original in zip(plains, originals):
        sentence = _plain_words(sentence).replace("其中：", "其中").replace("其中:", "其中")
        numbers = _numbers(sentence)
        for num, place in zip(numbers, _places(sentence, numbers)):
            if _not_a_figure(sentence, num, place):
                continue
            found = _attribute(num, place, checks, year, unit)
            if found is None or found[3] == found[1]:
                continue
            indicator, value, prev, written = found
            mismatches.append(LiteralMismatch(indicator, written, value, original,
                                              prev if written == prev else None, num.text))
    return mismatches


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(value)
