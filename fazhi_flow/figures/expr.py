"""A small, safe parser for rule expressions (校验规则) over indicator codes.

Grammar (no ``eval``; only these constructs exist)::

    rule    := expr COMPARE expr
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("+" | "-") unary | atom
    atom    := NUMBER | CODE | "sum" "(" CODE ")" | "(" expr ")"
    COMPARE := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="

``CODE`` is an indicator code of the cycle (codes are unique per cycle, so a rule may name an indicator
of any section). ``sum(code)`` is the sum of every unit's value of that indicator in the cycle.
Full-width characters typed with a Chinese input method (＝ （ ） ＋ × ÷ ≥ ≤ ≠ and full-width digits)
are read as their ASCII equivalents. Positions in error messages count characters from 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

OP_WORDS = {
    "=": "应等于", "!=": "不应等于", "<": "应小于", "<=": "应不大于", ">": "应大于", ">=": "应不小于",
}
FUNCTIONS = ("sum",)
MAX_LENGTH = 500

# One character in, one character out, so that positions stay true to what the user typed.
_FULLWIDTH = {
    "＝": "=", "（": "(", "）": ")", "＋": "+", "－": "-", "×": "*", "＊": "*", "÷": "/", "／": "/",
    "＜": "<", "＞": ">", "！": "!", "．": ".", "　": " ", "，": ",",
}
_FULLWIDTH.update({chr(0xFF10 + i): str(i) for i in range(10)})
_WIDE_COMPARE = {"≥": ">=", "≤": "<=", "≠": "!="}


class ExpressionError(ValueError):
    """A malformed expression; ``message`` is Chinese and names the position."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


# ---------------------------------------------------------------- tree


@dataclass(frozen=True)
class Num:
    value: Decimal
    text: str
    pos: int


@dataclass(frozen=True)
class Ref:
    code: str
    pos: int


@dataclass(frozen=True)
class Sum:
    code: str
    pos: int


@dataclass(frozen=True)
class Neg:
    operand: object
    pos: int


@dataclass(frozen=True)
class Group:
    inner: object
    pos: int


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object
    pos: int


@dataclass(frozen=True)
class Compare:
    op: str  # one of "=", "!=", "<", "<=", ">", ">=" ("==" is stored as "=")
    left: object
    right: object
    pos: int


def codes_in(node) -> list[str]:
    """Return the indicator codes a node refers to, in order of appearance, without repeats."""
    found: list[str] = []

    def visit(n):
        if isinstance(n, (Ref, Sum)):
            if n.code not in found:
                found.append(n.code)
        elif isinstance(n, (Neg,)):
            visit(n.operand)
        elif isinstance(n, Group):
            visit(n.inner)
        elif isinstance(n, (BinOp, Compare)):
            visit(n.left)
            visit(n.right)

    visit(node)
    return found


def has_sum(node) -> bool:
    if isinstance(node, Sum):
        return True
    if isinstance(node, Neg):
        return has_sum(node.operand)
    if isinstance(node, Group):
        return has_sum(node.inner)
    if isinstance(node, (BinOp, Compare)):
        return has_sum(node.left) or has_sum(node.right)
    return False


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "cmp", "(", ")", "end"
    text: str
    pos: int  # 1-based


def normalise(expression: str) -> str:
    """Map full-width symbols to ASCII one for one (≥ ≤ ≠ stay and are read by the tokenizer)."""
    return "".join(_FULLWIDTH.get(ch, ch) for ch in expression)


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def tokenize(expression: str) -> list[Token]:
    text = normalise(expression)
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            while i < n and (text[i].isdigit() or text[i] == "."):
                i += 1
            literal = text[start:i]
            if literal.count(".") > 1:
                raise ExpressionError(f"第{start + 1}个字符处的数字“{literal}”格式不正确。", start + 1)
            if i < n and _is_name_start(text[i]):
                raise ExpressionError(
                    f"第{start + 1}个字符处“{literal}{text[i]}”有误：指标代码不能以数字开头，"
                    "数字与代码之间需要运算符。", start + 1)
            tokens.append(Token("num", literal, start + 1))
            continue
        if _is_name_start(ch):
            while i < n and _is_name_char(text[i]):
                i += 1
            tokens.append(Token("name", text[start:i], start + 1))
            continue
        two = text[i:i + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(Token("cmp", "=" if two == "==" else two, start + 1))
            i += 2
            continue
        if ch in _WIDE_COMPARE:
            tokens.append(Token("cmp", _WIDE_COMPARE[ch], start + 1))
            i += 1
            continue
        if ch in "=<>":
            tokens.append(Token("cmp", ch, start + 1))
            i += 1
            continue
        if ch in "+-*/":
            tokens.append(Token("op", ch, start + 1))
            i += 1
            continue
        if ch in "()":
            tokens.append(Token(ch, ch, start + 1))
            i += 1
            continue
        if ch == "!":
            raise ExpressionError(f"第{start + 1}个字符处的“!”后面应是“=”（不等于写作 !=）。", start + 1)
        raise ExpressionError(f"第{start + 1}个字符处有不允许的字符“{expression[i] if i < len(expression) else ch}”。"
                              "规则只能包含指标代码、数字、+ - * /、括号、比较符号和 sum()。", start + 1)
    tokens.append(Token("end", "", n + 1))
    return tokens


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, expression: str):
        self.tokens = tokenize(expression)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail_here(self, what: str):
        tok = self.tok
        if tok.kind == "end":
            raise ExpressionError(f"第{tok.pos}个字符处（表达式末尾）不完整：{what}。", tok.pos)
        raise ExpressionError(f"第{tok.pos}个字符处的“{tok.text}”有误：{what}。", tok.pos)

    def rule(self) -> Compare:
        if self.tok.kind == "end":
            raise ExpressionError("规则表达式为空。", 1)
        left = self.expr()
        if self.tok.kind != "cmp":
            if self.tok.kind == "end":
                raise ExpressionError(
                    "规则必须是一个比较式，例如 total = a + b 或 rate <= 100（缺少 =、!=、<、<=、>、>=）。",
                    self.tok.pos)
            self.fail_here("这里应是运算符或比较符号")
        op_tok = self.take()
        right = self.expr()
        if self.tok.kind == "cmp":
            raise ExpressionError(f"第{self.tok.pos}个字符处又出现比较符号“{self.tok.text}”："
                                  "一条规则只能有一个比较，请拆成两条规则。", self.tok.pos)
        if self.tok.kind != "end":
            if self.tok.kind == ")":
                self.fail_here("多了一个右括号")
            self.fail_here("这里应是运算符")
        return Compare(op_tok.text, left, right, op_tok.pos)

    def expr(self):
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take()
            node = BinOp(op.text, node, self.term(), op.pos)
        return node

    def term(self):
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self.take()
            node = BinOp(op.text, node, self.unary(), op.pos)
        return node

    def unary(self):
        if self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take()
            operand = self.unary()
            return operand if op.text == "+" else Neg(operand, op.pos)
        return self.atom()

    def atom(self):
        tok = self.tok
        if tok.kind == "num":
            self.take()
            try:
                value = Decimal(tok.text)
            except InvalidOperation:  # pragma: no cover - the tokenizer admits digits and one dot only
                raise ExpressionError(f"第{tok.pos}个字符处的数字“{tok.text}”格式不正确。", tok.pos) from None
            return Num(value, tok.text, tok.pos)
        if tok.kind == "name":
            self.take()
            if self.tok.kind == "(":
                if tok.text.lower() not in FUNCTIONS:
                    raise ExpressionError(f"第{tok.pos}个字符处的函数“{tok.text}”不受支持，只能使用 sum(指标代码)。",
                                          tok.pos)
                self.take()
                arg = self.tok
                if arg.kind != "name":
                    self.fail_here("sum( ) 的括号里应是一个指标代码")
                self.take()
                if self.tok.kind != ")":
                    self.fail_here("sum( ) 缺少右括号，且括号里只能有一个指标代码")
                self.take()
                return Sum(arg.text, tok.pos)
            if tok.text.lower() in FUNCTIONS:
                raise ExpressionError(f"第{tok.pos}个字符处的 sum 后面应紧跟括号，例如 sum(cases)。", tok.pos)
            return Ref(tok.text, tok.pos)
        if tok.kind == "(":
            self.take()
            inner = self.expr()
            if self.tok.kind != ")":
                if self.tok.kind == "end":
                    raise ExpressionError(f"第{tok.pos}个字符处的左括号“(”没有对应的右括号。", tok.pos)
                self.fail_here("这里应是运算符或右括号")
            self.take()
            return Group(inner, tok.pos)
        if tok.kind == ")":
            self.fail_here("右括号前缺少数值或指标代码")
        if tok.kind == "cmp":
            self.fail_here("比较符号前后都要有数值或指标代码")
        if tok.kind == "op":
            self.fail_here("运算符前后都要有数值或指标代码")
        self.fail_here("这里缺少数值或指标代码")


def parse_rule(expression: str) -> Compare:
    """Parse a rule (a comparison).

    :raise ExpressionError: with a Chinese message naming the position.
    """
    if expression is None:
        raise ExpressionError("规则表达式为空。", 1)
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"规则表达式过长（{len(expression)}个字符），最多{MAX_LENGTH}个字符。")
    return _Parser(expression).rule()


def validate(expression: str, known_codes=None) -> list[str]:
    """Check a rule expression; return Chinese error messages, empty when it is valid.

    ``known_codes``: the indicator codes defined in the cycle (any iterable); when given, every code
    the rule names (also inside ``sum()``) must be one of them. ``None`` skips that check.
    """
    try:
        tree = parse_rule(expression)
    except ExpressionError as exc:
        return [exc.message]
    if known_codes is None:
        return []
    known = set(known_codes)
    errors = []
    for node in _refs(tree):
        if node.code not in known:
            errors.append(f"第{node.pos}个字符处的指标代码“{node.code}”未定义。")
    if not codes_in(tree):
        errors.append("规则中没有引用任何指标代码。")
    return errors


def _refs(node):
    if isinstance(node, (Ref, Sum)):
        yield node
    elif isinstance(node, Neg):
        yield from _refs(node.operand)
    elif isinstance(node, Group):
        yield from _refs(node.inner)
    elif isinstance(node, (BinOp, Compare)):
        yield from _refs(node.left)
        yield from _refs(node.right)
