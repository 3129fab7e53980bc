"""Before signing a correction the leader sees the SHA-256 of the plain text that signing publishes;
it is the published text hash afterwards. Word and PDF digests are only known after publishing."""
import re

from fazhi_flow.services import compile as svc
from fazhi_flow.testing import login

from .test_correction_signed import NOTE, _edit_enforcement, _seen, published  # noqa: F401 - fixture

LATER = "Word、PDF 文件的校验值在发布后生成"


def _shown_hash(html: str) -> str:
    found = re.findall(r"签发后发布的纯文本版 SHA-256：<code class=\"sha\">([0-9a-f]{64})</code>", html)
    assert len(found) == 1, html
    return found[0]


def test_the_leader_signs_the_text_hash_that_is_published(published, db):  # noqa: F811 - fixture
    cycle, client = published.cycle, published.client
    first = svc.latest_publication(cycle)
    login(client, published.leader)
    assert LATER not in client.get(f"/compile/{cycle.id}/signoff").get_data(as_text=True)
    _edit_enforcement(published)
    svc.request_correction(cycle, published.admin, NOTE, **_seen(published))
    db.session.commit()

    html = client.get(f"/compile/{cycle.id}/signoff").get_data(as_text=True)
    shown = _shown_hash(html)
    assert LATER in html and shown != first.text_sha256
    response = client.post(f"/compile/{cycle.id}/sign", data={"version": svc.latest_version(cycle).number})
    assert response.status_code == 303
    second = svc.latest_publication(cycle)
    assert second.version == 2 and second.text_sha256 == shown and second.verify()
