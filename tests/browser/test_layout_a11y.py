"""Every role's main pages on the demo data, in a real browser, on a phone (390 × 844, the pages of
liaisons, unit heads, reviewers and the public) and on a laptop (1366 × 768, every page): nothing is wider than
the screen, the page's main actions can be seen and reached, and axe-core finds no serious or
critical accessibility violation.

axe-core comes from the npm registry and is used by these tests only (it is not part of the
package): FAZHI_AXE_JS names axe.min.js, or a folder holding node_modules/axe-core/axe.min.js
(.ci/run installs it so). Without it the tests are skipped with the reason; with CI=true they fail.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from fazhi_flow.models import Assignment, Contribution, Section, Unit, User

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
BOTH = (PHONE, LAPTOP)  # the pages of liaisons, unit heads, reviewers and the public
WIDE = (LAPTOP,)        # the others
# 我的任务: each row's 状态, 截止日期 and 填写/修改/查看 must be in sight.
TASK_ROW = ["tbody td:nth-child(3) .badge", "tbody td:nth-child(4)", "tbody td:last-child a.btn"]
IN_CI = os.environ.get("CI", "").lower() == "true"
AXE_ENV = "FAZHI_AXE_JS"


def _axe_path() -> Path | None:
    named = os.environ.get(AXE_ENV, "").strip()
    if not named:
        return None
    path = Path(named).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / "axe.min.js", path / "node_modules" / "axe-core" / "axe.min.js"):
            if candidate.is_file():
                return candidate
        found = sorted(path.glob("**/node_modules/axe-core/axe.min.js"))
        if found:
            return found[0]
    return None


@pytest.fixture(scope="module")
def axe_source() -> str:
    path = _axe_path()
    if path is None:
        named = os.environ.get(AXE_ENV, "").strip()
        reason = (f"axe-core not found{f' at {AXE_ENV}={named}' if named else ''}: set {AXE_ENV} to "
                  "axe.min.js or to a folder where `npm install --prefix <folder> axe-core@4` put it")
        if IN_CI:
            pytest.fail(f"CI=true but the accessibility checks cannot run: {reason}")
        pytest.skip(reason)
    return path.read_text(encoding="utf-8")


# Everything that sticks out on the right of the viewport, except what lies inside a region that is
# meant to scroll sideways (overflow-x auto/scroll, focusable, named) and what is hidden on purpose.
OVERFLOW_JS = """
() => {
  const width = window.innerWidth;
  const problems = [];
  const scroller = document.scrollingElement;
  if (scroller.scrollWidth > width) {
    problems.push(`the page scrolls sideways: ${scroller.scrollWidth}px wide in ${width}px`);
  }
  const inScrollRegion = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (["auto", "scroll"].includes(style.overflowX) && p.tabIndex >= 0
          && (p.getAttribute("aria-label") || p.getAttribute("aria-labelledby"))) return true;
    }
    return false;
  };
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += "#" + el.id;
    if (el.classList.length) name += "." + [...el.classList].join(".");
    const text = (el.innerText || el.value || "").trim().replace(/\\s+/g, " ").slice(0, 30);
    return text ? `${name} "${text}"` : name;
  };
  // Text for screen readers only sits in a 1 × 1 px clipped box (.sr-only, a phone's table headings).
  const visuallyHidden = (el) => {
    for (let p = el; p && p !== document.body; p = p.parentElement) {
      const box = p.getBoundingClientRect();
      if (box.width <= 1 && box.height <= 1 && getComputedStyle(p).overflow === "hidden") return true;
    }
    return false;
  };
  // Name only the outermost element that sticks out, not each of its descendants.
  const sticksOut = (el) => el && el !== document.body && el.getBoundingClientRect().right > width + 0.5;
  for (const el of document.body.querySelectorAll("*")) {
    const overflowX = getComputedStyle(el).overflowX;
    if (["auto", "scroll"].includes(overflowX) && el.scrollWidth > el.clientWidth + 1
        && !(el.tabIndex >= 0 && (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")))) {
      problems.push(`${describe(el)} scrolls sideways (${el.scrollWidth}px in ${el.clientWidth}px) but cannot be focused or has no name`);
    }
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    if (visuallyHidden(el)) continue;
    if (box.right > width + 0.5 && !inScrollRegion(el) && !sticksOut(el.parentElement)) {
      problems.push(`${describe(el)} reaches ${Math.round(box.right)}px`);
    }
  }
  return problems;
}
"""

# Can a person see the element: on screen once scrolled to, and not hidden under or clipped by
# something else (elementFromPoint at its centre is the element or inside it).
VISIBLE_JS = """
(el) => {
  // Scroll the page vertically only: a person does not scroll a table sideways to find a button.
  const top = el.getBoundingClientRect().top;
  window.scrollTo(0, window.scrollY + top - window.innerHeight / 2);
  const box = el.getBoundingClientRect();
  if (box.width === 0 || box.height === 0) return "has no size";
  if (box.left < 0 || box.right > window.innerWidth + 0.5) {
    return `lies at ${Math.round(box.left)}–${Math.round(box.right)}px, outside 0–${window.innerWidth}px`;
  }
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  if (!hit || !(hit === el || el.contains(hit))) return "is covered or clipped";
  return "";
}
"""

# Text fields are styled like the rest (an <input> without a type once rendered as a tiny browser
# default box, 21 px high): at least 36 px high, so they can be read and tapped.
SMALL_FIELDS_JS = """
() => [...document.querySelectorAll("input, select, textarea")]
  .filter((el) => !["hidden", "checkbox", "radio", "submit", "button", "reset", "image"].includes(el.type))
  .filter((el) => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0 && b.height < 36; })
  .map((el) => `field ${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} is ${Math.round(el.getBoundingClientRect().height)}px high`)
"""

# axe-core rates an empty table heading "minor", but a screen reader then names the column with
# nothing; it is held to the same standard as the serious and critical rules.
AXE_RUN_JS = """
async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical" || v.id === "empty-table-header")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ` +
                v.nodes.slice(0, 4).map((n) => n.target.join(" ")).join(" | ") +
                (v.nodes.length > 4 ? ` … (${v.nodes.length} in all)` : ""));
}
"""


class Visitor:
    """One person in their own browser context, checking pages at the sizes asked for."""

    def __init__(self, browser, base_url, axe_source, shots: Path, username: str | None, password: str):
        self.context = browser.new_context(base_url=base_url, locale="zh-CN", viewport=LAPTOP)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.page.on("dialog", lambda dialog: dialog.dismiss())
        self.axe_source, self.shots, self.username = axe_source, shots, username or "anonymous"
        self.problems: list[str] = []
        self.checked = 0
        if username:
            self.page.goto("/login")
            self.page.fill("#username", username)
            self.page.fill("#password", password)
            self.page.click("button:has-text('登录')")
            self.page.wait_for_load_state()
            assert "/login" not in self.page.url, f"{username} could not log in"

    def check(self, name: str, path: str, sizes, actions=()):
        """Open ``path`` at each size; ``actions`` are selectors (each must match at least one element)
        of the page's main actions and facts, which must be visible on the screen."""
        page = self.page
        for size in sizes:
            page.set_viewport_size(size)
            response = page.goto(path)
            assert response is not None and response.status == 200, f"{self.username} {path}: {response and response.status}"
            page.wait_for_load_state()
            where = f"{self.username} {name} ({path}) at {size['width']}×{size['height']}"
            page.screenshot(path=str(self.shots / f"{self.username}-{name}-{size['width']}.png"), full_page=True)
            self.problems += [f"{where}: {p}" for p in page.evaluate(OVERFLOW_JS)]
            for selector in actions:
                located = page.locator(selector)
                if located.count() == 0:
                    self.problems.append(f"{where}: no {selector}")
                    continue
                for i in range(min(located.count(), 3)):
                    verdict = located.nth(i).evaluate(VISIBLE_JS)
                    if verdict:
                        self.problems.append(f"{where}: {selector} #{i + 1} {verdict}")
            self.problems += [f"{where}: {p}" for p in page.evaluate(SMALL_FIELDS_JS)]
            page.evaluate(self.axe_source)
            self.problems += [f"{where}: {v}" for v in page.evaluate(AXE_RUN_JS)]
            self.checked += 1

    def close(self):
        self.context.close()


@pytest.fixture()
def visit(browser, live_server, db, axe_source, tmp_path):
    from fazhi_flow.services.demo import DEMO_PASSWORD

    visitors = []

    def _visit(username: str | None) -> Visitor:
        db.session.commit()  # the browser writes (logins); SQLite must not be locked by this session
        v = Visitor(browser, live_server, axe_source, tmp_path, username, DEMO_PASSWORD)
        visitors.append(v)
        return v

    yield _visit
    for v in visitors:
        v.close()


def _contribution(db, cycle, section_code: str, unit_code: str) -> int:
    return db.session.scalar(
        select(Contribution.id).join(Assignment).join(Section).join(Unit, Unit.id == Assignment.unit_id)
        .where(Section.cycle_id == cycle.id, Section.code == section_code, Unit.code == unit_code))


def _report(visitors) -> None:
    problems = [p for v in visitors for p in v.problems]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert all(v.checked for v in visitors)


def _awaiting_unit_head(db, cycle) -> int:
    """The district turns on unit-head review; the 区司法局's approved enforcement material is reopened
    by the admin and submitted again by its liaison, so it waits for the unit head (同意报送)."""
    from fazhi_flow.services import contributions as svc

    cycle.unit_head_review = True
    contribution = db.session.get(Contribution, _contribution(db, cycle, "measures.enforcement", "sfj"))
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    liaison = db.session.scalar(select(User).where(User.username == "sfj"))
    svc.reopen_contribution(contribution, admin, comment="请补充2024年第四季度行政执法公示数据。")
    svc.submit_contribution(contribution, liaison)
    assert contribution.state == "unit_review"
    return contribution.id


def test_liaison_and_unit_head_pages_fit_a_phone(demo, db, visit):
    returned = _contribution(db, demo, "measures.business", "gaj")
    assignment = db.session.get(Contribution, returned).assignment_id
    awaiting = _awaiting_unit_head(db, demo)
    db.session.commit()

    sfj = visit("sfj")
    sfj.check("tasks", "/tasks/", BOTH, actions=TASK_ROW)
    gaj = visit("gaj")
    gaj.check("tasks", "/tasks/", BOTH, actions=TASK_ROW)
    gaj.check("editor", f"/tasks/{returned}", BOTH,
              actions=["textarea#body", "button:has-text('保存草稿')", "button:has-text('提交审核')"])
    gaj.check("figures", f"/figures/contribution/{returned}", BOTH,
              actions=["button:has-text('保存统计数据')"])
    gaj.check("confirm", f"/tasks/{returned}/submit", BOTH, actions=["button:has-text('确认提交审核')"])
    gaj.check("history", f"/tasks/{returned}/history", BOTH)
    gaj.check("inbox", "/inbox/", BOTH)
    gaj.check("progress", "/dashboard/", BOTH)  # 本单位填报进度: the matrix may scroll, inside its frame
    gaj.check("word-import", f"/figures/contribution/{returned}/import", BOTH)
    gaj.check("extension-request", f"/reminders/assignments/{assignment}/extension", BOTH)
    gaj.check("extensions", "/reminders/my-extensions", BOTH)
    gaj.check("channels", "/reminders/my-channels", BOTH)
    gaj.check("password", "/password", BOTH)
    head = visit("sfj_head")
    head.check("unit-queue", "/tasks/unit-queue", BOTH, actions=["tbody a:has-text('审核')"])
    head.check("unit-review", f"/tasks/{awaiting}/unit-review", BOTH,
               actions=["button:has-text('同意报送')", "button:has-text('退回修改')"])
    head.check("inbox", "/inbox/", BOTH)
    _report([sfj, gaj, head])


def test_reviewer_and_admin_pages_fit_a_laptop(demo, db, visit):
    submitted = _contribution(db, demo, "measures.business", "jcy")
    cycle_id = demo.id
    db.session.commit()

    reviewer = visit("reviewer")
    reviewer.check("queue", "/review/", BOTH, actions=["tbody a:has-text('审核')"])
    reviewer.check("review", f"/review/{submitted}", BOTH,
                   actions=["button:has-text('通过')", "button:has-text('退回修改')"])
    # On a phone the column headings are hidden; 全选, one of them, shows itself when tabbed to.
    page = reviewer.page
    page.set_viewport_size(PHONE)
    page.goto("/review/")
    page.focus("input[data-check-all]")
    assert page.locator("input[data-check-all]").evaluate(VISIBLE_JS) == ""
    admin = visit("admin")
    admin.check("dashboard", f"/dashboard/?cycle={cycle_id}", WIDE)
    admin.check("cycles", "/admin/cycles", WIDE)
    admin.check("cycle", f"/admin/cycles/{cycle_id}", WIDE)
    admin.check("outline", f"/admin/cycles/{cycle_id}/outline", WIDE)
    admin.check("people", "/admin/users", WIDE)
    admin.check("compile", "/compile/", WIDE)
    _report([reviewer, admin])


def _approve_everything(db, cycle) -> None:
    """Take every contribution of the demo to 通过, as its liaison and reviewer would."""
    from fazhi_flow.services import contributions as svc

    for contribution in db.session.scalars(select(Contribution).where(
            Contribution.cycle_id == cycle.id, Contribution.state != "approved")):
        liaison = db.session.scalar(select(User).join(User.role_rows).where(
            User.unit_id == contribution.unit_id, User.role_rows.any(role="liaison")))
        if not (contribution.body or "").strip():
            svc.save_draft(contribution, liaison, f"{contribution.unit.name}全年认真落实本项工作，取得明显成效。")
        if contribution.state in ("draft", "returned"):
            svc.submit_contribution(contribution, liaison)
        svc.approve_contribution(contribution, contribution.section.effective_reviewers()[0])
    db.session.flush()


def test_signoff_and_public_report_fit(demo, db, visit):
    from fazhi_flow.services import compile as compile_ops
    from fazhi_flow.services.cycles import compile_cycle

    admin_user = db.session.scalar(select(User).where(User.username == "admin"))
    leader_user = db.session.scalar(select(User).where(User.username == "leader"))
    _approve_everything(db, demo)
    compile_cycle(demo, admin_user)
    compile_ops.set_appendix(demo, admin_user, True)  # the report ends with its indicator table
    compile_ops.request_signoff(demo, admin_user, comment="请审阅第1稿，重点看第二部分的统计数据。")
    cycle_id = demo.id
    db.session.commit()

    admin = visit("admin")
    admin.check("compile-edit", f"/compile/{cycle_id}", WIDE)
    leader = visit("leader")
    leader.check("signoff", f"/compile/{cycle_id}/signoff", WIDE,
                 actions=["button:has-text('签发')", "button:has-text('退回')"])

    compile_ops.sign_report(demo, leader_user, compile_ops.latest_version(demo).number)
    publication = compile_ops.publish_report(demo, admin_user)
    publication_id = publication.id
    db.session.commit()

    public = visit(None)
    public.check("login", "/login", BOTH, actions=["button:has-text('登录')"])
    public.check("reports", "/reports/", BOTH)
    public.check("report", f"/reports/{publication_id}", BOTH)
    _report([admin, leader, public])
