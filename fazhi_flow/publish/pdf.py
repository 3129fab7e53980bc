"""PDF rendered on the server from the report's HTML and print stylesheet, with WeasyPrint.

WeasyPrint needs the pango library from the operating system. When either is missing the rest of the
system keeps working and :class:`PdfUnavailable` says, in Chinese, what to install.
"""
from __future__ import annotations

import logging

from ..errors import DomainError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "服务器暂时无法生成 PDF：缺少 WeasyPrint 或其依赖的 pango 库。"
    "请在服务器上安装 PDF 组件（pip install 'fazhi-flow[pdf]'，即 pip install weasyprint），并安装系统软件包"
    "（Debian/Ubuntu：sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk "
    "fonts-arphic-ukai）。DOCX、HTML 和纯文本不受影响。"
)


class PdfUnavailable(DomainError):
    status = 503

    def __init__(self, detail: str = ""):
        super().__init__(INSTALL_HINT)
        self.detail = detail


def _weasyprint():
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: the pango shared library is missing
        raise PdfUnavailable(str(exc)) from None
    return weasyprint


def pdf_available() -> bool:
    try:
        _weasyprint()
    except PdfUnavailable:
        return False
    return True


def render_pdf(html: str) -> bytes:
    """Render a complete HTML document (with its print stylesheet) to PDF bytes.

    :raise PdfUnavailable: WeasyPrint or pango is not installed.
    """
    weasyprint = _weasyprint()
    # No base URL: the report's HTML is self-contained and must never fetch anything.
    return weasyprint.HTML(string=html, base_url=None).write_pdf()
