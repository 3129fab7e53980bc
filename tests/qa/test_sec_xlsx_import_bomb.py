"""A user list in XLSX that unpacks far beyond any real list is refused before openpyxl reads it."""
import io
import zipfile

from openpyxl import Workbook
from sqlalchemy import func, select

from fazhi_flow.models import User


def _bomb() -> io.BytesIO:
    book = Workbook()
    sheet = book.active
    sheet.append(["用户名", "姓名", "单位代码", "角色"])
    sheet.append(["bomb1", "甲", "", "审核人"])
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        # 30 MB of one repeated byte deflates to about 30 KB: small upload, huge unpacked size.
        target.writestr("xl/media/padding.bin", b"\0" * (30 * 1024 * 1024))
    out.seek(0)
    return out


def test_xlsx_bomb_is_refused_with_a_message(as_user, world, db):
    data = _bomb()
    assert len(data.getvalue()) < 200 * 1024
    client = as_user(world.admin)
    response = client.post("/admin/import", content_type="multipart/form-data",
                           data={"kind": "users", "file": (data, "用户.xlsx")})
    page = response.get_data(as_text=True)
    assert response.status_code < 500
    assert "解压后超过20MB" in page
    assert db.session.scalar(select(func.count(User.id)).where(User.username == "bomb1")) == 0
