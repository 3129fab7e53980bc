"""The literal-number check measured on a labelled corpus of report sentences (data/literal_corpus.yaml),
and last year's numbers left in this year's text."""
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fazhi_flow.figures.literal import check_literals

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "literal_corpus.yaml").read_text(encoding="utf-8"))
INDICATORS = {code: SimpleNamespace(code=code, name=name, measure=measure)
              for code, (name, measure) in CORPUS["indicators"].items()}
MIN_RECALL = 0.90
MAX_FALSE_ALARMS = 0.05


def _decimals(mapping):
    return {code: Decimal(str(v)) for code, v in (mapping or {}).items()}


def run(entry):
    checks = [(INDICATORS[code], value) for code, value in _decimals(entry["values"]).items()]
    return check_literals(entry["text"], checks, _decimals(entry.get("previous")), CORPUS["year"], entry.get("unit"))


def test_corpus_is_labelled_and_balanced():
    entries = CORPUS["sentences"]
    assert len(entries) >= 150
    assert len({e["text"] for e in entries}) >= 140  # the same wording with other table values is fine
    for e in entries:
        assert e["expect"] in ("warn", "ok"), e
        assert set(e["values"]) | set(e.get("previous") or {}) <= set(INDICATORS), e
        assert e["expect"] == "ok" or e["flag"] in e["values"], e
    warn = sum(e["expect"] == "warn" for e in entries)
    assert 0.4 <= warn / len(entries) <= 0.6
    kinds = {e["kind"] for e in entries}
    assert {"after", "before", "qizhong", "range", "percent", "money", "compare", "period", "other", "date",
            "chinese", "lastyear"} <= kinds


def test_recall_and_false_alarm_rate_on_the_corpus():
    caught, missed, false_alarms, quiet = [], [], [], []
    for e in CORPUS["sentences"]:
        flagged = {m.indicator.code for m in run(e)}
        if e["expect"] == "warn":
            (caught if e["flag"] in flagged else missed).append(e["text"])
        else:
            (false_alarms if flagged else quiet).append(e["text"])
    recall = len(caught) / (len(caught) + len(missed))
    false_rate = len(false_alarms) / (len(false_alarms) + len(quiet))
    print(f"\nliteral check: recall {len(caught)}/{len(caught) + len(missed)} = {recall:.1%}, "
          f"false alarms {len(false_alarms)}/{len(false_alarms) + len(quiet)} = {false_rate:.1%}")
    print("missed:", missed)
    print("false alarms:", false_alarms)
    assert recall >= MIN_RECALL, missed
    assert false_rate <= MAX_FALSE_ALARMS, false_alarms


def ind(code, name, measure):
    return SimpleNamespace(code=code, name=name, measure=measure)


CASES = ind("fy", "行政复议案件数", "件")
TRAININGS = ind("tr", "法治培训场次", "场")


@pytest.mark.parametrize("text", [
    "全年共办理行政复议案件480件，办结率100%。",
    "在收到的480件行政复议申请中，当场受理率达到100%。",
])
def test_last_years_number_is_named_as_such(text):
    found = check_literals(text, [(CASES, Decimal(516))], {"fy": Decimal(480)}, 2024)
    assert [(m.written, m.value, m.previous) for m in found] == [(Decimal(480), Decimal(516), Decimal(480))]
    assert found[0].message.startswith("正文写的是“480件”，这是指标“行政复议案件数”上年的数值，今年填报的是516件，"
                                       "是否沿用了上年的文字？请核对：")


def test_last_years_number_is_caught_on_a_looser_mention_only_when_it_is_last_years():
    text = "领导干部带头学法，全年举办专题培训41场。"
    assert [m.previous for m in check_literals(text, [(TRAININGS, 48)], {"tr": 41}, 2024)] == [41]
    assert check_literals(text, [(TRAININGS, 48)], {"tr": 40}, 2024) == []
    assert check_literals(text, [(TRAININGS, 48)], None, 2024) == []
    assert check_literals(text, [(TRAININGS, 41)], {"tr": 41}, 2024) == []  # unchanged: correct


@pytest.mark.parametrize("text", [
    "全年共办理行政复议案件516件，较上年的480件增长7.5%。",
    "办理行政复议案件516件，上年为480件。",
    "行政复议案件数量由上年的480件增至516件。",
    "2023年全区办理行政复议案件480件。",
])
def test_last_years_number_in_a_comparison_is_not_flagged(text):
    assert check_literals(text, [(CASES, Decimal(516))], {"fy": Decimal(480)}, 2024) == []


def test_money_is_compared_across_units_and_shown_as_written():
    fines = ind("fines", "罚没款金额", "万元")
    assert check_literals("罚没款合计0.15亿元。", [(fines, Decimal(1500))]) == []
    found = check_literals("罚没款合计0.15亿元。", [(fines, Decimal("1436.5"))])
    assert [(m.written, m.value) for m in found] == [(Decimal(1500), Decimal("1436.5"))]
    assert found[0].message.startswith("正文写的是“0.15亿元”，但指标“罚没款金额”填报的是1436.5万元")
