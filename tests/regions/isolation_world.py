"""A city (益阳市) with two sibling counties (赫山区, 资阳区): units, people of every role, a cycle in
collecting with material in every state, a published cycle, robots, extension requests, outbox and
inbox rows — everything a person of one county could try to reach in the other.

Built through the workflow services where they exist (so revisions, transition logs and notifications
are real), as plain rows where a service would only add checks this world does not test.

Every name of 资阳区 carries ``B_MARK`` ("资阳专属") and every username of 资阳区 starts with
``B_LOGIN``: a page of another region that shows either has leaked 资阳区's material.
"""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import date, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from fazhi_flow.models import (Assignment, Contribution, ExtensionRequest, Indicator, Notification, OutboxMessage,
                               Region, ReportCycle, Revision, Rule, Section, Unit, User, WebhookTarget)

A_MARK, B_MARK = "赫山独有", "资阳专属"
A_LOGIN, B_LOGIN = "hsdy", "zyzs"
# A minimal but real PDF: the attachment service checks the content, not only the extension.
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
STATES = ("draft", "unit_review", "submitted", "returned", "approved")
ROLES_OF_COUNTY = ("admin", "reviewer", "liaison", "unit_head", "leader")


_HASH = None


def _password_hash() -> str:
    """The factories' password, hashed once and cheaply: the strength plays no part here."""
    global _HASH
    if _HASH is None:
        from werkzeug.security import generate_password_hash

        from fazhi_flow.testing import PASSWORD

        _HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    return _HASH


def _user(db, region, unit, username, name, *roles):
    user = User(username=username, name=name, unit=unit, region=region, email=f"{username}@example.cn",
                phone="13800000000")
    user.set_roles(roles)
    user.password_hash = _password_hash()
    db.session.add(user)
    db.session.flush()
    return user


def _unit(db, region, code, name, kind="government", parent=None, position=0):
    unit = Unit(region=region, code=code, name=name, kind=kind, parent=parent, sort_order=position)
    db.session.add(unit)
    db.session.flush()
    return unit


def _county(db, city, code, name, mark, login):
    region = Region(code=code, name=name, level="county", parent=city, sort_order=int(code[-1]))
    db.session.add(region)
    db.session.flush()
    office = _unit(db, region, "yfzqb", f"{mark}区委依法治区办", "party", position=1)
    # The same code in both counties: the code alone must never find the other county's unit.
    gaj = _unit(db, region, "gaj", f"{mark}公安分局", "judicial", position=2)
    sfj = _unit(db, region, "sfj", f"{mark}司法局", position=3)
    # The longest unit name the column allows (100 characters).
    long_unit = _unit(db, region, "xz", (f"{mark}八字哨镇人民政府综合行政执法大队" * 10)[:100], "township", position=4)
    people = SimpleNamespace(
        admin=_user(db, region, office, f"{login}_admin", f"{mark}周敏", "admin"),
        reviewer=_user(db, region, office, f"{login}_reviewer", f"{mark}陈立", "reviewer"),
        liaison=_user(db, region, gaj, f"{login}_gaj", f"{mark}冯刚", "liaison"),
        sfj_liaison=_user(db, region, sfj, f"{login}_sfj", f"{mark}张伟", "liaison"),
        long_liaison=_user(db, region, long_unit, f"{login}_xz", f"{mark}谢文", "liaison"),
        unit_head=_user(db, region, gaj, f"{login}_gaj_head", f"{mark}赵强", "unit_head"),
        sfj_head=_user(db, region, sfj, f"{login}_sfj_head", f"{mark}孙丽", "unit_head"),
        xz_head=_user(db, region, long_unit, f"{login}_xz_head", f"{mark}唐悦", "unit_head"),
        leader=_user(db, region, office, f"{login}_leader", f"{mark}刘建国", "leader"),
        # A county's own 督导 has no region below: a sibling county is not below it.
        oversight=_user(db, region, office, f"{login}_oversight", f"{mark}督导", "oversight"),
    )
    return SimpleNamespace(region=region, mark=mark, login=login, office=office, gaj=gaj, sfj=sfj,
                           long_unit=long_unit, units=[office, gaj, sfj, long_unit], people=people)


def _sections(db, cycle, county, codes, reviewer):
    """A top section with one leaf per code; each leaf has an indicator cited in its material."""
    top = Section(cycle=cycle, code="measures", title=f"{county.mark}推进法治政府建设的主要举措和成效",
                  position=1, guidance=f"{county.mark}填报说明")
    top.reviewers = [reviewer]
    db.session.add(top)
    leaves = {}
    for i, code in enumerate(codes, start=1):
        title = f"{county.mark}严格规范公正文明执法（{code}）"
        if i == 1:  # the longest title the column allows (300 characters)
            title = (title + "持续深化行政执法体制改革" * 30)[:300]
        leaf = Section(cycle=cycle, parent=top, code=f"m.{code}", title=title, position=i, run_in=True)
        db.session.add(leaf)
        db.session.flush()
        db.session.add(Indicator(cycle_id=cycle.id, section_id=leaf.id, code=f"cases_{i}",
                                 name=f"{county.mark}行政执法案件数{i}", measure="件", type="integer",
                                 position=i))
        leaves[code] = leaf
    db.session.flush()
    db.session.add(Rule(cycle_id=cycle.id, section_id=leaves[codes[0]].id, expression="cases_1 >= 0",
                        severity="warning", message=f"{county.mark}案件数不应为负"))
    db.session.flush()
    return top, leaves


def _assign(db, cycle, section, unit, role="lead", state="draft", body=""):
    assignment = Assignment(section=section, unit=unit, role=role)
    db.session.add(assignment)
    db.session.flush()
    contribution = Contribution(assignment=assignment, cycle_id=cycle.id, section_id=section.id,
                                unit_id=unit.id, body=body, state=state)
    db.session.add(contribution)
    db.session.flush()
    return contribution


def _drive(db, contribution, county, target, indicator_code):
    """Take a draft through the workflow to ``target`` with figures and an attachment."""
    from fazhi_flow.services import contributions as svc
    from fazhi_flow.services.attachments import add_attachment
    from fazhi_flow.services.figures import save_figures

    p = county.people
    liaison = p.liaison if contribution.unit_id == county.gaj.id else p.sfj_liaison
    head = p.unit_head if contribution.unit_id == county.gaj.id else p.sfj_head
    body = (f"{county.mark}公安分局全年办理行政案件{{{{{indicator_code}}}}}件，"
            f"依法公开执法信息，执法决定法制审核率100%。\n二是{county.mark}推行涉企检查扫码入企。")
    svc.save_draft(contribution, liaison, body)
    save_figures(contribution, liaison, {indicator_code: "1234"})
    add_attachment(contribution, liaison, f"{county.mark}执法统计表.pdf", PDF)
    if target == "draft":
        return
    svc.submit_contribution(contribution, liaison)
    if target == "unit_review":
        return
    svc.unit_approve_contribution(contribution, head, comment=f"{county.mark}同意报送")
    if target == "submitted":
        return
    if target == "returned":
        svc.return_contribution(contribution, p.reviewer, comment=f"{county.mark}请补充执法数据的来源。")
    else:
        svc.approve_contribution(contribution, p.reviewer, comment=f"{county.mark}审核通过")


def _collecting_cycle(db, county, full_name):
    p = county.people
    cycle = ReportCycle(year=2024, region=full_name, owner=county.region, title=f"{full_name}2024年法治政府建设年度报告",
                        due=date.today() + timedelta(days=20), unit_head_review=True,
                        issuers=f"中共{full_name}委员会\n{full_name}人民政府", issue_date=date(2025, 1, 6),
                        state="collecting", opened_at=datetime.utcnow(), publish_deadline=date(2025, 4, 1))
    db.session.add(cycle)
    db.session.flush()
    top, leaves = _sections(db, cycle, county, STATES, p.reviewer)
    contributions, support = {}, {}
    for i, state in enumerate(STATES, start=1):
        contributions[state] = _assign(db, cycle, leaves[state], county.gaj)
        support[state] = _assign(db, cycle, leaves[state], county.sfj, role="support")
    _assign(db, cycle, leaves["draft"], county.long_unit, role="support")
    db.session.flush()
    for i, state in enumerate(STATES, start=1):
        _drive(db, contributions[state], county, state, f"cases_{i}")
    _drive(db, support["submitted"], county, "submitted", "cases_3")
    return SimpleNamespace(cycle=cycle, top=top, sections=leaves, contributions=contributions, support=support)


def _published_cycle(db, county, full_name):
    """2023's report, compiled, signed and published through the services."""
    from fazhi_flow.services import compile as compile_svc
    from fazhi_flow.services.cycles import compile_cycle

    p = county.people
    cycle = ReportCycle(year=2023, region=full_name, owner=county.region, title=f"{full_name}2023年法治政府建设年度报告",
                        due=date(2023, 12, 31), issuers=f"中共{full_name}委员会\n{full_name}人民政府",
                        issue_date=date(2024, 1, 6), state="collecting", opened_at=datetime(2023, 11, 1))
    db.session.add(cycle)
    db.session.flush()
    section = Section(cycle=cycle, code="opening", title=None, position=1)
    section.reviewers = [p.reviewer]
    part = Section(cycle=cycle, code="measures", title=f"{county.mark}主要举措和成效", position=2)
    part.reviewers = [p.reviewer]
    db.session.add_all([section, part])
    db.session.flush()
    for sec, unit, text in ((section, county.office, f"2023年，{county.mark}全区统筹推进法治政府建设。"),
                            (part, county.gaj, f"{county.mark}公安分局办理行政案件812件。")):
        c = _assign(db, cycle, sec, unit, state="approved", body=text)
        db.session.add(Revision(contribution=c, number=1, body=text, author_id=p.liaison.id))
    db.session.flush()
    compile_cycle(cycle, p.admin)
    db.session.flush()
    compile_svc.request_signoff(cycle, p.admin)
    compile_svc.sign_report(cycle, p.leader, compile_svc.latest_version(cycle).number)
    publication = compile_svc.publish_report(cycle, p.admin)
    db.session.flush()
    return SimpleNamespace(cycle=cycle, publication=publication, sections={"opening": section, "measures": part})


def _aux(db, county, work):
    """Robots, an extension request, an inbox notice with a link, a dead outbox message."""
    p = county.people
    c = work.contributions["draft"]
    unit_robot = WebhookTarget(unit_id=county.gaj.id, name=f"{county.mark}公安分局群", kind="wecom",
                               url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + county.login)
    cycle_robot = WebhookTarget(cycle_id=work.cycle.id, name=f"{county.mark}年度报告群", kind="dingtalk",
                                url="https://oapi.dingtalk.com/robot/send?access_token=" + county.login,
                                secret="SEC" + county.login)
    request = ExtensionRequest(assignment_id=work.support["draft"].assignment_id, requested_by_id=p.sfj_liaison.id,
                               reason=f"{county.mark}数据需等待市局反馈", current_due=work.cycle.due,
                               requested_due=work.cycle.due + timedelta(days=10), status="pending")
    notice = Notification(user_id=p.liaison.id, kind="returned", title=f"{county.mark}材料已退回",
                          body=f"{county.mark}请补充执法数据的来源。", link=f"/tasks/{work.contributions['returned'].id}")
    admin_notice = Notification(user_id=p.admin.id, kind="other", title=f"{county.mark}申请延期",
                                link="/reminders/extensions")
    db.session.add_all([unit_robot, cycle_robot, request, notice, admin_notice])
    db.session.flush()
    dead = OutboxMessage(channel="email", user_id=p.liaison.id, address=p.liaison.email,
                         subject=f"{county.mark}催报提醒", body=f"{county.mark}请尽快提交材料。", cause="reminder",
                         contribution_id=c.id, status="dead", attempts=5, last_error="550 mailbox unavailable")
    robot_dead = OutboxMessage(channel="webhook", webhook_id=unit_robot.id, address=unit_robot.url,
                               subject=f"{county.mark}群提醒", body=f"{county.mark}请尽快提交材料。",
                               payload={"msgtype": "text"}, cause="reminder", status="dead", attempts=5)
    db.session.add_all([dead, robot_dead])
    db.session.flush()
    from fazhi_flow.api.tokens import create_token

    # A personal access token of the liaison: the token page's revoke takes its id.
    token, _ = create_token(p.liaison, f"{county.mark}台账同步", "read", 30)
    # A delegation (委托) of the reviewer, starting later (so it changes nobody's rights here): the
    # delegation page's revoke takes its id.
    from fazhi_flow.models import Delegation
    from fazhi_flow.timeutil import utcnow

    starts = utcnow().replace(microsecond=0) + timedelta(days=20)
    delegation = Delegation(delegator_id=p.reviewer.id, substitute_id=p.leader.id, starts_at=starts,
                            ends_at=starts + timedelta(days=10), reason=f"{county.mark}外出学习",
                            created_by_id=p.reviewer.id)
    db.session.add(delegation)
    db.session.flush()
    return SimpleNamespace(unit_robot=unit_robot, cycle_robot=cycle_robot, request=request, notice=notice,
                           outbox=dead, robot_outbox=robot_dead, token=token, delegation=delegation)


def build_world(db):
    """The whole world, committed. Returns a namespace: city, a (赫山区), b (资阳区)."""
    city = Region(code="430900", name="益阳市", level="city")
    db.session.add(city)
    db.session.flush()
    a = _county(db, city, "430903", "赫山区", A_MARK, A_LOGIN)
    b = _county(db, city, "430902", "资阳区", B_MARK, B_LOGIN)
    city_office = _unit(db, city, "yfzsb", "市委依法治市办", "party")
    city_people = SimpleNamespace(
        admin=_user(db, city, city_office, "ys_admin", "益阳市管理员", "admin"),
        oversight=_user(db, city, city_office, "ys_oversight", "益阳市督导", "oversight"),
        sysadmin=_user(db, city, None, "ys_sysadmin", "系统管理员", "sysadmin"),
    )
    for county, full in ((a, "益阳市赫山区"), (b, "益阳市资阳区")):
        county.work = _collecting_cycle(db, county, full)
        county.published = _published_cycle(db, county, full)
        county.aux = _aux(db, county, county.work)
    db.session.commit()
    return SimpleNamespace(city=city, city_office=city_office, city_people=city_people, a=a, b=b)


# ---------------------------------------------------------------- what belongs to a region, row by row


def _plain(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value if value is None or isinstance(value, (int, str, bool)) else str(value)


def region_rows(db, region_id: int) -> dict[str, dict]:
    """Every row that belongs to the region or points at one that does (followed through foreign keys
    until nothing more is found), with all its columns: ``{table: {primary key: row}}``.

    A row of another region that refers to this region's unit, user or cycle is included, so a
    cross-region link made by someone else shows up as a new row here.
    """
    tables = db.metadata.sorted_tables
    contents = {}
    # Read in the session's own transaction: on SQLite a second connection would wait for its lock.
    for table in tables:
        rows = db.session.execute(table.select()).mappings().all()
        pk = [c.name for c in table.primary_key.columns]
        contents[table.name] = {tuple(r[k] for k in pk): r for r in rows}
    db.session.commit()
    owned: dict[str, set] = {t.name: set() for t in tables}
    owned["region"] = {(region_id,)}
    changed = True
    while changed:
        changed = False
        for table in tables:
            fks = [(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys]
            for key, row in contents[table.name].items():
                if key in owned[table.name]:
                    continue
                if table.name == "region":
                    continue  # a region below is not the region's own row
                if any(row[col] is not None and (row[col],) in owned[target] for col, target in fks):
                    owned[table.name].add(key)
                    changed = True
    snapshot = {name: {"|".join(map(str, key)): {k: _plain(v) for k, v in contents[name][key].items()}
                       for key in sorted(keys, key=str)}
                for name, keys in owned.items() if keys}
    # The attachments' bytes live outside the tables (a folder, or the blob table): byte for byte too.
    from fazhi_flow.services.attachments import read_bytes

    snapshot["attachment bytes"] = {key: {"sha256": _plain(read_bytes(row["stored_name"]))}
                                    for key, row in snapshot.get("attachment", {}).items()}
    return snapshot


def row_changes(before: dict, after: dict) -> list[str]:
    """Readable differences between two ``region_rows`` snapshots."""
    out = []
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, {}), after.get(table, {})
        for key in sorted(set(old) | set(new)):
            if key not in old:
                out.append(f"{table} {key}: new row {new[key]}")
            elif key not in new:
                out.append(f"{table} {key}: removed")
            elif old[key] != new[key]:
                cols = [c for c in old[key] if old[key][c] != new[key].get(c)]
                out.append(f"{table} {key}: " + ", ".join(f"{c} {old[key][c]!r} -> {new[key].get(c)!r}" for c in cols))
    return out


def user_by_name(db, username):
    return db.session.scalar(select(User).where(User.username == username))


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()
