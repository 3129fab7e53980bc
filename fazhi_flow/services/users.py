"""Units and user accounts: create, change, deactivate, reset passwords, import from CSV or XLSX.

New accounts and password resets get a one-time random password that must be changed at the first
login. An import is checked completely first (a preview with row-level errors); nothing is written
unless every row is good.

Everything here happens inside one region (行政区划): new units and accounts get the actor's region
(or the one named), unit codes and names are unique within a region and looked up only there, and an
account never belongs to a unit of another region. Usernames are unique over the whole system.
"""
from __future__ import annotations

import csv
import io
import re
import secrets
import zipfile
from dataclasses import dataclass, field

from sqlalchemy import func, select

from .. import policy
from ..errors import DomainError, PermissionDenied
from ..extensions import db
from ..limits import column_length
from ..models import ROLES, Assignment, ReportCycle, Section, Unit, User
from ..models.org import ROLE_LABELS, UNIT_KINDS, Region
from .audit import record

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{2,59}$")
UNIT_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,39}$")  # as in cycle files
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^[0-9+\-() ]{3,40}$")
UNIT_ROLES = ("liaison", "unit_head")  # these roles act for a unit and need one
MAX_IMPORT_ROWS = 2000
MAX_IMPORT_BYTES = 2 * 1024 * 1024
# An XLSX is a zip: 2 MB can unpack to gigabytes that openpyxl would hold in memory (shared strings).
# A list of 2,000 people unpacks to well under a megabyte.
MAX_XLSX_UNPACKED_BYTES = 20 * 1024 * 1024

_PASSWORD_LETTERS = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_PASSWORD_DIGITS = "23456789"


def one_time_password(length: int = 12) -> str:
    """A random password easy to read aloud (no 0/O, 1/l/I), with letters and digits."""
    while True:
        chars = [secrets.choice(_PASSWORD_LETTERS + _PASSWORD_DIGITS) for _ in range(length)]
        word = "".join(chars)
        if (any(c in _PASSWORD_DIGITS for c in word) and any(c in _PASSWORD_LETTERS for c in word)
                and password_problem(word) is None):
            return word


# ------------------------------------------------------------------ password policy

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MIN_STRENGTH = 3  # zxcvbn score 0..4; 3 = "safely unguessable" against throttled online guessing
# Words common in Chinese passwords that zxcvbn's English lists do not rank, and this system's own
# names: a password built on them is guessed early.
_LOCAL_WORDS = ("woaini", "aini", "1314", "520", "5201314", "woaini1314", "zhangwei", "wangwei",
                "wangfang", "liwei", "zhongguo", "china", "beijing", "fazhi", "fazhiban", "sifaju",
                "zhengfu", "yifazhiqu", "fazhi-flow", "qq", "baidu")


def password_problem(password: str, username: str = "") -> str | None:
    """A Chinese message when ``password`` may not be chosen (too short, too long, too guessable),
    else None. Applies wherever a person chooses a password (not to the demo's accounts)."""
    if len(password) < MIN_PASSWORD:
        return f"密码至少需要{MIN_PASSWORD}个字符。"
    if len(password) > MAX_PASSWORD:
        return f"密码不能超过{MAX_PASSWORD}个字符。"
    if username and username.lower() in password.lower():
        return "密码不能包含用户名。"
    from zxcvbn import zxcvbn

    hints = [*_LOCAL_WORDS, username] if username else list(_LOCAL_WORDS)
    # zxcvbn refuses more than 72 characters (its cost grows fast); a strong start is strong enough.
    if zxcvbn(password[:72], user_inputs=hints)["score"] < MIN_STRENGTH:
        return ("密码太容易被猜到（常见密码、键盘序列、姓名拼音加数字、日期等都很常见）。"
                "请换一个更长、不常见的密码，例如用短横线连接三四个不相关的词语拼音和数字。")
    return None


# ------------------------------------------------------------------ checks shared by forms and import


def _find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def _find_unit(code: str, region_id: int | None) -> Unit | None:
    """The unit with ``code`` (any case) in the region: another region's "gaj" is another unit."""
    return db.session.scalar(select(Unit).where(func.lower(Unit.code) == code.lower(), Unit.region_id == region_id))


def _region_of(actor, region: Region | None = None) -> Region | None:
    """The region a new row goes to: the one named, else the actor's. None (no actor, e.g. a script in a
    one-region installation) leaves it to the model, which refuses a guess."""
    if region is not None:
        return region
    return getattr(actor, "region", None)


def _same_region(obj, region: Region | None) -> bool:
    return region is None or obj.region_id == region.id


def _role_problems(actor, region: Region | None, old: set[str], new: set[str]) -> list[str]:
    """Who may grant what: 系统管理员 only a system administrator; 督导 only in a region with regions below
    it (it reads theirs, never its own)."""
    problems = []
    if "sysadmin" in old ^ new and actor is not None and not policy.can(actor, "user.grant_sysadmin"):
        problems.append("只有系统管理员可以授予或取消系统管理员角色")
    if "oversight" in new - old and region is not None:
        from .regions import regions_below

        if not regions_below(region):
            problems.append(f"“{region.name}”没有下级地区，不能设置督导角色（督导查看的是下级地区的报告）")
    return problems


def require_manage(actor, user: User) -> None:
    """Refuse changing ``user``'s account unless ``actor`` manages it (its region's admin; a system
    administrator's account: another system administrator)."""
    if actor is not None and not policy.can(actor, "user.manage", user):
        raise PermissionDenied("您不能管理这个账号。")


def _user_problems(username: str, name: str, roles, unit: Unit | None, email: str, phone: str,
                   check_username: bool = True) -> list[str]:
    problems = []
    if check_username:
        if not username:
            problems.append("用户名不能为空")
        elif not USERNAME_RE.match(username):
            problems.append(f"用户名“{username}”不合规：只能用字母、数字、点、下划线和短横线，3至60个字符")
    if not name:
        problems.append("姓名不能为空")
    elif len(name) > column_length(User.name):
        problems.append(f"姓名不能超过{column_length(User.name)}个字")
    if not roles:
        problems.append("至少要有一个角色")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        problems.append(f"未知的角色：{'、'.join(unknown)}")
    needs_unit = [ROLE_LABELS[r] for r in roles if r in UNIT_ROLES]
    if needs_unit and unit is None:
        problems.append(f"{'、'.join(needs_unit)}必须属于某个单位")
    if unit is not None and not unit.active:
        problems.append(f"单位“{unit.name}”已停用")
    if email and (len(email) > column_length(User.email) or not EMAIL_RE.match(email)):
        problems.append(f"邮箱“{email}”格式不正确")
    if phone and not PHONE_RE.match(phone):
        problems.append(f"电话“{phone}”格式不正确")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        raise DomainError("；".join(problems) + "。")


# ------------------------------------------------------------------ users


def create_user(actor, username: str, name: str, roles, unit: Unit | None = None,
                email: str | None = None, phone: str | None = None,
                region: Region | None = None) -> tuple[User, str]:
    """Create an account with a one-time password; return the user and that password. The account
    belongs to ``region`` (default: the actor's); ``unit`` must be of that region."""
    username, name = (username or "").strip(), (name or "").strip()
    email, phone = (email or "").strip(), (phone or "").strip()
    roles = [r for r in ROLES if r in set(roles)]
    region = _region_of(actor, region)
    problems = _user_problems(username, name, roles, unit, email, phone)
    if unit is not None and not _same_region(unit, region):
        problems.append(f"单位“{unit.name}”不属于本地区")
    problems += _role_problems(actor, region, set(), set(roles))
    if username and _find_user(username):
        problems.append(f"用户名“{username}”已存在")
    _raise(problems)
    password = one_time_password()
    user = User(username=username, name=name, unit=unit, email=email or None, phone=phone or None,
                must_change_password=True)
    if region is not None:
        user.region = region
    user.set_roles(roles)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    record(actor, "user.create", f"user:{user.id}", username=username, roles=roles,
           unit=unit.id if unit else None, region_id=user.region_id)
    return user, password


def update_user(user: User, actor, name: str, roles, unit: Unit | None, email: str | None,
                phone: str | None) -> User:
    """Change a user's name, roles, unit and contact details (the username stays)."""
    require_manage(actor, user)
    name, email, phone = (name or "").strip(), (email or "").strip(), (phone or "").strip()
    roles = [r for r in ROLES if r in set(roles)]
    problems = _user_problems(user.username, name, roles, unit, email, phone, check_username=False)
    if unit is not None and unit is user.unit:
        # Keeping an unchanged (even if since deactivated) unit is not a new problem.
        problems = [p for p in problems if not p.endswith("已停用")]
    if unit is not None and unit.region_id != user.region_id:
        problems.append(f"单位“{unit.name}”不属于本地区")
    problems += _role_problems(actor, user.region, set(user.roles), set(roles))
    if user.id == getattr(actor, "id", None) and "admin" not in roles and "admin" in user.roles:
        problems.append("不能取消自己的管理员角色")
    _raise(problems)
    before = {"name": user.name, "roles": sorted(user.roles), "unit": user.unit_id,
              "email": user.email, "phone": user.phone}
    user.name, user.unit, user.email, user.phone = name, unit, email or None, phone or None
    user.set_roles(roles)
    db.session.flush()
    after = {"name": user.name, "roles": sorted(user.roles), "unit": user.unit_id,
             "email": user.email, "phone": user.phone}
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changed:
        record(actor, "user.update", f"user:{user.id}", changed=changed)
    return user


def deactivate_user(user: User, actor) -> User:
    """Deactivate an account; its session token is rotated so open sessions end at once."""
    require_manage(actor, user)
    if user.id == getattr(actor, "id", None):
        raise DomainError("不能停用自己的账号。")
    if not user.active:
        raise DomainError(f"{user.name}的账号已经是停用状态。")
    user.active = False
    user.rotate_session_token()
    db.session.flush()
    record(actor, "user.deactivate", f"user:{user.id}")
    return user


def activate_user(user: User, actor) -> User:
    require_manage(actor, user)
    if user.active:
        raise DomainError(f"{user.name}的账号已经是启用状态。")
    if user.unit is not None and not user.unit.active:
        raise DomainError(f"{user.name}所属单位“{user.unit.name}”已停用，请先启用该单位或调整其所属单位。")
    user.active = True
    user.rotate_session_token()
    db.session.flush()
    record(actor, "user.activate", f"user:{user.id}")
    return user


def reset_password(user: User, actor) -> str:
    """Give ``user`` a new one-time password (returned) to be changed at the next login."""
    require_manage(actor, user)
    if not user.active:
        raise DomainError(f"{user.name}的账号已停用，请先启用再重置密码。")
    password = one_time_password()
    user.set_password(password)  # also rotates the session token
    user.must_change_password = True
    db.session.flush()
    record(actor, "user.reset_password", f"user:{user.id}")
    return password


# ------------------------------------------------------------------ units


def _unit_problems(code: str, name: str, kind: str, parent: Unit | None, check_code: bool = True) -> list[str]:
    problems = []
    if check_code:
        if not code:
            problems.append("单位代码不能为空")
        elif not UNIT_CODE_RE.match(code):
            problems.append(f"单位代码“{code}”不合规：以字母开头，只能用字母、数字、下划线和短横线，最多40个字符")
    if not name:
        problems.append("单位名称不能为空")
    elif len(name) > column_length(Unit.name):
        problems.append(f"单位名称不能超过{column_length(Unit.name)}个字")
    if kind not in UNIT_KINDS:
        problems.append(f"未知的单位类型“{kind}”，可选：{'、'.join(UNIT_KINDS.values())}")
    if parent is not None and not parent.active:
        problems.append(f"上级单位“{parent.name}”已停用")
    return problems


def create_unit(actor, code: str, name: str, kind: str = "government", parent: Unit | None = None,
                region: Region | None = None) -> Unit:
    """A unit of ``region`` (default: the actor's, else the parent's); codes and names unique in it."""
    code, name = (code or "").strip(), (name or "").strip()
    region = _region_of(actor, region) or (parent.region if parent is not None else None)
    region_id = region.id if region is not None else None
    problems = _unit_problems(code, name, kind, parent)
    if parent is not None and not _same_region(parent, region):
        problems.append(f"上级单位“{parent.name}”不属于本地区")
    if code and _find_unit(code, region_id):
        problems.append(f"单位代码“{code}”已存在于本地区")
    if name and db.session.scalar(select(Unit.id).where(Unit.name == name, Unit.region_id == region_id)):
        problems.append(f"本地区已有名为“{name}”的单位")
    _raise(problems)
    sort_order = (db.session.scalar(select(func.max(Unit.sort_order)).where(Unit.region_id == region_id)) or 0) + 1
    unit = Unit(code=code, name=name, kind=kind, parent=parent, sort_order=sort_order)
    if region is not None:
        unit.region = region
    db.session.add(unit)
    db.session.flush()
    record(actor, "unit.create", f"unit:{unit.id}", code=code, name=name, kind=kind, region_id=unit.region_id)
    return unit


def update_unit(unit: Unit, actor, name: str, kind: str, parent: Unit | None) -> Unit:
    """Rename a unit, change its type or its parent (never making the tree a loop)."""
    name = (name or "").strip()
    problems = _unit_problems(unit.code, name, kind, parent if parent is not unit.parent else None,
                              check_code=False)
    if parent is not None and parent.region_id != unit.region_id:
        problems.append(f"上级单位“{parent.name}”不属于本地区")
    if name and db.session.scalar(select(Unit.id).where(Unit.name == name, Unit.id != unit.id,
                                                         Unit.region_id == unit.region_id)):
        problems.append(f"本地区已有名为“{name}”的单位")
    node = parent
    while node is not None:
        if node.id == unit.id:
            problems.append("上级单位不能是该单位本身或其下级单位")
            break
        node = node.parent
    _raise(problems)
    before = {"name": unit.name, "kind": unit.kind, "parent": unit.parent_id}
    unit.name, unit.kind, unit.parent = name, kind, parent
    db.session.flush()
    after = {"name": unit.name, "kind": unit.kind, "parent": unit.parent_id}
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changed:
        record(actor, "unit.update", f"unit:{unit.id}", changed=changed)
    return unit


def deactivate_unit(unit: Unit, actor) -> Unit:
    """Deactivate a unit and its users' accounts; refused while a running cycle assigns it work."""
    if not unit.active:
        raise DomainError(f"“{unit.name}”已经是停用状态。")
    busy = db.session.scalars(
        select(ReportCycle.title).join(Section, Section.cycle_id == ReportCycle.id)
        .join(Assignment, Assignment.section_id == Section.id)
        .where(Assignment.unit_id == unit.id, ReportCycle.state.in_(("setup", "collecting"))).distinct()
    ).all()
    if busy:
        raise DomainError(f"“{unit.name}”在“{'、'.join(busy)}”中仍有任务分配，请先调整任务分配再停用。")
    if getattr(actor, "unit_id", None) == unit.id:
        raise DomainError("不能停用自己所在的单位。")
    unit.active = False
    users = list(db.session.scalars(select(User).where(User.unit_id == unit.id, User.active.is_(True))))
    for user in users:
        user.active = False
        user.rotate_session_token()
    db.session.flush()
    record(actor, "unit.deactivate", f"unit:{unit.id}", users=[u.id for u in users])
    return unit


def activate_unit(unit: Unit, actor) -> Unit:
    if unit.active:
        raise DomainError(f"“{unit.name}”已经是启用状态。")
    unit.active = True
    db.session.flush()
    record(actor, "unit.activate", f"unit:{unit.id}")
    return unit


# ------------------------------------------------------------------ import from CSV / XLSX

UNIT_COLUMNS = {"code": ("代码", "单位代码", "code"), "name": ("名称", "单位名称", "name"),
                "kind": ("类型", "单位类型", "kind"), "parent": ("上级代码", "上级单位代码", "parent")}
USER_COLUMNS = {"username": ("用户名", "username"), "name": ("姓名", "name"),
                "unit": ("单位代码", "unit"), "roles": ("角色", "roles"),
                "email": ("邮箱", "电子邮箱", "email"), "phone": ("电话", "手机", "phone")}
REQUIRED_COLUMNS = {"units": ("code", "name"), "users": ("username", "name", "roles")}
IMPORT_KINDS = {"units": "单位", "users": "用户"}
_KIND_BY_LABEL = {label: code for code, label in UNIT_KINDS.items()}
_ROLE_BY_LABEL = {label: code for code, label in ROLE_LABELS.items()}
_SPLIT_RE = re.compile(r"[、,，;；/\s]+")


@dataclass
class ImportRow:
    line: int  # the row number as the spreadsheet shows it (the header is row 1)
    values: dict
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportPreview:
    kind: str
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # problems of the file as a whole
    region_id: int | None = None  # the region the rows were checked against (and are written to)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows) and not any(r.errors for r in self.rows)

    @property
    def bad_rows(self) -> int:
        return sum(1 for r in self.rows if r.errors)

    def all_errors(self) -> list[str]:
        lines = list(self.errors)
        for row in self.rows:
            lines.extend(f"第{row.line}行：{e}" for e in row.errors)
        return lines


def _read_table(filename: str, data: bytes) -> list[list[str]]:
    """Read the first sheet of an XLSX file or a CSV file (UTF-8 or GB18030) into rows of strings."""
    if len(data) > MAX_IMPORT_BYTES:
        raise DomainError(f"文件过大（{len(data) // 1024}KB），导入文件最大{MAX_IMPORT_BYTES // 1024 // 1024}MB。")
    if not data.strip():
        raise DomainError("文件是空的。")
    name = (filename or "").lower()
    if data[:4] == b"PK\x03\x04":
        if not name.endswith(".xlsx"):
            raise DomainError("文件内容是Excel工作簿，但扩展名不是.xlsx，请检查文件。")
        return _read_xlsx(data)
    if name.endswith((".xlsx", ".xls")):
        raise DomainError("无法读取该Excel文件：请另存为.xlsx格式（Excel 2007及以上）或CSV后再导入。")
    if not name.endswith((".csv", ".txt")):
        raise DomainError("只支持.xlsx或.csv文件。")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes almost anything
        raise DomainError("无法识别CSV文件的编码，请另存为UTF-8编码的CSV。")
    if "\x00" in text:
        raise DomainError("CSV文件中含有无法识别的字符，请检查文件。")
    try:
        return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise DomainError(f"CSV文件格式有误：{exc}") from None


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DomainError("无法读取该Excel文件，文件可能已损坏。") from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise DomainError(f"该Excel文件解压后超过{MAX_XLSX_UNPACKED_BYTES // 1024 // 1024}MB，不像是单位或用户名单，"
                          "请只保留名单所在的工作表后再导入。")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise DomainError("无法读取该Excel文件，文件可能已损坏。") from None
    try:
        sheet = book.worksheets[0]
        rows = []
        for row in sheet.iter_rows(values_only=True):
            rows.append([_cell_text(v) for v in row])
            if len(rows) > MAX_IMPORT_ROWS + 1:
                break
        return rows
    finally:
        book.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # phone numbers and codes typed as numbers
    return str(value).strip()


def _map_header(header: list[str], columns: dict) -> tuple[dict, list[str]]:
    positions, errors = {}, []
    lookup = {alias.lower(): key for key, aliases in columns.items() for alias in aliases}
    for index, title in enumerate(header):
        key = lookup.get((title or "").strip().lower())
        if key is None:
            if title:
                errors.append(f"第1行：无法识别的列“{title}”")
            continue
        if key in positions:
            errors.append(f"第1行：列“{title}”重复")
        positions[key] = index
    return positions, errors


def _import_region(region: Region | None) -> Region:
    """The region an import goes to: the one named, else the installation's only one."""
    if region is not None:
        return region
    regions = list(db.session.scalars(select(Region).limit(2)))
    if len(regions) != 1:
        raise DomainError("系统中有多个地区，导入单位或用户时必须指明所属地区。")
    return regions[0]


def parse_import(kind: str, filename: str, data: bytes, actor=None, region: Region | None = None) -> ImportPreview:
    """Read and check an import file for ``actor`` (an admin: their region) or ``region`` (None for
    both: the installation's only region); write nothing. The preview lists every problem by row. Unit
    codes are looked up in that region only."""
    if kind not in IMPORT_KINDS:
        raise DomainError("请选择导入单位还是用户。")
    region = _import_region(_region_of(actor, region))
    preview = ImportPreview(kind=kind, region_id=region.id)
    table = [row for row in _read_table(filename, data)]
    while table and not any(table[-1]):
        table.pop()
    if not table:
        raise DomainError("文件中没有任何内容。")
    columns = UNIT_COLUMNS if kind == "units" else USER_COLUMNS
    positions, preview.errors = _map_header(table[0], columns)
    missing = [columns[k][0] for k in REQUIRED_COLUMNS[kind] if k not in positions]
    if missing:
        preview.errors.append(f"第1行：缺少必需的列：{'、'.join(missing)}（第一行应为列名）")
        return preview
    body = table[1:]
    if len(body) > MAX_IMPORT_ROWS:
        preview.errors.append(f"一次最多导入{MAX_IMPORT_ROWS}行，请分批导入。")
        return preview
    for offset, raw in enumerate(body, start=2):
        if not any(raw):
            continue  # blank lines in the middle are harmless
        values = {key: (raw[i] if i < len(raw) else "") for key, i in positions.items()}
        preview.rows.append(ImportRow(offset, values))
    if not preview.rows:
        preview.errors.append("文件中除列名外没有数据行。")
        return preview
    if kind == "units":
        _check_unit_rows(preview.rows, region)
    else:
        _check_user_rows(preview.rows, region, actor)
    return preview


def _check_unit_rows(rows: list[ImportRow], region: Region) -> None:
    seen = _check_unit_codes_and_names(rows, region.id)
    _check_unit_row_parents(rows, seen, region.id)
    _check_unit_row_loops(rows)


def _check_unit_codes_and_names(rows: list[ImportRow], region_id: int) -> dict[str, int]:
    """Each row's own fields, and codes and names unique in the file and new; lower-cased code -> line."""
    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    for row in rows:
        v = row.values
        code, name = v.get("code", ""), v.get("name", "")
        kind_text = v.get("kind", "") or "政府部门"
        kind = _KIND_BY_LABEL.get(kind_text, kind_text)
        v["kind"] = kind
        row.errors.extend(_unit_problems(code, name, kind, None))
        if code:
            if code.lower() in seen:
                row.errors.append(f"单位代码“{code}”与第{seen[code.lower()]}行重复")
            elif _find_unit(code, region_id):
                row.errors.append(f"单位代码“{code}”已存在于本地区")
            seen.setdefault(code.lower(), row.line)
        if name:
            if name in names:
                row.errors.append(f"单位名称“{name}”与第{names[name]}行重复")
            elif db.session.scalar(select(Unit.id).where(Unit.name == name, Unit.region_id == region_id)):
                row.errors.append(f"本地区已有名为“{name}”的单位")
            names.setdefault(name, row.line)
    return seen


def _check_unit_row_parents(rows: list[ImportRow], seen: dict[str, int], region_id: int) -> None:
    for row in rows:
        parent = row.values.get("parent", "")
        if not parent:
            continue
        if parent.lower() == row.values.get("code", "").lower():
            row.errors.append("上级代码不能是本单位")
        elif parent.lower() not in seen:
            existing = _find_unit(parent, region_id)
            if existing is None:
                row.errors.append(f"上级代码“{parent}”既不在文件中，也不是本地区已有的单位")
            elif not existing.active:
                row.errors.append(f"上级单位“{existing.name}”已停用")


def _check_unit_row_loops(rows: list[ImportRow]) -> None:
    # A loop among the file's own rows (a → b → a) can never be written.
    parents = {r.values["code"].lower(): r.values.get("parent", "").lower() for r in rows if r.values.get("code")}
    for row in rows:
        code = row.values.get("code", "").lower()
        node, steps = parents.get(code), 0
        while node and node in parents and steps <= len(parents):
            if node == code:
                row.errors.append("上级关系形成了循环")
                break
            node, steps = parents.get(node), steps + 1


def _check_user_rows(rows: list[ImportRow], region: Region, actor) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        v = row.values
        username = v.get("username", "")
        roles, unknown = [], []
        for word in _SPLIT_RE.split(v.get("roles", "")):
            if not word:
                continue
            role = _ROLE_BY_LABEL.get(word, word if word in ROLES else None)
            if role is None:
                unknown.append(word)
            elif role not in roles:
                roles.append(role)
        v["roles"] = roles
        unit = None
        unit_code = v.get("unit", "")
        if unit_code:
            # Only this region's units: a code that exists elsewhere only is not a unit here.
            unit = _find_unit(unit_code, region.id)
            if unit is None:
                row.errors.append(f"单位代码“{unit_code}”不存在于本地区（请先导入单位）")
        problems = _user_problems(username, v.get("name", ""), roles, unit, v.get("email", ""),
                                  v.get("phone", ""))
        problems += _role_problems(actor, region, set(), set(roles))
        if unit is None and unit_code:
            problems = [p for p in problems if "必须属于某个单位" not in p]
        if unknown:
            problems = [p for p in problems if p != "至少要有一个角色"]
            problems.append(f"无法识别的角色：{'、'.join(unknown)}（可选：{'、'.join(ROLE_LABELS.values())}）")
        row.errors.extend(problems)
        if username:
            if username.lower() in seen:
                row.errors.append(f"用户名“{username}”与第{seen[username.lower()]}行重复")
            elif _find_user(username):
                row.errors.append(f"用户名“{username}”已存在")
            seen.setdefault(username.lower(), row.line)


def apply_import(actor, preview: ImportPreview) -> dict:
    """Write a checked import. Returns the created codes/usernames and new one-time passwords.

    :raise DomainError: the preview has errors; nothing is written.
    """
    if not preview.ok:
        raise DomainError("导入文件有错误，未导入任何数据。请修改后重新上传。")
    region = db.session.get(Region, preview.region_id) if preview.region_id is not None else None
    if region is None or (actor is not None and actor.region_id != region.id):
        # A preview is checked against the importing admin's own region and written only there.
        raise PermissionDenied("导入文件是按其他地区检查的，未导入任何数据。")
    result = {"units": [], "users": [], "passwords": {}}
    if preview.kind == "units":
        by_code: dict[str, Unit] = {}
        pending = list(preview.rows)
        # Parents first: repeat until every row whose parent exists has been created.
        while pending:
            rest = []
            for row in pending:
                v = row.values
                parent_code = v.get("parent", "").lower()
                parent = None
                if parent_code:
                    parent = by_code.get(parent_code) or _find_unit(parent_code, region.id)
                    if parent is None:
                        rest.append(row)
                        continue
                unit = create_unit(actor, v["code"], v["name"], v["kind"], parent, region=region)
                by_code[unit.code.lower()] = unit
                result["units"].append(unit.code)
            if len(rest) == len(pending):  # pragma: no cover - loops are refused by the preview
                raise DomainError("上级关系形成了循环，未导入任何数据。")
            pending = rest
    else:
        for row in preview.rows:
            v = row.values
            unit = _find_unit(v["unit"], region.id) if v.get("unit") else None
            user, password = create_user(actor, v["username"], v["name"], v["roles"], unit,
                                         v.get("email"), v.get("phone"), region=region)
            result["users"].append(user.username)
            result["passwords"][user.username] = password
    record(actor, f"{preview.kind}.import", None, count=len(preview.rows), region_id=region.id)
    return result


def import_template(kind: str) -> bytes:
    """An XLSX file with the expected header row and one example row."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    if kind == "units":
        sheet.title = "单位"
        sheet.append(["代码", "名称", "类型", "上级代码"])
        sheet.append(["sfj", "区司法局", "政府部门", ""])
        sheet.append(["hxz", "某某镇", "乡镇", ""])
    else:
        sheet.title = "用户"
        sheet.append(["用户名", "姓名", "单位代码", "角色", "邮箱", "电话"])
        sheet.append(["sfj_ll", "张三", "sfj", "联络员", "zhangsan@example.gov.cn", "0737-1234567"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
