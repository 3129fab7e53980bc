"""Cycle definition files: validate a YAML document completely, then write it in one transaction.

The schema is documented in docs/cycle-file.md. Every problem is reported with the key and position
(e.g. ``outline[1].children[0].lead``); if there is any, nothing is written.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime

import yaml
from sqlalchemy import select

from ..errors import DomainError
from ..extensions import db
from ..figures.numbers import STORABLE, storable_number
from ..limits import column_length
from ..models import Assignment, Indicator, ReportCycle, Rule, Section, Unit, User
from ..models.indicator import INDICATOR_TYPES, ROLLUPS, IndicatorValue
from ..models.org import ROLES, UNIT_KINDS
from .audit import record
from .users import password_problem

TOP_KEYS = {"cycle", "units", "users", "outline"}
CYCLE_KEYS = {"title", "year", "region", "due", "unit_head_review", "issuers", "issue_date",
              "reminder_policy", "share_approved_figures"}
UNIT_KEYS = {"code", "name", "kind", "parent"}
USER_KEYS = {"username", "name", "email", "phone", "unit", "roles", "password"}
NODE_KEYS = {"code", "title", "guidance", "word_limit", "run_in", "due", "lead", "support", "reviewers",
             "indicators", "rules", "children"}
INDICATOR_KEYS = {"code", "name", "unit", "type", "required", "min", "max", "guidance", "reported_by", "rollup"}
RULE_KEYS = {"expr", "severity", "message"}
CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
INDICATOR_CODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Path of the document itself in messages; its keys are named bare ("outline", not "文件.outline").
TOP = "文件"


# A cycle file nests a few levels (outline → children → indicators); far deeper nesting is an attack on
# the parser's recursion. Anchors and aliases are never needed and allow "billion laughs" documents.
MAX_DEPTH = 40


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


@dataclass
class ImportResult:
    cycle: ReportCycle
    created: dict = field(default_factory=lambda: {"units": 0, "users": 0, "sections": 0,
                                                   "assignments": 0, "indicators": 0})
    updated: dict = field(default_factory=lambda: {"units": 0, "users": 0, "sections": 0, "indicators": 0,
                                                   "rules": 0})
    removed: dict = field(default_factory=lambda: {"sections": 0, "assignments": 0, "indicators": 0})
    passwords: dict = field(default_factory=dict)  # username -> one-time password of new users
    warnings: list = field(default_factory=list)  # material nobody could move (services.stuck), as sentences

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values()) or any(self.removed.values())


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


def validate(data: dict) -> dict:
    """Check the whole document; return a normalised plan or raise CycleFileError with every problem."""
    c = _Checker()
    c.mapping(data, TOP, TOP_KEYS, required=("cycle",))
    plan = {"cycle": _validate_cycle(c, data.get("cycle") or {}), "units": [], "users": [], "outline": []}

    existing_units = {u.code for u in db.session.scalars(select(Unit))}
    existing_users = {u.username for u in db.session.scalars(select(User))}

    plan["units"] = _validate_units(c, _list_of(c, data, "units"))
    known_units = {unit["code"] for unit in plan["units"]} | existing_units
    _check_unit_parents(c, plan["units"], known_units)
    plan["users"] = _validate_users(c, _list_of(c, data, "users"), known_units)
    known_users = {user["username"] for user in plan["users"]} | existing_users

    outline = _OutlineChecker(c, known_units, known_users)
    plan["outline"] = outline.walk(data.get("outline") or [], "outline", "")
    if not plan["outline"] and not c.errors:
        c.err("outline", "至少需要一个章节")
    outline.check_rules()

    if c.errors:
        raise CycleFileError(c.errors)
    return plan


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
        "region": c.text(raw_cycle.get("region"), "cycle.region", required=True, max_len=column_length(ReportCycle.region)),
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


def _check_unit_parents(c: _Checker, units: list[dict], known_units: set) -> None:
    for unit in units:
        if unit["parent"] is not None and unit["parent"] not in known_units:
            c.err(f"{unit['path']}.parent", f"未知的单位代码“{unit['parent']}”")
        if unit["parent"] == unit["code"]:
            c.err(f"{unit['path']}.parent", "上级单位不能是自己")
    _check_parent_loops(c, units)


def _validate_users(c: _Checker, raw_users: list, known_units: set) -> list[dict]:
    users = []
    usernames: set[str] = set()
    for i, raw in enumerate(raw_users):
        path = f"users[{i}]"
        if not c.mapping(raw, path, USER_KEYS, required=("username", "name", "roles")):
            continue
        username = c.text(raw.get("username"), f"{path}.username", True, column_length(User.username))
        if username in usernames:
            c.err(f"{path}.username", f"用户名“{username}”重复")
        usernames.add(username)
        roles = c.str_list(raw.get("roles"), f"{path}.roles")
        for role in roles:
            if role not in ROLES:
                c.err(f"{path}.roles", f"角色“{role}”无效，可选：{', '.join(ROLES)}")
        unit = raw.get("unit")
        if unit is not None and unit not in known_units:
            c.err(f"{path}.unit", f"未知的单位代码“{unit}”")
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
                      "unit": unit, "roles": roles, "password": password})
    return users


class _OutlineChecker:
    """Walks the outline: sections with their units, reviewers, indicators and rules. Codes must be
    unique across the whole file, and rule expressions are checked once every indicator is known."""

    def __init__(self, c: _Checker, known_units: set, known_users: set):
        self.c = c
        self.known_units = known_units
        self.known_users = known_users
        self.section_codes: set[str] = set()
        self.indicator_codes: dict[str, str] = {}
        self.rules_to_check: list[tuple[str, str]] = []

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
        return {
            "code": code, "title": title, "path": npath,
            "guidance": c.text(raw.get("guidance"), f"{npath}.guidance", max_len=column_length(Section.guidance)),
            "word_limit": c.integer(raw.get("word_limit"), f"{npath}.word_limit", 1, 100000),
            "run_in": c.boolean(raw.get("run_in"), f"{npath}.run_in"),
            "due": c.date(raw.get("due"), f"{npath}.due"),
            "lead": lead, "support": support, "reviewers": reviewers,
            "indicators": indicators, "rules": rules,
            "children": self.walk(raw.get("children") or [], f"{npath}.children", f"{code}."),
        }

    def _people(self, raw: dict, npath: str) -> tuple[list, list, list]:
        c = self.c
        lead = c.str_list(raw.get("lead"), f"{npath}.lead")
        support = c.str_list(raw.get("support"), f"{npath}.support")
        for key, codes in (("lead", lead), ("support", support)):
            for unit in codes:
                if unit not in self.known_units:
                    c.err(f"{npath}.{key}", f"未知的单位代码“{unit}”")
        for unit in set(lead) & set(support):
            c.err(f"{npath}.support", f"单位“{unit}”不能同时是牵头和配合单位")
        reviewers = c.str_list(raw.get("reviewers"), f"{npath}.reviewers")
        for username in reviewers:
            if username not in self.known_users:
                c.err(f"{npath}.reviewers", f"未知的用户名“{username}”")
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


def import_cycle(text: str, actor=None, strict: bool = False) -> ImportResult:
    """Validate and write a cycle file; flush only. Re-importing the same file changes nothing.

    ``result.warnings`` names every section whose material nobody could submit or approve as written;
    with ``strict`` those warnings refuse the file too.

    :raise CycleFileError: the file has problems; the caller must roll back (nothing is committed).
    """
    from .stuck import stuck_messages

    plan = validate(parse_document(text))
    with db.session.no_autoflush:
        result = _apply(plan)
    db.session.flush()
    result.warnings = stuck_messages(result.cycle)
    if strict and result.warnings:
        raise CycleFileError(["（--strict）" + w for w in result.warnings])
    if result.changed:  # re-importing an unchanged file leaves no trace
        record(actor, "cycle.import", f"cycle:{result.cycle.id}", created=result.created,
               updated=result.updated, removed=result.removed)
    return result


def _set(obj, values: dict) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def _apply(plan: dict) -> ImportResult:
    extensions = _cycle_extensions()
    result = _apply_cycle({k: v for k, v in plan["cycle"].items() if k not in extensions})
    cycle = result.cycle
    units = _apply_units(plan["units"], result)
    users = _apply_users(plan["users"], units, result)
    _OutlineWriter(cycle, units, users, result).write_all(plan["outline"])
    for key, extension in extensions.items():
        if key in plan["cycle"]:
            extension.apply(cycle, plan["cycle"][key])
    if cycle.state == "collecting":
        from .cycles import ensure_contributions

        ensure_contributions(cycle)
    return result


def _apply_cycle(cinfo: dict) -> ImportResult:
    cycle = db.session.scalar(select(ReportCycle).where(
        ReportCycle.region == cinfo["region"], ReportCycle.year == cinfo["year"]))
    if cycle is None:
        cycle = ReportCycle(state="setup", **cinfo)
        db.session.add(cycle)
        db.session.flush()
        return ImportResult(cycle=cycle)
    if cycle.state in ("signed", "published", "correcting"):
        raise CycleFileError([f"cycle：年度报告当前为“{cycle.state_label}”，不能再修改"])
    _set(cycle, cinfo)
    return ImportResult(cycle=cycle)


def _apply_units(planned: list[dict], result: ImportResult) -> dict[str, Unit]:
    """Create or update the file's units, then their parents; every unit by code."""
    units = {u.code: u for u in db.session.scalars(select(Unit))}
    for i, info in enumerate(planned):
        unit = units.get(info["code"])
        values = {"name": info["name"], "kind": info["kind"], "sort_order": i}
        if unit is None:
            unit = Unit(code=info["code"], **values)
            db.session.add(unit)
            units[info["code"]] = unit
            result.created["units"] += 1
        elif _set(unit, values):
            result.updated["units"] += 1
    for info in planned:
        parent = units[info["parent"]] if info["parent"] else None
        if units[info["code"]].parent is not parent:
            units[info["code"]].parent = parent
    db.session.flush()
    _check_unit_cycles(units.values())
    return units


def _apply_users(planned: list[dict], units: dict[str, Unit], result: ImportResult) -> dict[str, User]:
    """Create or update the file's users; every user by username."""
    users = {u.username: u for u in db.session.scalars(select(User))}
    for info in planned:
        user = users.get(info["username"])
        values = {"name": info["name"], "email": info["email"], "phone": info["phone"],
                  "unit_id": units[info["unit"]].id if info["unit"] else None}
        if user is None:
            user = User(username=info["username"], **values)
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
            result.created["users"] += 1
        else:
            changed = _set(user, values)
            if user.roles != set(info["roles"]):
                user.set_roles(info["roles"])
                changed = True
            result.updated["users"] += changed
    db.session.flush()
    return users


class _OutlineWriter:
    """Writes the outline's sections, assignments, indicators and rules; removes what the file dropped."""

    def __init__(self, cycle: ReportCycle, units: dict, users: dict, result: ImportResult):
        self.cycle, self.units, self.users, self.result = cycle, units, users, result
        self.existing = {s.code: s for s in db.session.scalars(select(Section).where(Section.cycle_id == cycle.id))}
        self.seen: set[str] = set()
        self.indicator_rows = {i.code: i for i in db.session.scalars(
            select(Indicator).where(Indicator.cycle_id == cycle.id))}
        self.seen_indicators: set[str] = set()

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
            wanted_reviewers = [self.users[name] for name in node["reviewers"]]
            if [r.id for r in section.reviewers] != [r.id for r in wanted_reviewers]:
                section.reviewers = wanted_reviewers
            db.session.flush()
            _sync_assignments(section, node, self.units, self.result)
            self._indicators(section, node["indicators"])
            self._rules(section, node["rules"])
            self.write(node["children"], section)

    def _section(self, node: dict, parent, position: int) -> Section:
        section = self.existing.get(node["code"])
        values = {"title": node["title"], "guidance": node["guidance"], "word_limit": node["word_limit"],
                  "run_in": node["run_in"], "due": node["due"], "position": position}
        if section is None:
            section = Section(cycle_id=self.cycle.id, code=node["code"], parent=parent, **values)
            db.session.add(section)
            self.existing[node["code"]] = section
            self.result.created["sections"] += 1
        else:
            changed = _set(section, values)
            if section.parent is not parent:
                section.parent = parent
                changed = True
            self.result.updated["sections"] += changed
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
                self.result.created["indicators"] += 1
            elif _set(row, values):
                self.result.updated["indicators"] += 1

    def _rules(self, section: Section, planned: list[dict]) -> None:
        old_rules = [(r.expression, r.severity, r.message) for r in db.session.scalars(
            select(Rule).where(Rule.section_id == section.id).order_by(Rule.position))]
        new_rules = [(r["expression"], r["severity"], r["message"]) for r in planned]
        if old_rules == new_rules:
            return
        self.result.updated["rules"] += 1
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


def _check_parent_loops(c: _Checker, planned: list[dict]) -> None:
    """Refuse units whose parents would form a loop, counting the stored parents of units the file
    does not list (the unit of work cannot even flush such a tree)."""
    rows = db.session.execute(select(Unit.id, Unit.code, Unit.parent_id)).all()
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
    result.removed["indicators"] += 1


def _has_material(assignment) -> bool:
    c = assignment.contribution
    return c is not None and (bool((c.body or "").strip()) or c.state != "draft" or bool(c.revisions))


def _sync_assignments(section, node, units, result) -> None:
    wanted = {code: "lead" for code in node["lead"]} | {code: "support" for code in node["support"]}
    current = {a.unit.code: a for a in section.assignments}
    for code, role in wanted.items():
        assignment = current.get(code)
        if assignment is None:
            section.assignments.append(Assignment(unit=units[code], role=role))
            result.created["assignments"] += 1
        elif assignment.role != role:
            assignment.role = role
    for code, assignment in current.items():
        if code not in wanted:
            if _has_material(assignment):
                raise CycleFileError([f"{node['path']}：单位“{code}”已就该章节报送材料，不能取消其任务分配"])
            section.assignments.remove(assignment)
            db.session.delete(assignment)
            result.removed["assignments"] += 1


def _remove_section(section, result) -> None:
    for node in section.walk():
        for assignment in node.assignments:
            if _has_material(assignment):
                raise CycleFileError([f"outline：章节“{section.code}”已有报送材料，不能删除"])
    db.session.delete(section)
    result.removed["sections"] += 1


def import_cycle_file(path: str, actor=None, strict: bool = False) -> ImportResult:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise CycleFileError([f"文件 {path} 不是 UTF-8 编码：请在编辑器中“另存为”UTF-8 编码后再导入"]) from None
    except OSError as exc:
        raise CycleFileError([f"无法读取文件 {path}：{exc.strerror or exc}"]) from None
    return import_cycle(text, actor, strict=strict)
