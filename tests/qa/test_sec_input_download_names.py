"""Bidi controls (U+202E shows "fdp.exe" as "exe.pdf") typed into cycle titles and regions never reach
a download's file name (Content-Disposition)."""
import re
from urllib.parse import unquote

import pytest

from fazhi_flow.services.compile import download_name

HOSTILE_TITLE = "2024年\u202eexe.fdp\u202c法治\u2066政府\u200f建设\u2069报告"
HOSTILE_REGION = "测试\u2067区\u200e"


def _file_name(response) -> str:
    header = response.headers["Content-Disposition"]
    match = re.search(r"filename\*=UTF-8''([^;]+)", header)
    return unquote(match.group(1)) if match else re.search(r'filename="?([^";]+)', header).group(1)


def _assert_clean(name: str):
    assert not re.search(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069\x00-\x1f\x7f]", name), ascii(name)


@pytest.fixture()
def hostile_cycle(world, db):
    world.cycle.title = HOSTILE_TITLE
    world.cycle.region = HOSTILE_REGION
    world.cycle.state = "compiling"
    db.session.commit()
    return world


def test_draft_download_name_has_no_bidi_or_control_characters(as_user, hostile_cycle):
    client = as_user(hostile_cycle.admin)
    for fmt in ("txt", "html", "docx"):
        response = client.get(f"/compile/{hostile_cycle.cycle.id}/draft.{fmt}")
        assert response.status_code == 200
        name = _file_name(response)
        _assert_clean(name)
        assert name.startswith("测试区2024年exe.fdp法治政府建设报告") and name.endswith(f".{fmt}"), name


def test_figure_summary_download_name_is_clean(as_user, hostile_cycle):
    response = as_user(hostile_cycle.admin).get(f"/figures/cycle/{hostile_cycle.cycle.id}/summary.xlsx")
    assert response.status_code == 200
    _assert_clean(_file_name(response))


def test_published_name_is_made_clean_too():
    from fazhi_flow.models import Publication

    publication = Publication(version=2, title=HOSTILE_TITLE, region=HOSTILE_REGION)  # not stored
    name = download_name(publication, "pdf")
    _assert_clean(name)
    assert name == "测试区2024年exe.fdp法治政府建设报告（第2版）.pdf"
