"""Walk the demo as every role, following every link: no page fails, no unit sees another's material.

This is the check a new user makes by clicking around: it loads the real demo data, logs in through
the login form and follows each same-site link (GET only, so nothing changes) up to a limit.
"""
import re
from collections import deque
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from sqlalchemy import select

from fazhi_flow.models import Attachment, Contribution, User
from fazhi_flow.testing import demo_client

LINK = re.compile(r'href="([^"#][^"]*)"')
SKIP = ("/static/", "/logout", ".xlsx", ".docx", ".pdf", ".txt")
PAGE_LIMIT = 120


def _crawl(client, start="/"):
    seen, queue, problems = set(), deque([start]), []
    while queue and len(seen) < PAGE_LIMIT:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        body = response.get_data(as_text=True)
        if response.status_code >= 500 or "Traceback" in body:
            problems.append((path, response.status_code))
            continue
        if response.status_code in (301, 302, 303):
            target = urlparse(response.headers["Location"]).path
            queue.append(target)
            continue
        if not response.mimetype == "text/html":
            continue
        for href in LINK.findall(body):
            url = urldefrag(urljoin(path, href.replace("&amp;", "&")))[0]
            parsed = urlparse(url)
            if parsed.netloc and parsed.netloc != "localhost":
                continue
            local = parsed.path + (f"?{parsed.query}" if parsed.query else "")
            if not any(s in local for s in SKIP) and local not in seen:
                queue.append(local)
    return seen, problems


@pytest.mark.parametrize("username", ["admin", "reviewer", "reviewer2", "leader", "sfj", "sfj_head", "gaj"])
def test_every_reachable_page_renders(app, demo, username):
    client = demo_client(app, username)
    seen, problems = _crawl(client)
    assert not problems, problems
    assert len(seen) > 5, seen  # the walk really went somewhere


def test_public_pages_render_without_login(app, demo):
    client = demo_client(app, None)
    seen, problems = _crawl(client, "/reports/")
    assert not problems, problems


def test_a_liaison_cannot_open_other_units_material(app, db, demo):
    liaison = db.session.scalar(select(User).where(User.username == "gaj"))
    client = demo_client(app, "gaj")
    others = db.session.scalars(select(Contribution).where(Contribution.unit_id != liaison.unit_id)).all()
    assert others
    for contribution in others:
        for path in (f"/tasks/{contribution.id}", f"/tasks/{contribution.id}/history",
                     f"/figures/contribution/{contribution.id}", f"/review/{contribution.id}"):
            response = client.get(path)
            assert response.status_code in (403, 404), (path, response.status_code)
            if contribution.body:
                assert contribution.body[:12] not in response.get_data(as_text=True)
    for attachment in db.session.scalars(select(Attachment)):
        assert client.get(f"/tasks/attachments/{attachment.id}").status_code in (403, 404)
