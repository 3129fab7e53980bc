"""The audit trail: one row per login, failure, change and refused request."""
from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app, has_request_context, request
from flask_login import current_user
from sqlalchemy import (ARRAY, Integer, String, and_, any_, case, cast, false, func, literal, literal_column, or_, select,
                        text, union_all)
from sqlalchemy.exc import SQLAlchemyError

from .. import xlsx
from ..extensions import db
from ..models import AuditEvent, TransitionLog, User
from ..publish.naming import full_title
from ..timeutil import local_zone, to_local, utcnow

logger = logging.getLogger(__name__)

# Refusals are written at most once per user, address and kind in this interval, so that a script
# hammering a forbidden page or forging tokens cannot fill the table.
REFUSAL_INTERVAL = timedelta(minutes=1)
REFUSAL_KINDS = {"forbidden": "无权访问被拒绝", "csrf": "安全校验失败被拒绝"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def record(actor, action: str, target: str | None = None, on_behalf_of=None, **detail) -> AuditEvent:
    """Add an audit row to the session (committed with the operation it describes). ``on_behalf_of``:
    the person (or their id) whose work ``actor`` did as their substitute (委托), shown as
    "actor 代 on_behalf_of"."""
    ip = request.remote_addr if has_request_context() else None
    behalf_id = on_behalf_of if isinstance(on_behalf_of, int) else getattr(on_behalf_of, "id", None)
    row = AuditEvent(actor_id=getattr(actor, "id", None), action=action, target=target,
                     on_behalf_of_id=behalf_id if behalf_id != getattr(actor, "id", None) else None,
                     detail=detail or None, ip=ip, created_at=utcnow())
    db.session.add(row)
    return row


def record_refusal(kind: str, reason: str | None = None) -> None:
    """Audit a refused request (kind "forbidden" or "csrf") in its own short transaction.

    Call only after the request's own changes were rolled back: this commits the session. A busy or
    failing database loses the row, never the response (the refusal page is shown all the same).
    """
    from ..database import require_write_lock

    require_write_lock()  # a refused GET writes this row: its transaction must not be a read-only one
    try:
        _write_refusal(kind, reason)
    except SQLAlchemyError:
        db.session.rollback()
        logger.warning("refused request not audited (database unavailable)", exc_info=True)


def _write_refusal(kind: str, reason: str | None) -> None:
    actor_id = current_user.id if current_user.is_authenticated else None
    ip = request.remote_addr
    action = f"refused.{kind}"
    if db.engine.dialect.name == "postgresql":
        # Waiting on a busy database would hold the refusal page; the row is worth less than that.
        db.session.execute(text("SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '3s'"))
    recent = select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.created_at >= utcnow() - REFUSAL_INTERVAL,
        AuditEvent.actor_id.is_(None) if actor_id is None else AuditEvent.actor_id == actor_id,
        AuditEvent.ip.is_(None) if ip is None else AuditEvent.ip == ip).limit(1)
    if db.session.scalar(recent) is None:
        detail = {"method": request.method, "reason": _clean(reason or "", 200)}
        db.session.add(AuditEvent(actor_id=actor_id, action=action, target=_clean(request.path),
                                  detail=detail, ip=ip, created_at=utcnow()))
    db.session.commit()


def _clean(value: str, limit: int | None = None) -> str:
    """Text an attacker chose, made storable: no control characters (PostgreSQL refuses NUL), bounded.

    Column values need no ``limit``: the model fits them to their columns (limits.fitted)."""
    return _CONTROL.sub("", value)[:limit]


# ------------------------------------------------------------------ reading the trail
# The admin page, its exports and ``fazhi-flow audit`` read one list: the general audit rows and the
# workflow transitions, newest first. Both tables are merged in SQL (UNION ALL of their keys, each table
# giving only its first rows from its created_at index), so a page costs the same few queries whatever
# the size of the trail: count, keys, the two kinds of rows, the people, one query per kind of object.

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000  # rows; config AUDIT_EXPORT_LIMIT overrides
CHUNK = 1000  # rows loaded at a time by exports and the command
EVENT, TRANSITION = 0, 1  # the kinds of row, as stored in the merged key list
FLOW_PREFIX = "flow"  # action keys of transitions: "flow:contribution:submit", "flow:cycle:open"
WHO_MAX, TARGET_MAX = 60, 120  # the username / target columns' lengths
DATE_FORMAT_HINT = "请写成 2025-01-31 的形式"

ACTION_LABELS = {
    "auth.login": "登录",
    "auth.logout": "退出登录",
    "auth.login_failed": "登录失败",
    "auth.login_throttled": "登录尝试过多被暂停",
    "auth.password_changed": "修改密码",
    "refused.forbidden": REFUSAL_KINDS["forbidden"],
    "refused.csrf": REFUSAL_KINDS["csrf"],
    "user.create": "添加用户",
    "user.update": "修改用户",
    "user.deactivate": "停用用户",
    "user.activate": "启用用户",
    "user.reset_password": "重置密码",
    "user.channels": "修改通知设置",
    "users.import": "批量导入用户",
    "unit.create": "添加单位",
    "unit.update": "修改单位",
    "unit.deactivate": "停用单位",
    "unit.activate": "启用单位",
    "units.import": "批量导入单位",
    "cycle.create": "新建年度报告",
    "cycle.update": "修改年度报告",
    "cycle.clone": "复制往年年度报告",
    "cycle.import": "导入年度报告定义",
    "cycle.open": "开始征集",
    "cycle.compile": "进入汇总编辑",
    "cycle.reopen_collection": "重新征集",
    "cycle.request_signoff": "提请签发",
    "cycle.sign": "签发",
    "cycle.return": "签发退回",
    "cycle.publish": "发布",
    "cycle.request_correction": "提请签发更正",
    "cycle.share_figures": "设置统计数据共享",
    "section.add": "添加章节",
    "section.update": "修改章节",
    "section.move": "调整章节顺序",
    "section.indent": "章节降级",
    "section.outdent": "章节升级",
    "section.delete": "删除章节",
    "section.due": "修改章节截止日期",
    "section.reviewers": "设置章节审核人",
    "assignment.add": "分配任务",
    "assignment.update": "修改任务分配",
    "assignment.remove": "取消任务分配",
    "contribution.save": "保存材料",
    "contribution.submit": "提交材料",
    "contribution.recall": "撤回材料",
    "contribution.unit_approve": "单位同意报送",
    "contribution.unit_return": "单位退回修改",
    "contribution.approve": "审核通过",
    "contribution.return": "审核退回",
    "contribution.reopen": "重新打开材料",
    "contribution.replace_text": "替换材料文字",
    "attachment.add": "上传附件",
    "attachment.remove": "删除附件",
    "figures.save": "保存统计数据",
    "indicator.save": "保存统计指标",
    "indicator.delete": "删除统计指标",
    "rule.add": "添加校验规则",
    "rule.delete": "删除校验规则",
    "compile.save": "编辑合并稿章节",
    "compile.reset": "重新生成合并稿章节",
    "compile.appendix": "设置附录",
    "publication.publish": "发布报告",
    "publication.correct": "发布更正版本",
    "reminder.policy": "修改催报设置",
    "reminder.manual": "手动催报",
    "extension.request": "申请延期",
    "extension.granted": "同意延期",
    "extension.refused": "不同意延期",
    "extension.withdraw": "撤回延期申请",
    "webhook.add": "添加群机器人",
    "webhook.remove": "删除群机器人",
    "outbox.retry": "重发消息",
    "outbox.retry_refused": "重发消息未执行（已不再适用）",
    "oversight.remind": "督办",
    "region.create": "新建地区",
    "region.update": "修改地区",
    "region.deactivate": "停用地区",
    "region.activate": "启用地区",
    "region.first_admin": "设置地区管理员",
    "delegation.create": "设置委托",
    "delegation.revoke": "撤销委托",
    "api_token.create": "创建 API 令牌",
    "api_token.revoke": "撤销 API 令牌",
}
# Actions of the system administrator on the regions themselves: in the system trail, not a region's.
REGION_ACTION_PREFIX = "region."

# Keys of the detail shown with a row; others are shown as stored.
DETAIL_LABELS = {
    "comment": "意见", "reason": "原因", "note": "说明", "method": "请求方式", "filename": "文件名",
    "size": "大小", "title": "标题", "changed": "修改", "roles": "角色", "username": "用户名", "via": "途径",
    "count": "数量", "version": "版本", "revision": "第几次提交", "chars": "字数", "forced": "强制",
    "paragraph": "段落", "missing": "未报送", "source": "来源", "year": "年度", "code": "代码", "name": "名称",
    "kind": "类型", "cycle": "年度报告", "section": "章节", "unit": "单位", "role": "分工", "due": "截止日期",
    "moved": "顺延前的截止日期", "moved_to": "截止日期顺延至", "on_behalf": "代为处理",
    "region_id": "地区编号", "level": "级别", "parent": "上级", "users": "账号", "user": "用户",
    "delegation": "委托编号", "starts_at": "委托开始", "ends_at": "委托结束", "for_absent": "管理员代设",
    "scope": "权限", "prefix": "令牌开头", "expires_at": "有效期至",
}
# Objects a target names ("contribution:12"), as shown beside it.
TARGET_KINDS = {"contribution": "报送材料", "cycle": "年度报告", "user": "用户", "unit": "单位",
                "section": "章节", "assignment": "任务分配", "webhook": "群机器人", "outbox": "待发消息",
                "region": "地区", "api_token": "API 令牌"}
_TARGET_RE = re.compile(r"^([a-z_]+):(\d{1,10})$")
# Actions whose "user:…" target is what somebody typed into the login form, not a user's id.
_TYPED_NAME_ACTIONS = frozenset({"auth.login_failed", "auth.login_throttled"})
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

EXPORT_COLUMNS = ["时间（北京时间）", "类别", "操作人", "用户名", "操作", "操作代码", "对象", "对象说明", "详情", "IP地址"]


class FilterError(ValueError):
    """A filter value that cannot be used; ``message`` is for the user (Chinese)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def flow_key(subject: str, event: str) -> str:
    return f"{FLOW_PREFIX}:{subject}:{event}"


def action_choices() -> list[tuple[str, str]]:
    """Every action a filter may name: (key, Chinese label), audit actions first, then transitions."""
    from ..workflow.states import CONTRIBUTION_EVENT_LABELS, CYCLE_EVENT_LABELS

    options = [(key, f"{label}（{key}）") for key, label in ACTION_LABELS.items()]
    options += [(flow_key("contribution", e), f"材料流转：{label}") for e, label in CONTRIBUTION_EVENT_LABELS.items()]
    options += [(flow_key("cycle", e), f"报告流转：{label}") for e, label in CYCLE_EVENT_LABELS.items()]
    return options


def action_label(key: str) -> str:
    from ..workflow.states import CONTRIBUTION_EVENT_LABELS, CYCLE_EVENT_LABELS

    if key.startswith(FLOW_PREFIX + ":"):
        _, subject, event = key.split(":", 2)
        labels = CONTRIBUTION_EVENT_LABELS if subject == "contribution" else CYCLE_EVENT_LABELS
        return ("材料流转：" if subject == "contribution" else "报告流转：") + labels.get(event, event)
    return ACTION_LABELS.get(key, key)


def parse_date(raw: str | None, what: str) -> date | None:
    """A date typed by a user: 2025-01-31, 2025/1/31 or 2025年1月31日; FilterError otherwise."""
    text = (raw or "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?", text)
    try:
        if match is None:
            raise ValueError
        value = date(*(int(part) for part in match.groups()))
        if not 1900 <= value.year <= 9998:
            raise ValueError
    except ValueError:
        raise FilterError(f"{what}“{text[:20]}”不是有效日期，{DATE_FORMAT_HINT}。") from None
    return value


@dataclass(frozen=True)
class AuditQuery:
    """What to show: ``who`` a username or part of a name, ``action`` a key of ``action_choices``,
    ``target`` an object ("contribution:12", "cycle:3") or part of a target text, dates in local time
    (both ends included)."""

    who: str = ""
    action: str = ""
    target: str = ""
    since: date | None = None
    until: date | None = None
    user_id: int | None = None  # one user exactly (the command's --user)
    # Whose trail (set by the page from the viewer, never from the URL): ``region_id`` the rows of one
    # region; ``system`` region management (系统管理员); ``unowned`` the rows of nobody's region (a failed
    # login with an unknown name, a refused anonymous request). None of them: every row (the command
    # line's operator).
    region_id: int | None = None
    system: bool = False
    unowned: bool = False

    @property
    def scoped(self) -> bool:
        return self.region_id is not None or self.system or self.unowned

    @classmethod
    def from_args(cls, args) -> AuditQuery:
        """The query of a request's arguments; FilterError names the first bad value."""
        who = (args.get("who") or "").strip()
        action = (args.get("action") or "").strip()
        target = (args.get("target") or "").strip()
        if len(who) > WHO_MAX:
            raise FilterError(f"操作人最多{WHO_MAX}字。")
        if len(target) > TARGET_MAX:
            raise FilterError(f"对象最多{TARGET_MAX}字。")
        if action and action not in dict(action_choices()):
            raise FilterError(f"未知的操作类型“{action[:40]}”，请从列表中选择。")
        since = parse_date(args.get("since"), "开始日期")
        until = parse_date(args.get("until"), "结束日期")
        if since and until and until < since:
            raise FilterError("结束日期早于开始日期。")
        return cls(who=who, action=action, target=target, since=since, until=until)

    @property
    def active(self) -> bool:
        return any((self.who, self.action, self.target, self.since, self.until))

    def args(self) -> dict[str, str]:
        """The query as URL arguments (for paging and export links)."""
        values = {"who": self.who, "action": self.action, "target": self.target,
                  "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else ""}
        return {k: v for k, v in values.items() if v}


@dataclass
class AuditRow:
    """One line of the trail, whichever table it comes from (plain values: nothing loads later)."""

    kind: int
    id: int
    created_at: datetime
    actor_name: str
    actor_username: str
    action: str
    target: str
    target_label: str
    detail: str
    ip: str

    @property
    def kind_label(self) -> str:
        return "流程流转" if self.kind == TRANSITION else "操作记录"

    @property
    def action_label(self) -> str:
        return action_label(self.action)

    @property
    def actor_label(self) -> str:
        return f"{self.actor_name}（{self.actor_username}）" if self.actor_username else "—"


@dataclass
class AuditPage:
    rows: list[AuditRow]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _local_start(day: date) -> datetime:
    """The stored (naive UTC) moment at which ``day`` begins in the configured local zone."""
    start = datetime.combine(day, time.min, tzinfo=local_zone())
    return start.astimezone(timezone.utc).replace(tzinfo=None)


def _matching_users(who: str):
    """Ids of the users ``who`` names: the exact username (any case) or part of the name."""
    return select(User.id).where(
        (func.lower(User.username) == who.lower()) | User.name.contains(who, autoescape=True))


def _event_keys(q: AuditQuery):
    stmt = select(literal_column(str(EVENT), Integer).label("kind"), AuditEvent.id.label("id"),
                  AuditEvent.created_at.label("created_at"))
    if q.action:
        stmt = stmt.where(AuditEvent.action == q.action)
    if q.target:
        match = _TARGET_RE.match(q.target)
        if match:
            stmt = stmt.where(AuditEvent.target == q.target)
        else:
            stmt = stmt.where(func.lower(AuditEvent.target).contains(q.target.lower(), autoescape=True))
    return _common(stmt, q, AuditEvent)


def _transition_keys(q: AuditQuery):
    stmt = select(literal_column(str(TRANSITION), Integer).label("kind"), TransitionLog.id.label("id"),
                  TransitionLog.created_at.label("created_at"))
    if q.action:
        _, subject, event = q.action.split(":", 2)
        column = TransitionLog.contribution_id if subject == "contribution" else TransitionLog.cycle_id
        stmt = stmt.where(TransitionLog.event == event, column.is_not(None))
    if q.target:
        match = _TARGET_RE.match(q.target)
        if match and match.group(1) in ("contribution", "cycle"):
            column = TransitionLog.contribution_id if match.group(1) == "contribution" else TransitionLog.cycle_id
            stmt = stmt.where(column == int(match.group(2)))
        elif match:
            return None  # another kind of object has no transitions
        else:
            text_target = case(
                (TransitionLog.contribution_id.is_not(None),
                 literal("contribution:", String) + cast(TransitionLog.contribution_id, String)),
                else_=literal("cycle:", String) + cast(TransitionLog.cycle_id, String))
            stmt = stmt.where(text_target.contains(q.target.lower(), autoescape=True))
    return _common(stmt, q, TransitionLog)


def _event_scope(q: AuditQuery):
    """Which audit rows the viewer's scope holds. A row is a region's when its detail names the region
    (``region_id``), else when it targets the region ("region:7", e.g. a 督办), else when its actor
    belongs to the region; region management is the system administrator's."""
    named = AuditEvent.detail["region_id"].as_integer()
    region_wide = AuditEvent.action.startswith(REGION_ACTION_PREFIX)
    parts = []
    if q.region_id is not None:
        parts.append(and_(~region_wide, or_(
            named == q.region_id, AuditEvent.target == f"region:{q.region_id}",
            and_(named.is_(None), AuditEvent.actor_id.in_(select(User.id).where(User.region_id == q.region_id))))))
    if q.system:
        parts.append(region_wide)
    if q.unowned:
        parts.append(and_(AuditEvent.actor_id.is_(None), named.is_(None), ~region_wide))
    return or_(*parts) if len(parts) > 1 else parts[0]


def _transition_scope(q: AuditQuery):
    """Transitions belong to their cycle's region (a contribution's through its cycle); the system trail
    has none."""
    from ..models import Contribution, ReportCycle

    if q.region_id is None:
        return false()
    cycles = select(ReportCycle.id).where(ReportCycle.region_id == q.region_id)
    return or_(TransitionLog.cycle_id.in_(cycles),
               TransitionLog.contribution_id.in_(select(Contribution.id).where(Contribution.cycle_id.in_(cycles))))


def _common(stmt, q: AuditQuery, model):
    if q.scoped:
        stmt = stmt.where(_event_scope(q) if model is AuditEvent else _transition_scope(q))
    if q.who:
        stmt = stmt.where(model.actor_id.in_(_matching_users(q.who)))
    if q.user_id is not None:
        stmt = stmt.where(model.actor_id == q.user_id)
    if q.since:
        stmt = stmt.where(model.created_at >= _local_start(q.since))
    if q.until:
        stmt = stmt.where(model.created_at < _local_start(q.until + timedelta(days=1)))
    return stmt


def _branches(q: AuditQuery) -> list[tuple[int, type, object]]:
    """(kind, model, statement) of each table the query can match; a statement selects kind, id, created_at."""
    flow = q.action.startswith(FLOW_PREFIX + ":")
    parts = []
    if not flow:
        parts.append((EVENT, AuditEvent, _event_keys(q)))
    if not q.action or flow:
        transitions = _transition_keys(q)
        if transitions is not None:
            parts.append((TRANSITION, TransitionLog, transitions))
    return parts


def _after(kind: int, model, key: tuple, newest_first: bool):
    """The rows of ``model`` (all of one kind) that come after ``key`` = (created_at, kind, id) in the
    order (created_at, kind, id), descending or not; with a plain bound on created_at, which each
    table's index serves, so a chunk starts where the last one ended instead of scanning again."""
    at, last_kind, last_id = key
    if newest_first:
        if kind != last_kind:
            return model.created_at <= at if kind < last_kind else model.created_at < at
        return and_(model.created_at <= at, or_(model.created_at < at, model.id < last_id))
    if kind != last_kind:
        return model.created_at >= at if kind > last_kind else model.created_at > at
    return and_(model.created_at >= at, or_(model.created_at > at, model.id > last_id))


def _merged(q: AuditQuery, size: int, offset: int = 0, newest_first: bool = True, after: tuple | None = None):
    """(kind, id, created_at) of ``size`` rows of the query in order, from ``offset`` or after the key
    ``after``. Each table gives its own first ``offset + size`` rows from its created_at index and only
    those are merged: the cost follows the page, not the size of the trail."""
    parts = []
    for kind, model, stmt in _branches(q):
        if after is not None:
            stmt = stmt.where(_after(kind, model, after, newest_first))
        order = (model.created_at.desc(), model.id.desc()) if newest_first else (model.created_at, model.id)
        sub = stmt.order_by(*order).limit(offset + size).subquery()
        parts.append(select(sub.c.kind, sub.c.id, sub.c.created_at))
    merged = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("trail")
    columns = (merged.c.created_at, merged.c.kind, merged.c.id)
    stmt = (select(merged.c.kind, merged.c.id, merged.c.created_at)
            .order_by(*(c.desc() for c in columns) if newest_first else columns).limit(size).offset(offset))
    return db.session.execute(stmt).all()


def count(q: AuditQuery) -> int:
    """How many rows the query matches (each table counted on its own, in one statement)."""
    counts = [select(func.count()).select_from(stmt.subquery()).scalar_subquery() for _, _, stmt in _branches(q)]
    total = counts[0] if len(counts) == 1 else counts[0] + counts[1]
    return db.session.scalar(select(total)) or 0


def page(q: AuditQuery, number: int = 1, per_page: int = PAGE_SIZE) -> AuditPage:
    """One page of the trail, newest first; a page past the end shows the last one."""
    total = count(q)
    pages = max(1, -(-total // per_page))
    number = min(max(number, 1), pages)
    keys = _merged(q, per_page, offset=(number - 1) * per_page)
    return AuditPage(rows=_load([(kind, ident) for kind, ident, _ in keys]), page=number, per_page=per_page,
                     total=total)


def iter_rows(q: AuditQuery, newest_first: bool = True, limit: int | None = None, release: bool = False):
    """Every row of the query in order, ``CHUNK`` rows at a time (exports and the command).

    Each chunk continues after the last key of the previous one (keyset paging), so no cursor stays
    open between chunks and memory does not grow with the trail. With ``release`` each chunk is read
    in its own transaction (the command: on SQLite a command's transaction holds the write lock, which
    a long listing must not keep from the web pages); the trail only grows, so no row is seen twice."""
    last, remaining = None, limit
    while remaining is None or remaining > 0:
        size = CHUNK if remaining is None else min(CHUNK, remaining)
        batch = _merged(q, size, newest_first=newest_first, after=last)
        if not batch:
            return
        rows = _load([(kind, ident) for kind, ident, _ in batch])
        if release:
            db.session.rollback()  # only read: ends the transaction and its lock
        yield from rows
        kind, ident, at = batch[-1]
        last = (at, kind, ident)
        if remaining is not None:
            remaining -= len(batch)


def _load(keys) -> list[AuditRow]:
    """The rows behind ``keys`` (in that order) with their people and objects, in a fixed number of queries."""
    event_ids = [i for kind, i in keys if kind == EVENT]
    transition_ids = [i for kind, i in keys if kind == TRANSITION]
    # Plain rows, not ORM objects: an export reads up to EXPORT_LIMIT of them, and objects would all
    # stay in the session's identity map (several times slower, and memory for nothing).
    events = {e.id: e for e in db.session.execute(
        select(*_columns(AuditEvent)).where(_among(AuditEvent.id, event_ids)))} if event_ids else {}
    transitions = {t.id: t for t in db.session.execute(
        select(*_columns(TransitionLog)).where(_among(TransitionLog.id, transition_ids)))} if transition_ids else {}

    wanted: dict[str, set[int]] = {}
    for e in events.values():
        ref = _target_ref(e)
        if ref:
            wanted.setdefault(ref[0], set()).add(ref[1])
    for t in transitions.values():
        if t.contribution_id is not None:
            wanted.setdefault("contribution", set()).add(t.contribution_id)
        else:
            wanted.setdefault("cycle", set()).add(t.cycle_id)
    actor_ids = {i for r in (*events.values(), *transitions.values())
                 for i in (r.actor_id, r.on_behalf_of_id) if i is not None}
    user_ids = actor_ids | wanted.get("user", set())
    users = {u.id: u for u in db.session.scalars(select(User).where(_among(User.id, user_ids)))} if user_ids else {}
    names = _object_names(wanted, users)

    rows = []
    for kind, ident in keys:
        if kind == EVENT:
            e = events.get(ident)
            if e is None:
                continue
            ref = _target_ref(e)
            rows.append(AuditRow(
                kind=EVENT, id=e.id, created_at=e.created_at,
                **_actor(users.get(e.actor_id), users.get(e.on_behalf_of_id)), action=e.action,
                target=e.target or "", target_label=_object_label(ref, names),
                detail=_detail_text(e.detail), ip=e.ip or ""))
        else:
            t = transitions.get(ident)
            if t is None:
                continue
            ref = ("contribution", t.contribution_id) if t.contribution_id is not None else ("cycle", t.cycle_id)
            rows.append(AuditRow(
                kind=TRANSITION, id=t.id, created_at=t.created_at,
                **_actor(users.get(t.actor_id), users.get(t.on_behalf_of_id)),
                action=flow_key(ref[0], t.event), target=f"{ref[0]}:{ref[1]}", target_label=_object_label(ref, names),
                detail=_transition_text(t), ip=""))
    return rows


def _among(column, ids):
    """``column IN ids``; on PostgreSQL as one array parameter (``= ANY``): a thousand separate
    parameters cost more to send than the rows they fetch."""
    if db.engine.dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(Integer)))
    return column.in_(ids)


def _columns(model):
    return [column for column in model.__table__.columns]


def _object_label(ref: tuple[str, int] | None, names: dict) -> str:
    """"报送材料：区司法局 · 严格规范执法" for ("contribution", 12); the kind alone for an object gone."""
    if ref is None:
        return ""
    name = names.get(ref)
    return f"{TARGET_KINDS[ref[0]]}：{name}" if name else TARGET_KINDS[ref[0]]


def _actor(user, behalf=None) -> dict[str, str]:
    """The actor's name, as "李四 代 张三" when they acted as ``behalf``'s substitute (委托)."""
    name = user.name if user else ""
    if user is not None and behalf is not None:
        name = f"{user.name} 代 {behalf.name}"
    return {"actor_name": name, "actor_username": user.username if user else ""}


def _target_ref(e) -> tuple[str, int] | None:
    match = _TARGET_RE.match(e.target or "")
    if match is None or match.group(1) not in TARGET_KINDS:
        return None
    if match.group(1) == "user" and (e.action in _TYPED_NAME_ACTIONS or (e.detail or {}).get("via") == "cli"):
        return None  # a typed user name that happens to be digits, not a user's id
    return match.group(1), int(match.group(2))


def _object_names(wanted: dict[str, set[int]], users: dict) -> dict[tuple[str, int], str]:
    """Readable names of the objects named on a page: one query per kind of object."""
    from ..models import Assignment, Contribution, ReportCycle, Section, Unit

    names: dict[tuple[str, int], str] = {}

    def section_name(title, code):
        return title or code

    if wanted.get("contribution"):
        for cid, unit, title, code in db.session.execute(
                select(Contribution.id, Unit.name, Section.title, Section.code)
                .join(Unit, Unit.id == Contribution.unit_id).join(Section, Section.id == Contribution.section_id)
                .where(_among(Contribution.id, wanted["contribution"]))):
            names[("contribution", cid)] = f"{unit} · {section_name(title, code)}"
    if wanted.get("assignment"):
        for aid, unit, title, code in db.session.execute(
                select(Assignment.id, Unit.name, Section.title, Section.code)
                .join(Unit, Unit.id == Assignment.unit_id).join(Section, Section.id == Assignment.section_id)
                .where(_among(Assignment.id, wanted["assignment"]))):
            names[("assignment", aid)] = f"{unit} · {section_name(title, code)}"
    if wanted.get("cycle"):
        for cid, region, title in db.session.execute(
                select(ReportCycle.id, ReportCycle.region, ReportCycle.title)
                .where(_among(ReportCycle.id, wanted["cycle"]))):
            names[("cycle", cid)] = full_title(region, title)
    if wanted.get("section"):
        for sid, title, code in db.session.execute(
                select(Section.id, Section.title, Section.code).where(_among(Section.id, wanted["section"]))):
            names[("section", sid)] = section_name(title, code)
    if wanted.get("unit"):
        for uid, name in db.session.execute(select(Unit.id, Unit.name).where(_among(Unit.id, wanted["unit"]))):
            names[("unit", uid)] = name
    for uid in wanted.get("user", ()):
        if uid in users:
            names[("user", uid)] = f"{users[uid].name}（{users[uid].username}）"
    return names


def _value_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _detail_text(detail: dict | None) -> str:
    if not detail:
        return ""
    return "；".join(f"{DETAIL_LABELS.get(k, k)}：{_value_text(v)}" for k, v in detail.items() if v not in (None, ""))


def _transition_text(t) -> str:
    from ..workflow.states import CONTRIBUTION_STATE_LABELS, CYCLE_STATE_LABELS

    labels = CONTRIBUTION_STATE_LABELS if t.contribution_id is not None else CYCLE_STATE_LABELS
    parts = [f"{labels.get(t.from_state, t.from_state)} → {labels.get(t.to_state, t.to_state)}"]
    if t.comment:
        parts.append(f"意见：{t.comment}")
    if t.context:
        parts.append(_detail_text(t.context))
    return "；".join(parts)


# ------------------------------------------------------------------ exports


def export_limit() -> int:
    return int(current_app.config.get("AUDIT_EXPORT_LIMIT", EXPORT_LIMIT))


def export_values(row: AuditRow) -> list:
    """The cells of a row in EXPORT_COLUMNS order; the time is local (naive, as spreadsheets want)."""
    return [to_local(row.created_at).replace(tzinfo=None, microsecond=0), row.kind_label, row.actor_name,
            row.actor_username, row.action_label, row.action, row.target, row.target_label, row.detail, row.ip]


def csv_safe(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ (or tab, CR) would start a formula."""
    text = value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_CSV_FORMULA_START) else text


def write_csv(rows, out, bom: bool = True) -> int:
    """Write the rows as CSV to the text stream ``out``; returns the number of rows."""
    if bom:
        out.write("\ufeff")  # Excel reads UTF-8 (Chinese) only with it
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([csv_safe(v) for v in export_values(row)])
        n += 1
    return n


def export_csv(q: AuditQuery) -> bytes:
    out = io.StringIO()
    write_csv(iter_rows(q, limit=export_limit()), out)
    return out.getvalue().encode("utf-8")


def export_xlsx(q: AuditQuery) -> bytes:
    """The rows as a workbook (write-only, with the formula guard)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet("审计日志")
    for letter, width in zip("ABCDEFGHIJ", (20, 10, 12, 14, 22, 26, 18, 30, 60, 16)):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    sheet.append(xlsx.header_row(sheet, EXPORT_COLUMNS, Font(bold=True)))
    for row in iter_rows(q, limit=export_limit()):
        sheet.append(xlsx.text_row(sheet, export_values(row)))
    return xlsx.to_bytes(book)
