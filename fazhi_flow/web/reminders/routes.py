"""Thin routes: each declares its gate (``@handler``), loads, makes one service call and redirects; the
handler commits, or on a refusal rolls back and shows the message (on the form page, with what was typed,
or back on the page the button was on)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ... import policy as access
from ...extensions import db
from ...models import Assignment, Contribution, ReportCycle, Section, Unit
from ...models.reminder import (
    OUTBOX_STATUSES, WEBHOOK_KINDS, ExtensionRequest, OutboxMessage, Reminder, WebhookTarget,
)
from ...notify.preferences import preference
from ...workdays import due_status
from ...services import reminders as svc
from ..fields import db_int, int_list, optional_int
from ..handler import handler, on_refusal
from ..own_region import get_own_or_404
from . import bp


OUTBOX_PER_PAGE = 50

# The template helpers ``due_status(...)`` and ``|due_label`` are registered in web/helpers.py.


def _cycle(cycle_id: int) -> ReportCycle:
    """A cycle of the admin's region; another region's answers 404 as a missing one."""
    return get_own_or_404(ReportCycle, cycle_id)


@bp.route("/cycles/<int:cycle_id>/policy", methods=["GET", "POST"])
@handler("admin.manage")
def policy(cycle_id):
    cycle = _cycle(cycle_id)
    form = request.form
    if request.method == "POST":
        with on_refusal(lambda: _policy_page(cycle)):
            svc.update_policy(
                cycle, current_user, enabled="enabled" in form, before_due_days=form.get("before_due_days", ""),
                on_due_day="on_due_day" in form, overdue_every=form.get("overdue_every"),
                overdue_max=form.get("overdue_max"), escalate_after=form.get("escalate_after"),
                backlog_days=form.get("backlog_days"), backlog_max=form.get("backlog_max"),
                daily_digest="daily_digest" in form, send_time=form.get("send_time", ""))
        flash("催报规则已保存。", "success")
        return redirect(url_for(".policy", cycle_id=cycle.id))
    return _policy_page(cycle)


def _policy_page(cycle: ReportCycle):
    """The rules of ``cycle``; after a refused save, with the values as typed."""
    # The cycle's robots and the robots of its region's units; never another region's.
    own_units = select(Unit.id).where(Unit.region_id == cycle.region_id)
    webhooks = db.session.scalars(select(WebhookTarget).where(
        WebhookTarget.active.is_(True),
        db.or_(WebhookTarget.cycle_id == cycle.id, WebhookTarget.unit_id.in_(own_units)))
        .order_by(WebhookTarget.id)).all()
    units = db.session.scalars(select(Unit).where(Unit.active.is_(True), Unit.region_id == cycle.region_id)
                               .order_by(Unit.sort_order, Unit.id)).all()
    return render_template("reminders/policy.html", cycle=cycle, policy=svc.policy_for(cycle),
                           values=request.form if request.method == "POST" else None, webhooks=webhooks,
                           units=units, kinds=WEBHOOK_KINDS)


@bp.post("/cycles/<int:cycle_id>/webhooks")
@handler("admin.manage")
def add_webhook(cycle_id):
    cycle = _cycle(cycle_id)
    f = request.form
    owner = f.get("owner", "cycle")
    unit_id = optional_int(f.get("unit_id")) if owner == "unit" else None
    if unit_id is not None:
        get_own_or_404(Unit, unit_id)  # another region's unit: as if it did not exist
    svc.add_webhook(current_user, f.get("name"), f.get("kind"), f.get("url"), f.get("secret"),
                    unit_id=unit_id, cycle_id=None if owner == "unit" else cycle.id)
    flash("群机器人已添加。", "success")
    return redirect(url_for(".policy", cycle_id=cycle.id))


@bp.post("/webhooks/<int:webhook_id>/remove")
@handler("admin.manage")
def remove_webhook(webhook_id):
    target = get_own_or_404(WebhookTarget, webhook_id)
    back = request.form.get("cycle_id", type=db_int)
    svc.remove_webhook(current_user, target)
    flash("群机器人已停用。", "success")
    return redirect(url_for(".policy", cycle_id=back) if back else url_for(".outbox"))


@bp.route("/assignments/<int:assignment_id>/extension", methods=["GET", "POST"])
@handler("authenticated")
def request_extension(assignment_id):
    assignment = db.session.get(Assignment, assignment_id)
    if assignment is None or current_user.unit_id != assignment.unit_id:
        abort(404)  # another unit's task is not shown at all
    if request.method == "POST":
        with on_refusal(lambda: _extension_page(assignment)):
            svc.request_extension(assignment, current_user, request.form.get("requested_due"),
                                  request.form.get("reason"))
        flash("延期申请已提交，请等待管理员审批。", "success")
        return redirect(url_for(".my_extensions"))
    return _extension_page(assignment)


def _extension_page(assignment: Assignment):
    history = db.session.scalars(select(ExtensionRequest).where(ExtensionRequest.assignment_id == assignment.id)
                                 .order_by(ExtensionRequest.id.desc())).all()
    return render_template("reminders/extension_request.html", assignment=assignment, history=history,
                           status=due_status(assignment), form=request.form,
                           allowed=access.can(current_user, "assignment.request_extension", assignment))


@bp.get("/my-extensions")
@handler("authenticated")
def my_extensions():
    rows = db.session.scalars(select(ExtensionRequest).join(Assignment).where(
        Assignment.unit_id == current_user.unit_id).order_by(ExtensionRequest.id.desc())).all() \
        if current_user.unit_id else []
    return render_template("reminders/my_extensions.html", rows=rows)


@bp.post("/extensions/<int:request_id>/withdraw")
@handler("authenticated")
def withdraw_extension(request_id):
    req = get_own_or_404(ExtensionRequest, request_id)
    svc.withdraw_extension(req, current_user)
    flash("延期申请已撤回。", "success")
    return redirect(url_for(".my_extensions"))


@bp.get("/extensions")
@handler("admin.manage")
def extensions():
    rows = db.session.scalars(
        select(ExtensionRequest).join(Assignment, ExtensionRequest.assignment_id == Assignment.id)
        .join(Section, Assignment.section_id == Section.id).join(ReportCycle, Section.cycle_id == ReportCycle.id)
        .where(ReportCycle.region_id == current_user.region_id)
        .order_by((ExtensionRequest.status == "pending").desc(), ExtensionRequest.id.desc()).limit(300)).all()
    return render_template("reminders/extensions.html", rows=rows)


@bp.post("/extensions/<int:request_id>/decide")
@handler("admin.manage")
def decide_extension(request_id):
    req = get_own_or_404(ExtensionRequest, request_id)
    grant = request.form.get("decision") == "grant"
    svc.decide_extension(req, current_user, grant, request.form.get("comment"),
                         request.form.get("granted_due") or None)
    flash("已同意延期，提醒将按新日期发送。" if grant else "已不同意延期。", "success")
    return redirect(url_for(".extensions"))


@bp.route("/cycles/<int:cycle_id>/chase", methods=["GET", "POST"])
@handler("admin.manage")
def chase(cycle_id):
    cycle = _cycle(cycle_id)
    if request.method == "POST":
        unit_ids = int_list(request.form.getlist("unit_id"))
        if svc.units_outside(unit_ids, cycle.region_id):
            abort(404)  # another region's unit: as if it did not exist
        with on_refusal(lambda: _chase_page(cycle)):
            sent = svc.send_manual_reminder(cycle, current_user, unit_ids=unit_ids,
                                            all_overdue=request.form.get("scope") == "overdue",
                                            note=request.form.get("note"))
        flash("催报已发出。", "success")
        flash(f"共催报{len(sent)}份材料。", "info")
        return redirect(url_for(".chase", cycle_id=cycle.id))
    return _chase_page(cycle)


def _chase_page(cycle: ReportCycle):
    by_unit: dict = {}
    for c in svc.remindable(cycle):
        by_unit.setdefault(c.unit, []).append(c)
    recent = db.session.scalars(select(Reminder).where(Reminder.cycle_id == cycle.id, Reminder.kind == "manual")
                                .order_by(Reminder.id.desc()).limit(50)).all()
    return render_template("reminders/chase.html", cycle=cycle, by_unit=by_unit, recent=recent,
                           form=request.form)


@bp.get("/outbox")
@handler("admin.manage")
def outbox():
    status = request.args.get("status")
    if status not in OUTBOX_STATUSES:
        status = None  # an unknown filter shows everything rather than failing
    # Only messages to the admin's region: its people, its units' and cycles' robots.
    own = svc.outbox_of_region(current_user.region_id)
    counts = dict(db.session.execute(select(OutboxMessage.status, db.func.count()).where(own)
                                     .group_by(OutboxMessage.status)).all())
    total = counts.get(status, 0) if status else sum(counts.values())
    pages = max(1, -(-total // OUTBOX_PER_PAGE))
    # A malformed or out-of-range page shows the nearest real page, never an error.
    page = min(max(1, request.args.get("page", 1, type=db_int) or 1), pages)
    q = select(OutboxMessage).where(own).order_by(OutboxMessage.id.desc())
    if status:
        q = q.where(OutboxMessage.status == status)
    # The total is known from the counts per status above: no second count.
    rows = db.paginate(q, page=page, per_page=OUTBOX_PER_PAGE, error_out=False, count=False).items
    return render_template("reminders/outbox.html", rows=rows, status=status, statuses=OUTBOX_STATUSES,
                           counts=counts, page=page, pages=pages, total=total)


@bp.post("/outbox/<int:message_id>/retry")
@handler("admin.manage")
def retry(message_id):
    message = db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.id == message_id, svc.outbox_of_region(current_user.region_id))) or abort(404)
    svc.retry_message(current_user, message)
    if message.status == "pending":
        flash("已重新加入待发消息。", "success")
    else:  # re-checked against the current state: no longer worth sending
        flash(f"该消息已不再适用，未重新发送：{message.last_error}", "warning")
    return redirect(url_for(".outbox", status=request.form.get("status") or None,
                            page=request.form.get("page", type=db_int) or None))


@bp.post("/outbox/retry-dead")
@handler("admin.manage")
def retry_dead():
    requeued, cancelled = svc.retry_all_dead(current_user)
    if requeued or not cancelled:
        flash(f"{requeued}条发送失败的消息已重新加入待发消息。", "success")
    if cancelled:
        flash(f"{cancelled}条消息已不再适用（如截止日期已过、材料已提交或已有更新的提醒），已取消，"
              "原因见“已取消”列表。", "warning")
    return redirect(url_for(".outbox"))


@bp.route("/my-channels", methods=["GET", "POST"])
@handler("authenticated")
def my_channels():
    if request.method == "POST":
        svc.set_channel_preferences(current_user, "email" in request.form, "inapp" in request.form)
        flash("通知渠道已保存。", "success")
        return redirect(url_for(".my_channels"))
    pref = preference(current_user)
    return render_template("reminders/my_channels.html", email=pref.email if pref else True,
                           inapp=pref.inapp if pref else True)


__all__ = ["Contribution"]
