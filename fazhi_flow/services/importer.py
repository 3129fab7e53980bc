"""Cycle definition files: validate a YAML document completely, then write it in one transaction.

The schema is documented in docs/cycle-file.md. Every problem is reported with the key and position
(e.g. ``outline[1].children[0].lead``); if there is any, nothing is written.

A file belongs to one region (``cycle.region``, see importer_regions.py): its units, users and
assignments are looked up and created in that region only, so a file for one district can never change
another's. Every change is listed (``ImportResult.changes``); ``preview_cycle`` computes the list and
writes nothing.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime

import yaml
from sqlalchemy import select

from .. import policy
from ..errors import DomainError
from ..extensions import db
from ..figures.numbers import STORABLE, storable_number
from ..limits import column_length
from ..models import Assignment, Indicator, ReportCycle, Rule, Section, Unit, User
from ..models.indicator import INDICATOR_TYPES, ROLLUPS, IndicatorValue
from ..models.org import ROLES, UNIT_KINDS, Region
from .audit import record
from .importer_regions import apply_region, check_printed_name, resolve_region
from .users import password_problem
from ..workflow.states import REVIEW_MODE_LABELS

TOP_KEYS = {"cycle", "units", "users", "outline"}
CYCLE_KEYS = {"title", "year", "region", "due", "unit_head_review", "issuers", "issue_date",
              "reminder_policy", "share_approved_figures"}
UNIT_KEYS = {"code", "name", "kind", "parent"}
USER_KEYS = {"username", "name", "email", "phone", "unit", "roles", "password"}
NODE_KEYS = {"code", "title", "guidance", "word_limit", "run_in", "due", "lead", "support", "reviewers",
             "review_mode", "indicators", "rules", "children"}
INDICATOR_KEYS = {"code", "name", "unit", "type", "required", "min", "max", "guidance", "reported_by", "rollup"}
RULE_KEYS = {"expr", "severity", "message"}
CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
INDICATOR_CODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Path of the document itself in messages; its keys are named bare ("outline", not "文件.outline").
TOP = "文件"


# A cycle file nests a few levels (outline → children → indicators); far deeper nesting is an attack on
# the parser's recursion. Anchors and aliases are never needed and allow "billion laughs" documents.
MAX_DEPTH = 40


def _value_label(key, value):
    """The Chinese name of a coded value (审核方式 any → 任一审核人通过); lists and others as they are."""
    labels = VALUE_LABELS.get(key)
    return labels.get(value, value) if labels and isinstance(value, str) else value


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves an impossible date (2026-02-30) as text, so the checker can name its key;
    refuses aliases, deep nesting, NUL characters and numbers no column can hold."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            self._refuse("不支持 YAML 锚点和别名（& 与 *），请直接写出内容")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"嵌套层次过深（超过{MAX_DEPTH}层）")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str, node=None):
        mark = node.start_mark if node is not None else self.peek_event().start_mark
        raise yaml.composer.ComposerError(None, None, problem, mark)


def _timestamp(loader, node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


def _int(loader, node):
    digits = re.sub(r"[^0-9a-fA-F]", "", node.value)
    if len(digits) > 19:  # beyond BIGINT; int() of thousands of digits even raises ValueError
        loader._refuse("数字位数过多", node)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _float(loader, node):
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if value != value or value in (float("inf"), float("-inf")):
        loader._refuse(f"“{node.value[:20]}”不是有效的数字", node)
    return value


def _str(loader, node):
    if "\x00" in node.value:  # PostgreSQL cannot store NUL in text
        loader._refuse("文本中含有空字符（NUL）", node)
    return yaml.SafeLoader.construct_yaml_str(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:float", _float)
_Loader.add_constructor("tag:yaml.org,2002:str", _str)


def _cycle_extensions() -> dict:
    """Cycle keys owned by other features: key -> object with validate(value, errors, path) and
    apply(cycle, value)."""
    from ..figures.visibility import ShareApprovedFiguresKey
    from ..reminders.cycle_file import ReminderPolicyKey

    return {"reminder_policy": ReminderPolicyKey, "share_approved_figures": ShareApprovedFiguresKey}


class CycleFileError(DomainError):
    """The file was refused; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]):
        super().__init__("年度报告定义文件有误：\n" + "\n".join(errors))
        self.errors = errors


# What a file can change, in the order changes are listed, with their Chinese names.
KIND_LABELS = {"regions": "地区", "cycles": "年度报告", "units": "单位", "users": "用户", "sections": "章节",
               "assignments": "任务分配", "indicators": "统计指标", "rules": "校验规则"}
ACTION_LABELS = {"created": "新建", "updated": "修改", "removed": "删除"}
FIELD_LABELS = {
    "title": "标题", "year": "年度", "region": "地区名称", "due": "截止日期", "unit_head_review": "单位负责人审核",
    "issuers": "落款", "issue_date": "成文日期", "name": "名称", "kind": "类型", "parent": "上级", "level": "级别",
    "sort_order": "顺序", "email": "电子邮箱", "phone": "电话", "unit": "单位", "roles": "角色",
    "guidance": "填报说明", "word_limit": "字数上限", "run_in": "标题接排", "position": "顺序", "reviewers": "审核人",
    "review_mode": "审核方式",
    "measure": "计量单位", "type": "类型", "required": "必填", "minimum": "最小值", "maximum": "最大值",
    "reported_by": "填报方式", "rollup": "汇总方式", "section": "所属章节", "role": "承办方式", "rules": "规则",
    "share_approved_figures": "联络员可查看已通过的统计数据",
}
SHOWN_CHARS = 60  # a long guidance text is cut in the list of changes

# Fields whose stored values are codes, shown by their Chinese names.
VALUE_LABELS = {"review_mode": REVIEW_MODE_LABELS}


def _shown(value) -> str:
    if value is None or value == "" or value == []:
        return "（空）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, tuple)):
        return "、".join(str(v) for v in value)
    text = " ".join(str(value).split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


@dataclass
class Change:
    """One object the import creates, updates or removes; ``fields`` are (field, old, new)."""

    kind: str
    action: str
    label: str
    fields: list = field(default_factory=list)

    @property
    def action_label(self) -> str:
        return ACTION_LABELS[self.action]

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    def details(self) -> list[str]:
        """A created object's settings (字段 值), an updated one's changes (字段 旧 → 新)."""
        if self.action == "created":
            return [f"{FIELD_LABELS.get(k, k)} {_shown(new)}" for k, _old, new in self.fields
                    if new not in (None, "", [])]
        if self.action == "updated":
            return [f"{FIELD_LABELS.get(k, k)} {_shown(_value_label(k, old))} → "
                    f"{_shown(_value_label(k, new))}" for k, old, new in self.fields]
        return []

    def line(self) -> str:
        head = f"{self.action_label}{self.kind_label} {self.label}"
        details = self.details()
        if not details:
            return head
        return head + (f"（{'；'.join(details)}）" if self.action == "created" else "：" + "；".join(details))


def _counts() -> dict:
    return {kind: 0 for kind in KIND_LABELS}


@dataclass
class ImportResult:
    cycle: ReportCycle | None = None
    created: dict = field(default_factory=_counts)
    updated: dict = field(default_factory=_counts)
    removed: dict = field(default_factory=_counts)
    changes: list = field(default_factory=list)  # Change, in the order they were made
    passwords: dict = field(default_factory=dict)  # username -> one-time password of new users
    warnings: list = field(default_factory=list)  # material nobody could move (services.stuck), as sentences
    title: str = ""  # the cycle's title and region, kept as text for a preview (rolled back)
    region_label: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def note(self, kind: str, action: str, label: str, fields=None) -> None:
        getattr(self, action)[kind] += 1
        self.changes.append(Change(kind, action, label, list(fields or [])))

    def lines(self) -> list[str]:
        """Every change, one sentence each: 新建单位 gaj 赫山公安分局（类型 政府部门）…"""
        return [change.line() for change in self.changes]

    def summary(self) -> str:
        """新建：单位2个、用户3个；修改：章节1个；删除：任务分配1个 (empty when nothing changes)."""
        parts = []
        for action in ("created", "updated", "removed"):
            counts = getattr(self, action)
            listed = "、".join(f"{KIND_LABELS[k]}{counts[k]}个" for k in KIND_LABELS if counts[k])
            if listed:
                parts.append(f"{ACTION_LABELS[action]}：{listed}")
        return "；".join(parts)


# ------------------------------------------------------------------ validation


class _Checker:
    def __init__(self):
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        entry = f"{path}：{message}"
        if entry not in self.errors:  # a required key is checked by mapping() and again by its reader
            self.errors.append(entry)

    def mapping(self, value, path, allowed, required=()):
        if not isinstance(value, dict):
            self.err(path, "应为键值对（映射）")
            return False
        prefix = "" if path == TOP else f"{path}."
        for key in value:
            if key not in allowed:
                self.err(f"{prefix}{key}", f"未知的键“{key}”，可用的键：{', '.join(sorted(allowed))}")
        for key in required:
            if value.get(key) in (None, ""):
                self.err(f"{prefix}{key}", "必填")
        return True

    def text(self, value, path, required=False, max_len=None):
        # max_len: column_length(Model.attr), so a file cannot hold what the column refuses.
        if value is None:
            if required:
                self.err(path, "必填")
            return None
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.err(path, "应为文本")
            return None
        value = str(value).strip()
        if required and not value:
            self.err(path, "必填")
        if max_len is not None and len(value) > max_len:
            self.err(path, f"过长（{len(value)}字，最多{max_len}字）")
        return value

    def date(self, value, path):
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.err(path, f"日期“{value}”无效，应写成 2025-01-10 的格式")
            return None

    def boolean(self, value, path, default=False):
        if value is None:
            return default
        if not isinstance(value, bool):
            self.err(path, "应为 true 或 false")
            return default
        return value

    def integer(self, value, path, minimum=None, maximum=None):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"“{value}”应为整数")
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.err(path, f"{value} 超出范围（{minimum}–{maximum}）")
            return None
        return value

    def number(self, value, path):
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            return storable_number(value)
        except ValueError:
            # The key is in the path; the bounds are those of the value columns (NaN would break every save).
            self.err(path, f"“{str(value)[:40]}”应为{STORABLE}")
            return None

    def str_list(self, value, path):
        if value is None:
            return []
        if isinstance(value, str):
            return [value.strip()] if value.strip() else []
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            self.err(path, "应为文本或文本列表")
            return []
        return [str(v).strip() for v in value]


def parse_document(text: str) -> dict:
    """Parse YAML text; a syntax error becomes a CycleFileError naming the line."""
    if "\x00" in text:
        raise CycleFileError(["文件：含有空字符（NUL），不是纯文本的 YAML 文件，请检查后重新保存"])
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第{mark.line + 1}行第{mark.column + 1}列" if mark else "文件"
        raise CycleFileError([f"{where}：YAML 格式错误（{getattr(exc, 'problem', exc)}）"]) from None
    if not isinstance(data, dict):
        raise CycleFileError(["文件：顶层应为包含 cycle、units、users、outline 的映射"])
    return data


def validate(data: dict, actor=None, region: Region | None = None) -> dict:
    """Check the whole document for ``actor`` (None: the command line's operator), in ``region`` when
    the caller fixes it; return a normalised plan or raise CycleFileError with every problem."""
    c = _Checker()
    c.mapping(data, TOP, TOP_KEYS, required=("cycle",))
    raw_cycle = data.get("cycle") or {}
    plan = {"cycle": _validate_cycle(c, raw_cycle), "units": [], "users": [], "outline": []}
    known = len(c.errors)
    target = plan["region"] = resolve_region(c, raw_cycle.get("region") if isinstance(raw_cycle, dict) else None,
                                             actor, region)
    if len(c.errors) > known:  # units, users and reviewers are looked up in the region: not known yet
        raise CycleFileError(c.errors)
    if target.printed:
        plan["cycle"]["region"] = target.printed
    check_printed_name(c, target, plan["cycle"].get("year"))
    scope = _Scope(target.region_id)

    plan["units"] = _validate_units(c, _list_of(c, data, "units"))
    known_units = {unit["code"] for unit in plan["units"]} | scope.unit_codes
    _check_unit_parents(c, plan["units"], known_units, scope)
    plan["users"] = _validate_users(c, _list_of(c, data, "users"), known_units, scope)
    known_users = {user["username"] for user in plan["users"]} | scope.usernames

    outline = _OutlineChecker(c, known_units, known_users, scope)
    plan["outline"] = outline.walk(data.get("outline") or [], "outline", "")
    if not plan["outline"] and not c.errors:
        c.err("outline", "至少需要一个章节")
    outline.check_rules()

    if c.errors:
        raise CycleFileError(c.errors)
    return plan


class _Scope:
    """What the target region holds (nothing when the file creates the region), and for messages,
    which unit codes and usernames exist in other regions."""

    def __init__(self, region_id: int | None):
        self.region_id = region_id
        self.unit_codes: set[str] = set()
        self.usernames: set[str] = set()
        if region_id is not None:
            self.unit_codes = set(db.session.scalars(select(Unit.code).where(Unit.region_id == region_id)))
            self.usernames = set(db.session.scalars(select(User.username).where(User.region_id == region_id)))

    def unknown_unit(self, code) -> str:
        elsewhere = db.session.scalar(select(Unit.id).where(Unit.code == code).limit(1))
        if elsewhere is not None:
            return f"本地区没有单位代码“{code}”（其他地区的同代码单位不能引用；要在本地区新建，请在 units 中列出）"
        return f"未知的单位代码“{code}”"

    def foreign_user(self, username) -> bool:
        """The username is taken by a person of another region (usernames are unique system-wide)."""
        if username in self.usernames:
            return False
        return db.session.scalar(select(User.id).where(User.username == username).limit(1)) is not None


def _list_of(c: _Checker, data: dict, key: str) -> list:
    raw = data.get(key) or []
    if not isinstance(raw, list):
        c.err(key, "应为列表")
        return []
    return raw


def _validate_cycle(c: _Checker, raw_cycle) -> dict:
    if not c.mapping(raw_cycle, "cycle", CYCLE_KEYS, required=("title", "year", "region")):
        return {}
    issuers = c.str_list(raw_cycle.get("issuers"), "cycle.issuers")
    cycle = {
        "title": c.text(raw_cycle.get("title"), "cycle.title", required=True, max_len=column_length(ReportCycle.title)),
        "year": c.integer(raw_cycle.get("year"), "cycle.year", 2000, 2100),
        "region": None,  # read by resolve_region: text, or a mapping defining the region
        "due": c.date(raw_cycle.get("due"), "cycle.due"),
        "unit_head_review": c.boolean(raw_cycle.get("unit_head_review"), "cycle.unit_head_review"),
        "issuers": "\n".join(issuers),
        "issue_date": c.date(raw_cycle.get("issue_date"), "cycle.issue_date"),
    }
    for key, extension in _cycle_extensions().items():
        if key in raw_cycle:
            extension.validate(raw_cycle[key], c.errors, f"cycle.{key}")
            cycle[key] = raw_cycle[key]
    return cycle


def _validate_units(c: _Checker, raw_units: list) -> list[dict]:
    units = []
    unit_codes: set[str] = set()
    for i, raw in enumerate(raw_units):
        path = f"units[{i}]"
        if not c.mapping(raw, path, UNIT_KEYS, required=("code", "name")):
            continue
        code = c.text(raw.get("code"), f"{path}.code", required=True, max_len=column_length(Unit.code))
        if code and not CODE_RE.match(code):
            c.err(f"{path}.code", f"单位代码“{code}”只能由字母、数字、下划线和连字符组成，并以字母开头")
        if code in unit_codes:
            c.err(f"{path}.code", f"单位代码“{code}”重复")
        unit_codes.add(code)
        kind = raw.get("kind") or "government"
        if kind not in UNIT_KINDS:
            c.err(f"{path}.kind", f"单位类型“{kind}”无效，可选：{', '.join(UNIT_KINDS)}")
        units.append({"code": code, "name": c.text(raw.get("name"), f"{path}.name", True, column_length(Unit.name)),
                      "kind": kind, "parent": c.text(raw.get("parent"), f"{path}.parent", max_len=column_length(Unit.code)) or None,
                      "path": path})
    return units


def _check_unit_parents(c: _Checker, units: list[dict], known_units: set, scope: _Scope) -> None:
    for unit in units:
        if unit["parent"] is not None and unit["parent"] not in known_units:
            c.err(f"{unit['path']}.parent", scope.unknown_unit(unit["parent"]))
        if unit["parent"] == unit["code"]:
            c.err(f"{unit['path']}.parent", "上级单位不能是自己")
    _check_parent_loops(c, units, scope.region_id)


def _validate_users(c: _Checker, raw_users: list, known_units: set, scope: _Scope) -> list[dict]:
    users = []
    usernames: set[str] = set()
    for i, raw in enumerate(raw_users):
        path = f"users[{i}]"
        if not c.mapping(raw, path, USER_KEYS, required=("username", "name", "roles")):
            continue
        username = c.text(raw.get("username"), f"{path}.username", True, column_length(User.username))
        if username in usernames:
            c.err(f"{path}.username", f"用户名“{username}”重复")
        elif username and scope.foreign_user(username):
            c.err(f"{path}.username", f"用户名“{username}”已被其他地区的用户使用（用户名在全系统唯一），请换一个")
        usernames.add(username)
        roles = c.str_list(raw.get("roles"), f"{path}.roles")
        for role in roles:
            if role not in ROLES:
                c.err(f"{path}.roles", f"角色“{role}”无效，可选：{', '.join(ROLES)}")
        unit = raw.get("unit")
        if unit is not None and unit not in known_units:
            c.err(f"{path}.unit", scope.unknown_unit(unit))
        if {"liaison", "unit_head"} & set(roles) and unit is None:
            c.err(f"{path}.unit", "联络员和单位负责人必须属于一个单位")
        email = c.text(raw.get("email"), f"{path}.email", max_len=column_length(User.email))
        if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
            c.err(f"{path}.email", f"电子邮箱“{email}”格式不正确")
        password = raw.get("password")
        if password is not None:
            problem = password_problem(password, username) if isinstance(password, str) else "密码应为文本"
            if problem:
                c.err(f"{path}.password", problem)
        users.append({"username": username, "name": c.text(raw.get("name"), f"{path}.name", True, column_length(User.name)),
                      "email": email, "phone": c.text(raw.get("phone"), f"{path}.phone", max_len=column_length(User.phone)),
                      "unit": unit, "roles": roles, "password": password, "path": path})
    return users


class _OutlineChecker:
    """Walks the outline: sections with their units, reviewers, indicators and rules. Codes must be
    unique across the whole file, and rule expressions are checked once every indicator is known."""

    def __init__(self, c: _Checker, known_units: set, known_users: set, scope: _Scope):
        self.c = c
        self.known_units = known_units
        self.known_users = known_users
        self.scope = scope
        self.section_codes: set[str] = set()
        self.indicator_codes: dict[str, str] = {}
        self.rules_to_check: list[tuple[str, str]] = []
        # Whether the sections being walked have reviewers named on them or above (会签 needs some).
        self.named_above = [False]

    def walk(self, nodes, path: str, prefix: str) -> list[dict]:
        if not isinstance(nodes, list):
            self.c.err(path, "应为列表")
            return []
        result = []
        for i, raw in enumerate(nodes):
            npath = f"{path}[{i}]"
            if self.c.mapping(raw, npath, NODE_KEYS):
                # A parent may carry its own introductory material (lead/support beside children).
                result.append(self._node(raw, npath, prefix, i))
        return result

    def _node(self, raw: dict, npath: str, prefix: str, i: int) -> dict:
        c = self.c
        code = c.text(raw.get("code"), f"{npath}.code", max_len=column_length(Section.code)) or f"{prefix}{i + 1}"
        if code in self.section_codes:
            c.err(f"{npath}.code", f"章节代码“{code}”重复")
        self.section_codes.add(code)
        lead, support, reviewers = self._people(raw, npath)
        indicators = [indicator for j, ind in enumerate(raw.get("indicators") or [])
                      if (indicator := self._indicator(ind, f"{npath}.indicators[{j}]")) is not None]
        rules = [rule for j, raw_rule in enumerate(raw.get("rules") or [])
                 if (rule := self._rule(raw_rule, f"{npath}.rules[{j}]")) is not None]
        title = c.text(raw.get("title"), f"{npath}.title", max_len=column_length(Section.title)) or None
        review_mode = self._review_mode(raw.get("review_mode"), f"{npath}.review_mode", bool(reviewers))
        self.named_above.append(self.named_above[-1] or bool(reviewers))
        children = self.walk(raw.get("children") or [], f"{npath}.children", f"{code}.")
        self.named_above.pop()
        return {
            "code": code, "title": title, "path": npath,
            "guidance": c.text(raw.get("guidance"), f"{npath}.guidance", max_len=column_length(Section.guidance)),
            "word_limit": c.integer(raw.get("word_limit"), f"{npath}.word_limit", 1, 100000),
            "run_in": c.boolean(raw.get("run_in"), f"{npath}.run_in"),
            "due": c.date(raw.get("due"), f"{npath}.due"),
            "lead": lead, "support": support, "reviewers": reviewers, "review_mode": review_mode,
            "indicators": indicators, "rules": rules, "children": children,
        }

    def _review_mode(self, value, path: str, named_here: bool) -> str:
        """any (任一审核人通过, the default) or all (全部审核人会签, needing reviewers named here or above)."""
        if value is None:
            return "any"
        if value not in ("any", "all"):
            self.c.err(path, f"“{str(value)[:20]}”应为 any（任一审核人通过）或 all（全部审核人会签）")
            return "any"
        if value == "all" and not (named_here or self.named_above[-1]):
            self.c.err(path, "设为 all（全部审核人会签）的章节须在本章节或上级章节用 reviewers 指定审核人")
        return value

    def _people(self, raw: dict, npath: str) -> tuple[list, list, list]:
        c = self.c
        lead = c.str_list(raw.get("lead"), f"{npath}.lead")
        support = c.str_list(raw.get("support"), f"{npath}.support")
        for key, codes in (("lead", lead), ("support", support)):
            for unit in codes:
                if unit not in self.known_units:
                    c.err(f"{npath}.{key}", self.scope.unknown_unit(unit))
        for unit in set(lead) & set(support):
            c.err(f"{npath}.support", f"单位“{unit}”不能同时是牵头和配合单位")
        reviewers = c.str_list(raw.get("reviewers"), f"{npath}.reviewers")
        for username in reviewers:
            if username not in self.known_users:
                c.err(f"{npath}.reviewers", f"用户“{username}”属于其他地区，不能审核本地区的材料"
                      if self.scope.foreign_user(username) else f"未知的用户名“{username}”")
        return lead, support, reviewers

    def _indicator(self, ind, ipath: str) -> dict | None:
        c = self.c
        if not c.mapping(ind, ipath, INDICATOR_KEYS, required=("code", "name")):
            return None
        icode = c.text(ind.get("code"), f"{ipath}.code", True, column_length(Indicator.code))
        if icode and not INDICATOR_CODE_RE.match(icode):
            c.err(f"{ipath}.code", f"指标代码“{icode}”只能由字母、数字和下划线组成")
        if icode in self.indicator_codes:
            c.err(f"{ipath}.code", f"指标代码“{icode}”重复（已在 {self.indicator_codes[icode]} 定义）")
        self.indicator_codes[icode] = ipath
        itype = ind.get("type") or "integer"
        if itype not in INDICATOR_TYPES:
            c.err(f"{ipath}.type", f"指标类型“{itype}”无效，可选：{', '.join(INDICATOR_TYPES)}")
        reported_by = ind.get("reported_by") or "all"
        if reported_by not in ("all", "lead"):
            c.err(f"{ipath}.reported_by", f"“{reported_by}”无效，可选：all（每个承办单位填报）、lead（仅牵头单位填报）")
        # A roll-up (sum/avg/count/min/max) is taken from the regions below; absent: units enter it.
        rollup = ind.get("rollup")
        if rollup is not None and (not isinstance(rollup, str) or rollup not in ROLLUPS):
            c.err(f"{ipath}.rollup", f"“{rollup}”无效，可选：{'、'.join(ROLLUPS)}（从下级地区汇总），不写则由单位填报")
        low, high = c.number(ind.get("min"), f"{ipath}.min"), c.number(ind.get("max"), f"{ipath}.max")
        if low is not None and high is not None and low > high:
            c.err(f"{ipath}.max", "最大值不能小于最小值")
        return {
            "code": icode, "name": c.text(ind.get("name"), f"{ipath}.name", True, column_length(Indicator.name)),
            "measure": c.text(ind.get("unit"), f"{ipath}.unit", max_len=column_length(Indicator.measure)) or "件",
            "type": itype, "required": c.boolean(ind.get("required"), f"{ipath}.required"),
            "minimum": low, "maximum": high,
            "guidance": c.text(ind.get("guidance"), f"{ipath}.guidance", max_len=column_length(Indicator.guidance)),
            "reported_by": reported_by, "rollup": rollup if isinstance(rollup, str) and rollup in ROLLUPS else None,
        }

    def _rule(self, rule, rpath: str) -> dict | None:
        c = self.c
        if not c.mapping(rule, rpath, RULE_KEYS, required=("expr",)):
            return None
        severity = rule.get("severity") or "error"
        if severity not in ("error", "warning"):
            c.err(f"{rpath}.severity", f"严重程度“{severity}”无效，可选：error、warning")
        expr = c.text(rule.get("expr"), f"{rpath}.expr", True, column_length(Rule.expression))
        self.rules_to_check.append((rpath, expr))
        return {"expression": expr, "severity": severity,
                "message": c.text(rule.get("message"), f"{rpath}.message", max_len=column_length(Rule.message))}

    def check_rules(self) -> None:
        for rpath, expr in self.rules_to_check:
            if expr:
                for message in _validate_expression(expr, set(self.indicator_codes)):
                    self.c.err(f"{rpath}.expr", message)


def _validate_expression(expr: str, codes: set[str]) -> list[str]:
    try:
        from ..figures.expr import validate as validate_expr
    except ImportError:  # the rule language is optional for the core
        return []
    return validate_expr(expr, codes)


# ------------------------------------------------------------------ writing


def import_cycle(text: str, actor=None, strict: bool = False, region: Region | None = None) -> ImportResult:
    """Validate and write a cycle file; flush only. Re-importing the same file changes nothing.

    ``actor`` None is the command line's operator (may create regions); ``region`` is the region the
    caller requires (the CLI's ``--region``). ``result.changes`` lists every change made;
    ``result.warnings`` names every section whose material nobody could submit or approve as written;
    with ``strict`` those warnings refuse the file too.

    :raise CycleFileError: the file has problems; the caller must roll back (nothing is committed).
    """
    from .stuck import stuck_messages

    plan = validate(parse_document(text), actor, region)
    with db.session.no_autoflush:
        result = _apply(plan, actor)
    db.session.flush()
    result.warnings = stuck_messages(result.cycle)
    result.title, result.region_label = result.cycle.title, f"{result.cycle.owner.name}（{result.cycle.owner.code}）"
    if strict and result.warnings:
        raise CycleFileError(["（--strict）" + w for w in result.warnings])
    if result.changed:  # re-importing an unchanged file leaves no trace
        # region_id files the row in the region's audit trail also when no person imported (the CLI).
        record(actor, "cycle.import", f"cycle:{result.cycle.id}", created=_nonzero(result.created),
               updated=_nonzero(result.updated), removed=_nonzero(result.removed),
               region_id=result.cycle.region_id)
    return result


def preview_cycle(text: str, actor=None, strict: bool = False, region: Region | None = None) -> ImportResult:
    """What ``import_cycle`` would change, computed by the same code and then rolled back to a
    savepoint: nothing is written. ``result.cycle`` is not usable afterwards; ``title``,
    ``region_label`` and ``changes`` are plain text.

    :raise CycleFileError: the file has problems.
    """
    savepoint = db.session.begin_nested()
    try:
        result = import_cycle(text, actor, strict=strict, region=region)
    finally:
        savepoint.rollback()
    result.cycle = None
    result.passwords = {name: "" for name in result.passwords}  # never shown: the real import makes new ones
    return result


def _nonzero(counts: dict) -> dict:
    return {k: v for k, v in counts.items() if v}


def _diff(obj, values: dict) -> list[tuple]:
    """Set ``values`` on ``obj``; the (field, old, new) that changed."""
    changed = []
    for key, value in values.items():
        old = getattr(obj, key)
        if old != value:
            setattr(obj, key, value)
            changed.append((key, old, value))
    return changed


def _set(obj, values: dict) -> bool:
    return bool(_diff(obj, values))


def _apply(plan: dict, actor) -> ImportResult:
    extensions = _cycle_extensions()
    result = ImportResult()
    region = apply_region(plan["region"], actor, result.note)
    _apply_cycle({k: v for k, v in plan["cycle"].items() if k not in extensions}, region, result)
    cycle = result.cycle
    units = _apply_units(plan["units"], region, result)
    users = _apply_users(plan["users"], units, region, result, actor)
    _OutlineWriter(cycle, units, users, result).write_all(plan["outline"])
    settings = []
    for key, extension in extensions.items():
        if key in plan["cycle"]:
            before = _extension_state(cycle, key)
            extension.apply(cycle, plan["cycle"][key])
            db.session.flush()  # a new settings row is read back below
            after = _extension_state(cycle, key)
            settings += [(name, before.get(name), value) for name, value in after.items() if before.get(name) != value]
    if settings:
        _note_cycle_settings(result, settings)
    if cycle.state == "collecting":
        from .cycles import ensure_contributions

        ensure_contributions(cycle)
    return result


def _note_cycle_settings(result: ImportResult, settings: list) -> None:
    """Settings owned by other features join the cycle's own entry (one line per cycle)."""
    entry = next((c for c in result.changes if c.kind == "cycles"), None)
    if entry is None:
        result.note("cycles", "updated", result.cycle.title, settings)
    elif entry.action == "created":
        entry.fields += [(name, None, new) for name, _old, new in settings]
    else:
        entry.fields += settings


def _extension_state(cycle: ReportCycle, key: str) -> dict:
    """The settings a cycle key owned by another feature sets, to list what it changes."""
    if key == "reminder_policy":
        from ..reminders.settings import DEFAULT_POLICY, policy_for

        policy = policy_for(cycle)
        return {f"催报设置 {name}": getattr(policy, name) for name in DEFAULT_POLICY}
    return {key: getattr(cycle, key, None)}


def _apply_cycle(cinfo: dict, region: Region, result: ImportResult) -> None:
    # A cycle is the region's report of the year under its printed name: a database from before
    # regions may hold several districts' reports of one year in its one region, told apart by name.
    cycle = db.session.scalar(select(ReportCycle).where(
        ReportCycle.region_id == region.id, ReportCycle.year == cinfo["year"],
        ReportCycle.region == cinfo["region"]))
    if cycle is None:
        cycle = ReportCycle(state="setup", owner=region, **cinfo)
        db.session.add(cycle)
        db.session.flush()
        result.cycle = cycle
        result.note("cycles", "created", cycle.title, [(k, None, v) for k, v in cinfo.items() if k != "title"])
        return
    if cycle.state in ("signed", "published", "correcting"):
        raise CycleFileError([f"cycle：年度报告当前为“{cycle.state_label}”，不能再修改"])
    result.cycle = cycle
    label = cycle.title
    changed = _diff(cycle, cinfo)
    if changed:
        result.note("cycles", "updated", label, changed)


def _apply_units(planned: list[dict], region: Region, result: ImportResult) -> dict[str, Unit]:
    """Create or update the file's units, then their parents; every unit by code, in ``region`` only."""
    units = {u.code: u for u in db.session.scalars(select(Unit).where(Unit.region_id == region.id))} \
        if region.id else {}
    changes: dict[str, list] = {}
    labels = {code: f"{unit.code} {unit.name}" for code, unit in units.items()}
    for i, info in enumerate(planned):
        unit = units.get(info["code"])
        values = {"name": info["name"], "kind": info["kind"], "sort_order": i}
        if unit is None:
            unit = Unit(code=info["code"], region=region, **values)
            db.session.add(unit)
            units[info["code"]] = unit
            changes[info["code"]] = None
        else:
            changes[info["code"]] = _diff(unit, values)
    for info in planned:
        unit = units[info["code"]]
        parent = units[info["parent"]] if info["parent"] else None
        if unit.parent is not parent:
            if changes[info["code"]] is not None:
                changes[info["code"]].append(("parent", _code(unit.parent), _code(parent)))
            unit.parent = parent
    for info in planned:
        unit, changed = units[info["code"]], changes[info["code"]]
        label = labels.get(unit.code) or f"{unit.code} {unit.name}"
        if changed is None:
            result.note("units", "created", label, [("kind", None, UNIT_KINDS[unit.kind]),
                                                    ("parent", None, _code(unit.parent))])
        elif changed:
            result.note("units", "updated", label, [(k, UNIT_KINDS.get(o, o) if k == "kind" else o,
                                                     UNIT_KINDS.get(n, n) if k == "kind" else n)
                                                    for k, o, n in changed])
    db.session.flush()
    _check_unit_cycles(units.values())
    return units


def _code(obj) -> str | None:
    return obj.code if obj is not None else None


def _grant_problems(actor, region: Region, user: User | None, info: dict) -> list[str]:
    """A file grants roles as the person importing it could on the users page: no 系统管理员 from a
    region admin, no 督导 without regions below, no change to an account the actor does not manage."""
    from .users import _role_problems

    if user is not None and actor is not None and not policy.can(actor, "user.manage", user):
        return [f"{info['path']}.username：您不能修改账号“{user.username}”"]
    old = user.roles if user is not None else set()
    return [f"{info['path']}.roles：{p}" for p in _role_problems(actor, region, old, set(info["roles"]))]


def _apply_users(planned: list[dict], units: dict[str, Unit], region: Region,
                 result: ImportResult, actor=None) -> dict[str, User]:
    """Create or update the file's users; every user by username, in ``region`` only (validation
    refused usernames of other regions)."""
    users = {u.username: u for u in db.session.scalars(select(User).where(User.region_id == region.id))} \
        if region.id else {}
    problems = [p for info in planned for p in _grant_problems(actor, region, users.get(info["username"]), info)]
    if problems:
        raise CycleFileError(problems)
    for info in planned:
        user = users.get(info["username"])
        unit = units[info["unit"]] if info["unit"] else None
        values = {"name": info["name"], "email": info["email"], "phone": info["phone"]}
        if user is None:
            user = User(username=info["username"], region=region, unit=unit, **values)
            if info["password"]:
                user.set_password(info["password"])
                user.must_change_password = True  # chosen by the file's author, known to others
            else:
                one_time = secrets.token_urlsafe(9)
                user.set_password(one_time)
                user.must_change_password = True
                result.passwords[user.username] = one_time
            user.set_roles(info["roles"])
            db.session.add(user)
            users[user.username] = user
            result.note("users", "created", f"{user.username} {user.name}",
                        [("unit", None, info["unit"]), ("roles", None, _role_names(info["roles"]))])
            continue
        label = f"{user.username} {user.name}"
        changed = _diff(user, values)
        if user.unit is not unit:
            changed.append(("unit", _code(user.unit), _code(unit)))
            user.unit = unit
        if user.roles != set(info["roles"]):
            changed.append(("roles", _role_names(user.roles), _role_names(info["roles"])))
            user.set_roles(info["roles"])
        if changed:
            result.note("users", "updated", label, changed)
    db.session.flush()
    return users


def _role_names(roles) -> list[str]:
    from ..models.org import ROLE_LABELS

    return [ROLE_LABELS[r] for r in ROLES if r in set(roles)]


class _OutlineWriter:
    """Writes the outline's sections, assignments, indicators and rules; removes what the file dropped."""

    def __init__(self, cycle: ReportCycle, units: dict, users: dict, result: ImportResult):
        self.cycle, self.units, self.users, self.result = cycle, units, users, result
        self.existing = {s.code: s for s in db.session.scalars(select(Section).where(Section.cycle_id == cycle.id))}
        self.seen: set[str] = set()
        self.indicator_rows = {i.code: i for i in db.session.scalars(
            select(Indicator).where(Indicator.cycle_id == cycle.id))}
        self.seen_indicators: set[str] = set()
        self.new_sections: set[int] = set()
        self.section_changes: dict[int, Change] = {}
        self.labels: dict[int, str] = {}  # sections as they were, to name them in the list of changes

    def write_all(self, outline: list[dict]) -> None:
        self.write(outline, None)
        node_paths = {}

        def collect(nodes):
            for node in nodes:
                node_paths[node["code"]] = node["path"]
                collect(node["children"])

        collect(outline)
        for code, row in self.indicator_rows.items():
            if code not in self.seen_indicators:
                _remove_indicator(row, node_paths, self.result)
        for code, section in self.existing.items():
            if code not in self.seen:
                _remove_section(section, self.result)
        db.session.flush()

    def write(self, nodes: list[dict], parent) -> None:
        for position, node in enumerate(nodes):
            section = self._section(node, parent, position)
            self.seen.add(node["code"])
            wanted_reviewers = [self.users.get(name) or self._reviewer(name) for name in node["reviewers"]]
            if [r.id for r in section.reviewers] != [r.id for r in wanted_reviewers]:
                self._note_section(section, ("reviewers", [r.username for r in section.reviewers],
                                             [r.username for r in wanted_reviewers]))
                section.reviewers = wanted_reviewers
            db.session.flush()
            _sync_assignments(section, node, self.units, self.result)
            self._indicators(section, node["indicators"])
            self._rules(section, node["rules"])
            self.write(node["children"], section)

    def _reviewer(self, username: str) -> User:
        # A reviewer of the region the file does not list (validation checked the region).
        user = db.session.scalar(select(User).where(User.username == username,
                                                    User.region_id == self.cycle.region_id))
        self.users[username] = user
        return user

    def _note_section(self, section: Section, *changed) -> None:
        """Fold a section's changes into one entry (fields, then reviewers are found separately)."""
        if section.id is None or section.id in self.new_sections:
            return
        entry = self.section_changes.get(section.id)
        if entry is None:
            label = self.labels.get(section.id) or _section_label(section)
            entry = self.section_changes[section.id] = Change("sections", "updated", label)
            self.result.updated["sections"] += 1
            self.result.changes.append(entry)
        entry.fields.extend(changed)

    def _section(self, node: dict, parent, position: int) -> Section:
        section = self.existing.get(node["code"])
        values = {"title": node["title"], "guidance": node["guidance"], "word_limit": node["word_limit"],
                  "run_in": node["run_in"], "due": node["due"], "position": position,
                  "review_mode": node["review_mode"]}
        if section is None:
            section = Section(cycle_id=self.cycle.id, code=node["code"], parent=parent, **values)
            db.session.add(section)
            db.session.flush()
            self.new_sections.add(section.id)
            self.existing[node["code"]] = section
            self.result.note("sections", "created", _section_label(section),
                             [("parent", None, _code(parent)), ("due", None, node["due"])])
        else:
            self.labels.setdefault(section.id, _section_label(section))
            changed = _diff(section, values)
            if section.parent is not parent:
                changed.append(("parent", _code(section.parent), _code(parent)))
                section.parent = parent
            if changed:
                self._note_section(section, *changed)
        return section

    def _indicators(self, section: Section, planned: list[dict]) -> None:
        for k, info in enumerate(planned):
            self.seen_indicators.add(info["code"])
            row = self.indicator_rows.get(info["code"])
            values = {k2: v for k2, v in info.items() if k2 != "code"} | {"section_id": section.id, "position": k}
            if row is None:
                row = Indicator(cycle_id=self.cycle.id, code=info["code"], **values)
                db.session.add(row)
                self.indicator_rows[info["code"]] = row
                self.result.note("indicators", "created", f"{row.code} {row.name}",
                                 [("section", None, section.code), ("measure", None, row.measure)])
                continue
            old_section, label = self.sections_by_id().get(row.section_id), f"{row.code} {row.name}"
            changed = [(k, o, n) if k != "section_id" else ("section", _code(old_section), section.code)
                       for k, o, n in _diff(row, values)]
            if changed:
                self.result.note("indicators", "updated", label, changed)

    def sections_by_id(self) -> dict:
        return {s.id: s for s in self.existing.values()}

    def _rules(self, section: Section, planned: list[dict]) -> None:
        old_rules = [(r.expression, r.severity, r.message) for r in db.session.scalars(
            select(Rule).where(Rule.section_id == section.id).order_by(Rule.position))]
        new_rules = [(r["expression"], r["severity"], r["message"]) for r in planned]
        if old_rules == new_rules:
            return
        label = self.labels.get(section.id) or _section_label(section)
        if section.id in self.new_sections:
            self.result.note("rules", "created", label, [("rules", None, [r[0] for r in new_rules])])
        else:
            self.result.note("rules", "updated", label,
                             [("rules", [r[0] for r in old_rules], [r[0] for r in new_rules])])
        for rule in db.session.scalars(select(Rule).where(Rule.section_id == section.id)):
            db.session.delete(rule)
        for k, (expression, severity, message) in enumerate(new_rules):
            db.session.add(Rule(cycle_id=self.cycle.id, section_id=section.id, expression=expression,
                                severity=severity, message=message, position=k))


def _check_unit_cycles(units) -> None:
    for unit in units:
        seen, node = set(), unit
        while node is not None:
            if node.id in seen:
                raise CycleFileError([f"units：单位“{unit.code}”的上级关系形成了循环"])
            seen.add(node.id)
            node = node.parent


def _check_parent_loops(c: _Checker, planned: list[dict], region_id: int | None) -> None:
    """Refuse units whose parents would form a loop, counting the stored parents of the region's units
    the file does not list (the unit of work cannot even flush such a tree)."""
    rows = db.session.execute(select(Unit.id, Unit.code, Unit.parent_id).where(Unit.region_id == region_id)).all() \
        if region_id else []
    code_of = {uid: code for uid, code, _ in rows}
    parents = {code: code_of.get(parent_id) for _, code, parent_id in rows}
    parents.update({u["code"]: u["parent"] for u in planned if u["code"]})
    reported: set[str] = set()
    for unit in planned:
        chain, node = [unit["code"]], unit["parent"]
        while node is not None and node not in chain and node in parents:
            chain.append(node)
            node = parents[node]
        if node is not None and node == unit["code"] and not reported & set(chain):
            reported.update(chain)
            c.err(f"{unit['path']}.parent", "上级单位形成了循环：" + " → ".join(chain + [node]))


def _remove_indicator(indicator, node_paths: dict, result) -> None:
    """Delete an indicator the file no longer lists, unless a unit has already entered a value for it."""
    has_value = db.session.scalar(select(IndicatorValue.id).where(
        IndicatorValue.indicator_id == indicator.id, IndicatorValue.value.is_not(None)).limit(1))
    if has_value is not None:
        section = db.session.get(Section, indicator.section_id)
        where = node_paths.get(section.code if section else None, "outline")
        raise CycleFileError([f"{where}.indicators：指标“{indicator.name}”（{indicator.code}）已有单位填报的数值，"
                              "不能删除"])
    db.session.delete(indicator)
    result.note("indicators", "removed", f"{indicator.code} {indicator.name}")


def _has_material(assignment) -> bool:
    c = assignment.contribution
    return c is not None and (bool((c.body or "").strip()) or c.state != "draft" or bool(c.revisions))


ROLE_NAMES = {"lead": "牵头", "support": "配合"}


def _sync_assignments(section, node, units, result) -> None:
    wanted = {code: "lead" for code in node["lead"]} | {code: "support" for code in node["support"]}
    current = {a.unit.code: a for a in section.assignments}
    for code, role in wanted.items():
        assignment = current.get(code)
        label = f"{section.code} × {code} {units[code].name}"
        if assignment is None:
            section.assignments.append(Assignment(unit=units[code], role=role))
            result.note("assignments", "created", label, [("role", None, ROLE_NAMES[role])])
        elif assignment.role != role:
            result.note("assignments", "updated", label,
                        [("role", ROLE_NAMES.get(assignment.role), ROLE_NAMES[role])])
            assignment.role = role
    for code, assignment in current.items():
        if code not in wanted:
            if _has_material(assignment):
                raise CycleFileError([f"{node['path']}：单位“{code}”已就该章节报送材料，不能取消其任务分配"])
            section.assignments.remove(assignment)
            db.session.delete(assignment)
            result.note("assignments", "removed", f"{section.code} × {code} {assignment.unit.name}")


def _remove_section(section, result) -> None:
    for node in section.walk():
        for assignment in node.assignments:
            if _has_material(assignment):
                raise CycleFileError([f"outline：章节“{section.code}”已有报送材料，不能删除"])
    result.note("sections", "removed", _section_label(section))
    # Its assignments and rules go with it (its subsections are removed, and listed, one by one).
    for assignment in section.assignments:
        result.note("assignments", "removed", f"{section.code} × {assignment.unit.code} {assignment.unit.name}")
    rules = list(db.session.scalars(select(Rule.expression).where(Rule.section_id == section.id)))
    if rules:
        result.note("rules", "removed", _section_label(section), [("rules", rules, None)])
    db.session.delete(section)


def _section_label(section) -> str:
    return f"{section.code} {section.title}" if section.title else f"{section.code}（无标题）"


def read_cycle_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError:
        raise CycleFileError([f"文件 {path} 不是 UTF-8 编码：请在编辑器中“另存为”UTF-8 编码后再导入"]) from None
    except OSError as exc:
        raise CycleFileError([f"无法读取文件 {path}：{exc.strerror or exc}"]) from None


def import_cycle_file(path: str, actor=None, strict: bool = False, region: Region | None = None) -> ImportResult:
    return import_cycle(read_cycle_file(path), actor, strict=strict, region=region)
