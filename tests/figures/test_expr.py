"""The rule parser: valid rules parse, malformed ones get a Chinese message naming the position."""
from decimal import Decimal

import pytest

from fazhi_flow.figures import expr as E
from fazhi_flow.figures.expr import validate

CODES = {"total", "a", "b", "c", "rate", "cases", "closed"}


@pytest.mark.parametrize("expression", [
    "total = a + b + c",
    "total == a + b + c",
    "a >= b",
    "rate <= 100",
    "total = sum(cases)",
    "closed / cases * 100 <= rate + 0.5",
    "-a + (b - c) * 2 != 3.5",
    "total ＝ a ＋ b",  # typed with a Chinese input method
    "rate ≤ 100",
    "a≠b",
])
def test_valid_rules(expression):
    assert validate(expression, CODES) == []


@pytest.mark.parametrize("expression, fragment", [
    ("", "为空"),
    ("total = a +", "第12个字符处（表达式末尾）不完整"),
    ("total = (a + b", "第9个字符处的左括号"),
    ("total = a + b)", "第14个字符处的“)”有误：多了一个右括号"),
    ("a + b", "必须是一个比较式"),
    ("a b = c", "第3个字符处的“b”有误"),
    ("2a = b", "不能以数字开头"),
    ("a = b = c", "一条规则只能有一个比较"),
    ("total = max(a)", "函数“max”不受支持"),
    ("total = a # b", "第11个字符处有不允许的字符“#”"),
    ("total = sum(a + b)", "sum( ) 缺少右括号"),
    ("total = sum", "sum 后面应紧跟括号"),
    ("a ! b", "不等于写作 !="),
    ("total = 1.2.3", "格式不正确"),
])
def test_malformed_rules_name_the_position(expression, fragment):
    errors = validate(expression, CODES)
    assert len(errors) == 1
    assert fragment in errors[0]


def test_unknown_codes_are_listed_with_positions():
    errors = validate("total = a + missing + sum(other)", CODES)
    assert errors == ["第13个字符处的指标代码“missing”未定义。", "第23个字符处的指标代码“other”未定义。"]


def test_known_codes_none_skips_the_code_check():
    assert validate("anything = whatever + 1", None) == []


def test_a_rule_must_name_an_indicator():
    assert validate("1 = 1", CODES) == ["规则中没有引用任何指标代码。"]


def test_no_eval_python_is_not_executed():
    # Python syntax that eval would run is simply not part of the language.
    for hostile in ("__import__('os').system('true') = 1", "a = b.__class__", "a = [b]", "a = b if c else 1"):
        assert validate(hostile, CODES), hostile


def test_tree_shape_and_codes():
    tree = E.parse_rule("total = a + b * (c - 1)")
    assert tree.op == "="
    assert E.codes_in(tree) == ["total", "a", "b", "c"]
    assert isinstance(tree.right, E.BinOp) and tree.right.op == "+"
    assert tree.right.right.op == "*"
    assert tree.right.right.right.inner.right == E.Num(Decimal(1), "1", 22)


def test_too_long_rule_is_refused():
    assert "过长" in validate("a = " + " + ".join(["b"] * 200), CODES)[0]
