"""Reading values typed by a liaison and writing numbers the way a report prints them."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_DECIMALS = 4  # the scale of the value columns
MAX_ABS = Decimal("1e15")
PERCENT_MAX = 100  # the upper bound of a percent indicator without a maximum
_PLACES = Decimal(1).scaleb(-MAX_DECIMALS)
# What a bound typed by an administrator or written in a cycle file may be, for its message.
STORABLE = f"数字（绝对值小于{int(MAX_ABS)}，最多{MAX_DECIMALS}位小数）"
_APPROXIMATE = ("余", "多", "约", "近", "左右", "以上", "以下", "万余")
_TRANSLATE = {ord(chr(0xFF10 + i)): str(i) for i in range(10)}
_TRANSLATE.update({ord("．"): ".", ord("，"): ",", ord("－"): "-", ord("％"): "%", ord("　"): " "})


def format_number(value) -> str:
    """Print a value as a report does: 265, 12.3, 0.05 — no exponent, no trailing zeros."""
    if value is None:
        return ""
    value = Decimal(value)
    if value == value.to_integral_value():
        return str(int(value))
    text = format(value.normalize(), "f")
    return text


def storable_number(raw) -> Decimal:
    """``raw`` (text or a number) as a Decimal the NUMERIC(20, 4) columns hold exactly.

    Comparisons and quantize never round or overflow here, so 1E-999999 or 1e300 are refused
    instead of failing in the database.
    :raise ValueError: not a number, not finite, |x| >= MAX_ABS or more than MAX_DECIMALS places.
    """
    try:
        value = Decimal(str(raw).strip())
    except ArithmeticError:
        raise ValueError(raw) from None
    if not value.is_finite() or not -MAX_ABS < value < MAX_ABS or value != value.quantize(_PLACES):
        raise ValueError(raw)
    return value


def parse_value(raw, indicator) -> Decimal | None:
    """Turn what a liaison typed into a Decimal for ``indicator``; ``None`` when left blank.

    :raise ValueError: with a Chinese message naming the indicator and what was typed.
    """
    if raw is None:
        return None
    typed = str(raw)
    text = typed.translate(_TRANSLATE).strip()
    if not text:
        return None
    name = f"“{indicator.name}”"
    for word in _APPROXIMATE:
        if word in text:
            raise ValueError(f"{name}请填写确切的数字，不要带“{word}”等字样（您填写的是“{typed}”）。"
                             "如只掌握约数，请填写统计口径内的确数，约数可写在正文中。")
    measure = (indicator.measure or "").strip()
    value = _typed_number(text, typed, name, measure, indicator.type)
    _check_bounds(value, indicator, typed, name, measure)
    return value


def _typed_number(text: str, typed: str, name: str, measure: str, kind: str) -> Decimal:
    """The number in ``text`` (unit suffix and thousands separators removed), storable as typed."""
    for suffix in sorted({measure, "%"} - {""}, key=len, reverse=True):
        if text.endswith(suffix):
            text = text[: -len(suffix)].strip()
            break
    compact = text.replace(",", "").replace(" ", "")
    try:
        value = Decimal(compact)
    except InvalidOperation:
        raise ValueError(f"{name}应填写数字，您填写的是“{typed}”。") from None
    if not value.is_finite():
        raise ValueError(f"{name}应填写数字，您填写的是“{typed}”。")
    if abs(value) >= MAX_ABS:
        raise ValueError(f"{name}的数值过大（{typed}），请检查计量单位是否应为万元或亿元。")
    if kind == "integer" and value != value.to_integral_value():
        raise ValueError(f"{name}应填写整数（单位：{measure or '个'}），您填写的是“{typed}”。")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise ValueError(f"{name}最多保留{MAX_DECIMALS}位小数，您填写的是“{typed}”。")
    return value


def _check_bounds(value: Decimal, indicator, typed: str, name: str, measure: str) -> None:
    minimum = indicator.minimum
    maximum = indicator.maximum
    if maximum is None and indicator.type == "percent":
        # A share cannot pass 100 %; a growth rate that may needs a maximum set on the indicator.
        if value > PERCENT_MAX:
            raise ValueError(f"{name}是百分比，不能大于{PERCENT_MAX}%，您填写的是“{typed}”。"
                             "如该指标确实可能超过100%（例如增长率），请管理员为它设置最大值。")
    if minimum is None and value < 0:
        raise ValueError(f"{name}不能为负数，您填写的是“{typed}”。")
    if minimum is not None and value < Decimal(minimum):
        raise ValueError(f"{name}不能小于{format_number(minimum)}{measure}，您填写的是“{typed}”。")
    if maximum is not None and value > Decimal(maximum):
        raise ValueError(f"{name}不能大于{format_number(maximum)}{measure}，您填写的是“{typed}”。")
