"""Form fields with Chinese messages for malformed input."""
from wtforms import IntegerField


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
        if abs(value) > 2**31:
            self.data = None
            raise ValueError("数字超出范围。")
        self.data = value
