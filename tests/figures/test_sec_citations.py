"""Citations never leak: a liaison citing another unit's figure (``{{code}}`` or ``{{sum(code)}}``) in its
own draft sees only what it may see — its own unit's values, other units' only once approved and only
when the cycle shares approved figures. Every page the liaison can reach is checked, the refusal of
提交审核 too, and "不存在的指标" reads the same for a code that exists elsewhere and one that does not."""
import re
from collections import deque
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from fazhi_flow.services import contributions as C
from fazhi_flow.services import figures as F

from .conftest import build_seed_world, good_values

SECRET = "777777"
LINK = re.compile(r'href="([^"#][^"]*)"')
SKIP = ("/static/", "/logout")
BODY = "全区入企检查{{sum(inspections)}}次，司法局{{inspections_total}}次，本镇{{inspections}}次。"
PROBE = "调委会{{med_total}}个，{{no_such_code}}。"


def secret_forms(value: str) -> list[str]:
    return [value, f"{int(value):,}"]


def crawl(client, starts, limit=150):
    """Every page reachable from ``starts`` by links (GET only): path → (status, body)."""
    seen, queue = {}, deque(starts)
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen:
            continue
        response = client.get(path)
        body = response.get_data(as_text=True) if response.mimetype.startswith(("text/", "application/json")) \
            else response.get_data().decode("latin-1")
        seen[path] = (response.status_code, body)
        if response.status_code in (301, 302, 303):
            queue.append(urlparse(response.headers["Location"]).path)
            continue
        for href in LINK.findall(body if response.mimetype == "text/html" else ""):
            parsed = urlparse(urldefrag(urljoin(path, href.replace("&amp;", "&")))[0])
            local = parsed.path + (f"?{parsed.query}" if parsed.query else "")
            if not parsed.netloc and not any(s in local for s in SKIP):
                queue.append(local)
    return seen


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def leaks(pages: dict, secrets) -> list:
    return [(path, s) for path, (_, body) in pages.items() for s in secrets if s in body]


@pytest.fixture()
def world(db, factory):
    """八字哨镇 cites the district's figures; 龙光桥街道 and 区司法局 have just saved 777777 as drafts."""
    world = build_seed_world(db, factory, values=good_values())
    town = world.contribution_of("town_a", "enforce")
    C.save_draft(town, world.liaisons["town_a"], BODY)
    C.submit_contribution(town, world.liaisons["town_a"])  # a revision, so the history renders figures
    C.recall_contribution(town, world.liaisons["town_a"])
    C.save_draft(town, world.liaisons["town_a"], BODY + PROBE)
    F.save_figures(world.contribution_of("town_b", "enforce"), world.liaisons["town_b"], {"inspections": SECRET})
    F.save_figures(world.contribution_of("sfj", "enforce"), world.liaisons["sfj"], {"inspections_total": SECRET})
    db.session.commit()
    world.town = town
    return world


def liaison_pages(world, login):
    client = login(world.liaisons["town_a"])
    c = world.town.id
    pages = crawl(client, ["/", "/tasks/", f"/tasks/{c}", f"/tasks/{c}/submit", f"/tasks/{c}/history",
                           f"/figures/contribution/{c}", f"/figures/contribution/{c}/checks"])
    refused = client.post(f"/tasks/{c}/submit", data={"version": str(world.town.version)}, follow_redirects=True)
    pages["POST submit"] = (refused.status_code, refused.get_data(as_text=True))
    return pages


def test_other_units_drafts_never_reach_the_liaisons_pages(world, login):
    pages = liaison_pages(world, login)
    assert len(pages) > 8
    assert not [p for p, (status, _) in pages.items() if status >= 500]
    assert not leaks(pages, secret_forms(SECRET) + secret_forms("780589") + ["3812"])
    for page in (f"/tasks/{world.town.id}/submit", f"/figures/contribution/{world.town.id}"):
        assert "全区入企检查〔待汇总〕次，司法局〔待汇总〕次，本镇1312次。" in text(pages[page][1]), page


def test_a_code_of_another_section_reads_like_a_code_that_does_not_exist(world, login):
    pages = liaison_pages(world, login)
    preview = text(pages[f"/tasks/{world.town.id}/submit"][1])
    assert "调委会〔待汇总〕个，〔待汇总〕。" in preview
    notes = re.findall(r"正文引用的“\{\{(\w+)\}\}”不是本单位填报章节的指标，预览中显示为“〔待汇总〕”",
                       text(pages[f"/figures/contribution/{world.town.id}"][1]))
    assert notes == ["med_total", "no_such_code"]
    assert not leaks(pages, ["调委会总数", "不存在的指标"])  # neither the other section's name nor a verdict


def test_the_reviewer_still_sees_a_mistyped_code(world, login):
    page = login(world.reviewer).get(f"/figures/contribution/{world.town.id}").get_data(as_text=True)
    assert "正文引用了不存在的指标“{{no_such_code}}”" in page and "{{med_total}}”，请删除" not in page
    assert "【未知指标：no_such_code】" in text(page)


def test_the_office_keeps_seeing_every_value(world, login):
    page = login(world.admin).get(f"/figures/contribution/{world.town.id}").get_data(as_text=True)
    assert "780589" in page and SECRET in page and "〔待汇总〕" not in page


def test_approved_figures_are_seen_only_when_the_cycle_shares_them(db, factory, login):
    world = build_seed_world(db, factory, values=good_values())
    for unit in ("sfj", "town_b"):
        contribution = world.contribution_of(unit, "enforce")
        C.save_draft(contribution, world.liaisons[unit], "开展入企检查。")
        C.submit_contribution(contribution, world.liaisons[unit])
        C.approve_contribution(contribution, world.reviewer)
    town = world.contribution_of("town_a", "enforce")
    C.save_draft(town, world.liaisons["town_a"], BODY)
    db.session.commit()
    client = login(world.liaisons["town_a"])
    page = f"/figures/contribution/{town.id}"
    shown = "全区入企检查〔待汇总〕次，司法局〔待汇总〕次，本镇1312次。"
    assert shown in text(client.get(page).get_data(as_text=True))

    world.cycle.share_approved_figures = True
    db.session.commit()
    assert "全区入企检查3812次，司法局3812次，本镇1312次。" in text(client.get(page).get_data(as_text=True))

    # Reopened and changed: the liaison still sees the approved number, never the new draft.
    town_b = world.contribution_of("town_b", "enforce")
    C.reopen_contribution(town_b, world.admin, comment="核对")
    F.save_figures(town_b, world.liaisons["town_b"], {"inspections": SECRET})
    db.session.commit()
    pages = crawl(login(world.liaisons["town_a"]), ["/", f"/tasks/{town.id}", page])
    assert not leaks(pages, secret_forms(SECRET))
    assert "全区入企检查3812次" in text(pages[page][1])


def test_a_published_cycle_shows_its_approved_figures_but_never_a_later_draft(db, factory):
    from fazhi_flow.figures.evaluate import FigureBook
    from fazhi_flow.figures.visibility import PLACEHOLDER, Visibility

    world = build_seed_world(db, factory, values=good_values())
    lead = world.contribution_of("sfj", "enforce")
    C.save_draft(lead, world.liaisons["sfj"], "开展入企检查。")
    C.submit_contribution(lead, world.liaisons["sfj"])
    C.approve_contribution(lead, world.reviewer)
    town = world.contribution_of("town_a", "enforce")
    seen = Visibility(FigureBook(world.cycle), world.liaisons["town_a"])
    assert seen.values_for_text(town, BODY)["inspections_total"] == PLACEHOLDER
    world.cycle.state = "published"  # last year's report, as the editor's side panel reads it
    row = next(r for (cid, _), r in FigureBook(world.cycle).values.items()
               if cid == lead.id and r.indicator.code == "inspections_total")
    row.value = int(SECRET)  # a later, unapproved change stays hidden
    db.session.flush()
    seen = Visibility(FigureBook(world.cycle), world.liaisons["town_a"])
    assert seen.values_for_text(town, BODY)["inspections_total"] == 3812
