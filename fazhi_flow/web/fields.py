"""Form fields with Chinese messages for malformed input; integers that fit the database."""
from werkzeug.routing import IntegerConverter
from wtforms import IntegerField

# Keys and numbers are 32-bit integers in the database; a larger one cannot name anything there and
# would make the driver fail (OverflowError on SQLite, "out of range" on PostgreSQL).
DB_INT_MAX = 2**31 - 1


def db_int(value) -> int:
    """``int`` for ``request.args.get(..., type=db_int)``: out-of-range values count as malformed."""
    number = int(value)
    if not -DB_INT_MAX - 1 <= number <= DB_INT_MAX:
        raise ValueError("out of range")
    return number


class DbIntConverter(IntegerConverter):
    """The ``<int:...>`` URL converter, limited to what the database can hold (larger ids are 404)."""

    def __init__(self, map, fixed_digits=0, min=None, max=DB_INT_MAX, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class IntField(IntegerField):
    """An IntegerField whose parse error is in Chinese."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        raw = (valuelist[0] or "").strip()
        if raw == "":
            self.data = None
            return
        try:
            value = int(raw)
        except ValueError:
            self.data = None
            raise ValueError("请输入整数。") from None
        if not -DB_INT_MAX - 1 <= value <= DB_INT_MAX:
            self.data = None
            raise ValueError("数字超出范围。")
        self.data = value
