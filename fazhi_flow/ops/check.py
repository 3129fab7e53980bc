"""``fazhi-flow check``: verify a deployment's configuration, one line per item with what to do.

Each item is OK, 警告 (works, but not as a production deployment should) or 错误 (something will
fail: the command then exits with status 1). The command builds the application itself instead of
relying on the CLI's app loading, so that a configuration the application refuses to start with
(a weak secret key, a database URL it cannot use) is still reported item by item, not as a traceback.
"""
from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import click

from .clickutil import PlainCommand

OK, WARNING, ERROR = "OK", "警告", "错误"
_COLORS = {OK: "green", WARNING: "yellow", ERROR: "red"}
DEFAULT_TIMEOUT = 5


@dataclass
class Item:
    level: str
    name: str
    text: str

    def line(self) -> str:
        return f"[{self.level}] {self.name}：{self.text}"


class Report:
    def __init__(self):
        self.items: list[Item] = []

    def add(self, level: str, name: str, text: str) -> None:
        self.items.append(Item(level, name, text))

    @property
    def errors(self) -> int:
        return sum(item.level == ERROR for item in self.items)

    @property
    def warnings(self) -> int:
        return sum(item.level == WARNING for item in self.items)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- environment and secret key


def _check_env_and_secret(report: Report) -> tuple[str | None, dict, list[str]]:
    """FAZHI_ENV, values that do not parse, and the secret key, judged before the app is built (it
    refuses a weak key in production). Returns the environment name (None: unusable), settings to
    build the app with, and the variables to leave out while building it."""
    from .. import _check_secret_key, settings

    name = os.environ.get("FAZHI_ENV", "development")
    if name not in settings.CONFIGS:
        report.add(ERROR, "运行环境", f"FAZHI_ENV={name[:40]!r} 无效：应为 production（生产）、development 或 testing 之一。")
        return None, {}, []
    if name == "production":
        report.add(OK, "运行环境", "FAZHI_ENV=production（生产设置）。")
    else:
        report.add(WARNING, "运行环境", f"FAZHI_ENV={name}：这是开发或测试设置（Cookie 不限 HTTPS）；"
                                        "正式部署请在环境文件中设 FAZHI_ENV=production。")
    bad = _check_env_values(report, settings.CONFIGS[name])
    bad += _check_ranges(report, settings.CONFIGS[name], bad)
    key = os.environ.get("FAZHI_SECRET_KEY", settings.CONFIGS[name].SECRET_KEY)
    overrides: dict = {}
    try:
        _check_secret_key(key, settings.DEFAULT_SECRET)
    except RuntimeError:
        if name == "production":
            report.add(ERROR, "密钥", "FAZHI_SECRET_KEY 未设置、是默认值或短于32字节，网站拒绝启动：请设为随机值，"
                                   "如 python -c 'import secrets; print(secrets.token_hex(32))' 的输出。")
            # A throwaway key lets the remaining items be checked all the same.
            overrides["SECRET_KEY"] = secrets.token_hex(32)
        else:
            report.add(WARNING, "密钥", "使用仅供开发的密钥；生产环境须把 FAZHI_SECRET_KEY 设为至少32字节的随机值。")
    else:
        report.add(OK, "密钥", "已设置，长度足够。")
    return name, overrides, bad


def _check_env_values(report: Report, config_class) -> list[str]:
    """Numbers and JSON settings given in the environment must read as such; create_app would stop
    at the first bad one with a bare ValueError, without naming the variable. Returns the bad ones."""
    from .. import _env_value

    bad = []
    for key, raw in sorted(os.environ.items()):
        setting = key[len("FAZHI_"):]
        if not key.startswith("FAZHI_") or not hasattr(config_class, setting):
            continue
        current = getattr(config_class, setting)
        if not isinstance(current, (int, dict)) or isinstance(current, bool):
            continue
        try:
            _env_value(raw, current)
        except (ValueError, TypeError):
            bad.append(key)
            what = "整数" if isinstance(current, int) else " JSON 对象（须用单引号括起来）"
            report.add(ERROR, "配置", f"{key}={raw[:40]!r} 不是{what}：请在环境文件中改正。")
    return bad


# Settings that are lists of addresses or networks (comma-separated); a bad item stops the start.
NETWORK_SETTINGS = ("METRICS_ALLOWED_IPS", "TRUSTED_PROXY_IPS")


def _check_ranges(report: Report, config_class, unreadable: list[str]) -> list[str]:
    """Numbers create_app accepts only within a range, and the address lists it parses, one line
    each (the app refuses to start at the first bad one). Returns the variables found bad."""
    from .. import RANGES, _env_value
    from ..proxies import parse_networks

    bad = []
    for setting, (low, high) in RANGES.items():
        key = f"FAZHI_{setting}"
        if key in unreadable or not hasattr(config_class, setting):
            continue
        value = getattr(config_class, setting)
        if key in os.environ:
            value = _env_value(os.environ[key], value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bad.append(key)
            report.add(ERROR, "配置", f"{key}={str(value)[:40]!r} 超出范围：应为 {low} 到 {high} 之间的整数，"
                                    "网站拒绝启动；请在环境文件中改正。")
    for setting in NETWORK_SETTINGS:
        key = f"FAZHI_{setting}"
        raw = os.environ.get(key, getattr(config_class, setting, ""))
        try:
            parse_networks(raw, key)
        except RuntimeError as exc:
            bad.append(key)
            report.add(ERROR, "配置", f"{str(exc).splitlines()[0].rstrip('。')}，网站拒绝启动；请在环境文件中改正。")
    return bad


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown by its scheme only
        return url.split(":", 1)[0] + ":…"


def _scrub(message: str, url: str) -> str:
    """An error message without the database password (drivers and parsers may quote the URL)."""
    from sqlalchemy.engine import make_url

    if url:
        message = message.replace(url, _masked(url))
    try:
        password = make_url(url).password if url else None
    except Exception:  # noqa: BLE001
        password = None
    if password:
        message = message.replace(str(password), "***")
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", message)


def _build_app(report: Report, overrides: dict, leave_out: list[str]):
    """The app as the other commands build it; when only its database URL keeps it from starting,
    report that and build it on an in-memory database so the remaining items still get checked.
    Variables already reported as unreadable are left out (defaults used) while it is built.
    Returns (app, database_usable)."""
    saved = {key: os.environ.pop(key) for key in leave_out if key in os.environ}
    try:
        return _build_app_inner(report, overrides)
    finally:
        os.environ.update(saved)


def _build_app_inner(report: Report, overrides: dict):
    from .. import create_app

    try:
        return create_app(overrides or None), True
    except Exception as first:  # noqa: BLE001 - reported as a line, never as a traceback
        url = os.environ.get("FAZHI_DATABASE_URL", "")
        try:
            app = create_app({**overrides, "DATABASE_URL": "sqlite://"})
        except Exception as exc:  # noqa: BLE001
            report.add(ERROR, "配置", f"无法加载（{type(exc).__name__}: {_short(exc)}）：请检查环境文件中的 FAZHI_* 设置。")
            return None, False
        if isinstance(first, ModuleNotFoundError) and "psycopg" in str(first.name or ""):
            text = (f"{_masked(url)} 需要 PostgreSQL 驱动，但未安装：pip install 'fazhi-flow[postgresql]'"
                    "（离线安装时构建 wheelhouse 要带上 postgresql）。")
        else:
            text = (f"地址 {_masked(url)} 无法使用（{type(first).__name__}: {_scrub(_short(first), url)}）："
                    "请检查 FAZHI_DATABASE_URL，如 postgresql://用户@主机/库名。")
        report.add(ERROR, "数据库", text)
        return app, False


# ---------------------------------------------------------------- database and schema


def _connect_engine(url: str, timeout: int):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    args = {"connect_timeout": timeout} if url.startswith("postgresql") else {"timeout": timeout}
    return create_engine(url, poolclass=NullPool, connect_args=args)


def _check_database(report: Report, app, env_name: str, timeout: int):
    """Returns an engine that can connect, or None."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not Path(path).is_file():
            report.add(ERROR, "数据库", f"SQLite 文件 {path} 不存在：运行 fazhi-flow db upgrade 建库"
                                     "（或检查 FAZHI_DATABASE_URL、FAZHI_INSTANCE_PATH）。")
            return None
    engine = _connect_engine(url, timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        engine.dispose()
        report.add(ERROR, "数据库", f"无法连接 {_masked(url)}（{_scrub(_short(exc), url)}）：检查数据库服务是否运行、"
                                 "FAZHI_DATABASE_URL 中的主机、端口、用户和密码。")
        return None
    if parsed.get_backend_name() == "sqlite":
        level = WARNING if env_name == "production" else OK
        advice = "；生产环境建议用 PostgreSQL（多人同时使用、多台网站机器）" if level == WARNING else ""
        report.add(level, "数据库", f"可以连接 SQLite 文件 {parsed.database}{advice}。")
    else:
        report.add(OK, "数据库", f"可以连接 {_masked(url)}。")
    return engine


def _check_schema(report: Report, engine) -> bool:
    """Is the database at the head of the packaged migrations? Returns True when it is."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from .. import resource_dir

    script = ScriptDirectory(str(resource_dir("migrations")))
    heads = set(script.get_heads())
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
        tables = set(inspect(conn).get_table_names())
    head_text = "、".join(sorted(heads))
    if not current:
        what = "数据库是空的" if not tables else "数据库有表但没有迁移记录（alembic_version）"
        report.add(ERROR, "数据库结构", f"{what}：运行 fazhi-flow db upgrade 建表（最新迁移 {head_text}）。")
        return False
    unknown = current - known
    if unknown:
        report.add(ERROR, "数据库结构", f"数据库的迁移版本 {'、'.join(sorted(unknown))} 本程序不认识（数据库由更新的版本"
                                     "升级过）：请安装与数据库相同或更新版本的 fazhi-flow。")
        return False
    if current != heads:
        report.add(ERROR, "数据库结构", f"不是最新（当前 {'、'.join(sorted(current))}，最新 {head_text}）：停止调度器、"
                                     "备份数据库后运行 fazhi-flow db upgrade。")
        return False
    report.add(OK, "数据库结构", f"已是最新迁移 {head_text}。")
    return True


# ---------------------------------------------------------------- upload folder


def _check_upload_folder(report: Report, app) -> None:
    folder = Path(app.config["UPLOAD_FOLDER"])
    storage = str(app.config.get("ATTACHMENT_STORAGE") or "folder").lower()
    name = "上传目录"
    if storage == "database":
        note = "（附件存在数据库中，此目录只在迁移存储时用到）"
    else:
        note = ""
    if folder.exists() and not folder.is_dir():
        report.add(ERROR, name, f"{folder} 不是目录：请把 FAZHI_UPLOAD_FOLDER 设为一个目录{note}。")
        return
    probe = folder
    while not probe.exists():
        probe = probe.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".fazhi-check-") as handle:
            handle.write(b"ok")
            handle.flush()
    except OSError as exc:
        report.add(ERROR, name, f"{folder} 不可写（{exc.strerror or _short(exc)}）：请让运行网站的用户能写入"
                                f"（如 chown -R fazhi: {probe}），并确认磁盘没有以只读方式挂载{note}。")
        return
    free = shutil.disk_usage(probe).free / 1024**3
    if probe != folder:
        report.add(OK, name, f"{folder} 尚不存在，首次上传时自动创建（上级目录可写，剩余 {free:.1f} GB）{note}。")
    elif free < 1:
        report.add(WARNING, name, f"{folder} 可写，但磁盘只剩 {free:.2f} GB：请清理或扩容{note}。")
    else:
        report.add(OK, name, f"{folder} 可写（剩余 {free:.1f} GB）{note}。")


# ---------------------------------------------------------------- SMTP


def _check_smtp(report: Report, app, timeout: int) -> None:
    import smtplib

    from ..notify.email import SmtpSender

    cfg = app.config
    host, port = cfg.get("MAIL_HOST") or "localhost", cfg.get("MAIL_PORT") or 25
    security = str(cfg.get("MAIL_SECURITY") or "none").lower()
    name = "邮件服务器"
    if security not in ("none", "starttls", "ssl"):
        report.add(ERROR, name, f"FAZHI_MAIL_SECURITY={security[:20]!r} 无效：应为 none、starttls 或 ssl。")
        return
    where = f"{host}:{port}"
    sender = SmtpSender({**cfg, "MAIL_TIMEOUT": timeout})
    try:
        # The same connection (and STARTTLS, login) that delivery opens; nothing is sent.
        sender._smtp = sender._connect()
        sender._smtp.noop()
    except smtplib.SMTPAuthenticationError as exc:
        report.add(ERROR, name, f"{where} 拒绝登录（{exc.smtp_code}）：检查 FAZHI_MAIL_USERNAME 和 FAZHI_MAIL_PASSWORD。")
    except smtplib.SMTPNotSupportedError:
        report.add(ERROR, name, f"{where} 不支持所需功能（STARTTLS 或登录）：检查 FAZHI_MAIL_SECURITY。")
    except ssl.SSLError as exc:
        report.add(ERROR, name, f"{where} TLS 握手失败（{_short(exc)}）：检查 FAZHI_MAIL_SECURITY、FAZHI_MAIL_PORT；"
                                "内部 CA 签发的证书用 FAZHI_MAIL_CA_FILE 指定 CA 文件。")
    except (smtplib.SMTPException, OSError) as exc:
        reason = "超时" if isinstance(exc, (socket.timeout, TimeoutError)) else _short(exc)
        report.add(ERROR, name, f"无法连接 {where}（{reason}）：检查 FAZHI_MAIL_HOST、FAZHI_MAIL_PORT 和防火墙；"
                                "邮件提醒在连接恢复前无法发出。")
    else:
        login = "，登录成功" if cfg.get("MAIL_USERNAME") else ""
        report.add(OK, name, f"可以连接 {where}（{security}）{login}。")
    finally:
        sender.close()


# ---------------------------------------------------------------- group robots (webhooks)


def _probe(host: str, port: int, timeout: int, out: dict) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        out["error"] = f"域名 {host} 无法解析（{_short(exc)}）"
        return
    last = None
    for family, kind, proto, _name, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
            out["ok"] = True
            return
        except OSError as exc:
            last = exc
    reason = "超时" if isinstance(last, (socket.timeout, TimeoutError)) else _short(last)
    out["error"] = f"无法连接 {host}:{port}（{reason}）"


def _check_webhooks(report: Report, timeout: int) -> None:
    from sqlalchemy import select

    from ..extensions import db
    from ..models import WebhookTarget

    name = "群机器人"
    targets = list(db.session.scalars(select(WebhookTarget).where(WebhookTarget.active.is_(True))
                                      .order_by(WebhookTarget.id)))
    if not targets:
        report.add(OK, name, "未配置（不发群消息）。")
        return
    by_endpoint: dict[tuple[str, str, int], list] = {}
    for target in targets:
        label = f"“{target.name}”（{target.unit.name if target.unit else target.cycle.title if target.cycle else '—'}）"
        parts = urllib.parse.urlsplit((target.url or "").strip())
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            report.add(ERROR, name, f"{label} 的地址格式不对：应以 https:// 开头并带有主机名；请在管理页面中修改。")
            continue
        by_endpoint.setdefault((parts.scheme, parts.hostname, port), []).append(label)
    # Every endpoint is probed at once; daemon threads so that a resolver that hangs never holds up
    # the command's exit. Only scheme, host and port are printed: the path and query carry tokens.
    probes = {}
    for (scheme, host, port) in by_endpoint:
        out: dict = {}
        thread = threading.Thread(target=_probe, args=(host, port, timeout, out), daemon=True)
        thread.start()
        probes[(scheme, host, port)] = (thread, out)
    for endpoint, (thread, out) in probes.items():
        thread.join(timeout * 2 + 1)
        scheme, host, port = endpoint
        labels = by_endpoint[endpoint]
        who = "、".join(labels[:3]) + (f"等{len(labels)}个" if len(labels) > 3 else "")
        if out.get("ok"):
            report.add(OK, name, f"{scheme}://{host}:{port} 可以连接（{who}）。")
        else:
            error = out.get("error") or f"连接 {host}:{port} 超时"
            report.add(ERROR, name, f"{error}（{who}）：检查地址、本机的 DNS 和出网防火墙；"
                                    "内网不能访问互联网时请停用这些群机器人。")


# ---------------------------------------------------------------- PDF, fonts, extras


def _installed_families() -> set[str] | None:
    if not shutil.which("fc-list"):
        return None
    try:
        out = subprocess.run(["fc-list", "--format", "%{family}\n"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {name.strip().casefold() for line in out.splitlines() for name in line.split(",") if name.strip()}


def _has_chinese_font() -> bool:
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.strip())


def _check_pdf(report: Report, app) -> None:
    from ..publish.pdf import PdfUnavailable, _weasyprint

    try:
        _weasyprint()
    except PdfUnavailable as exc:
        pdf_ok = False
        report.add(WARNING, "PDF 组件", f"不可用（{_short(Exception(exc.detail or 'weasyprint'), 120)}）："
                                       "pip install 'fazhi-flow[pdf]'，并安装系统的 pango（Debian/Ubuntu："
                                       "apt-get install libpango-1.0-0 libpangoft2-1.0-0）；其余功能不受影响。")
    else:
        pdf_ok = True
        report.add(OK, "PDF 组件", "WeasyPrint 可用。")

    name = "PDF 字体"
    families = _installed_families()
    if families is None:
        report.add(WARNING if not pdf_ok else ERROR, name,
                   "找不到 fc-list（fontconfig）：apt-get install fontconfig fonts-noto-cjk fonts-arphic-ukai。")
        return
    fonts = app.config.get("PDF_FONTS") or {}
    missing: dict[str, list[str]] = {}
    for role, value in fonts.items():
        wanted = [f.strip() for f in str(value).split(",") if f.strip()]
        if not any(f.casefold() in families for f in wanted):
            missing[role] = wanted
    if not missing:
        used = "、".join(dict.fromkeys(f.strip() for v in fonts.values() for f in str(v).split(",")
                                       if f.strip().casefold() in families))
        report.add(OK, name, f"已安装（{used}）。")
        return
    lacking = "、".join(dict.fromkeys(f for wanted in missing.values() for f in wanted))
    fix = ("apt-get install fonts-noto-cjk fonts-arphic-ukai，或用 FAZHI_PDF_FONTS 改用已安装的字体"
           "（fc-list :lang=zh family 列出中文字体）")
    if _has_chinese_font():
        report.add(WARNING, name, f"找不到 {lacking}（{'、'.join(missing)}），PDF 将用其他中文字体代替：{fix}。")
    else:
        report.add(ERROR if pdf_ok else WARNING, name, f"找不到 {lacking}，本机也没有任何中文字体，PDF 中的汉字"
                                                     f"无法显示：{fix}。")


def _check_extras(report: Report, app) -> None:
    present = {extra: importlib.util.find_spec(module) is not None
               for extra, module in (("pdf", "weasyprint"), ("postgresql", "psycopg"))}
    missing = [extra for extra, ok in present.items() if not ok]
    text = "、".join(f"{extra}（{'已安装' if ok else '未安装'}）" for extra, ok in present.items())
    if not missing:
        report.add(OK, "可选组件", text + "。")
        return
    uses_pg = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    level = ERROR if ("postgresql" in missing and uses_pg) else WARNING
    report.add(level, "可选组件", f"{text}：需要时 pip install 'fazhi-flow[{','.join(missing)}]'"
                                 "（离线安装时用带这些组件构建的 wheelhouse）。")


# ---------------------------------------------------------------- base URL


def _check_base_url(report: Report, app, env_name: str) -> None:
    from ..settings import Config

    name = "网址"
    raw = str(app.config.get("BASE_URL") or "").strip()
    fix = "请把 FAZHI_BASE_URL 设为用户访问本系统的地址，如 https://fazhi.example.gov.cn"
    if not raw:
        report.add(ERROR, name, f"FAZHI_BASE_URL 未设置，邮件和群消息中的链接无法生成：{fix}。")
        return
    parts = urllib.parse.urlsplit(raw)
    try:
        well_formed = (parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query
                       and not parts.fragment and not any(c.isspace() for c in raw)
                       and (parts.port is None or parts.port > 0))  # .port raises on a bad port
    except ValueError:
        well_formed = False
    if not well_formed:
        report.add(ERROR, name, f"FAZHI_BASE_URL={raw[:80]!r} 格式不对（应为 http(s)://主机[:端口][/路径]）：{fix}。")
        return
    if env_name == "production" and raw.rstrip("/") == Config.BASE_URL:
        report.add(WARNING, name, f"仍是默认值 {raw}，邮件和群消息中的链接只在服务器本机能打开：{fix}。")
    elif env_name == "production" and parts.scheme != "https" and app.config.get("SESSION_COOKIE_SECURE"):
        report.add(WARNING, name, f"{raw} 不是 https：生产设置下登录 Cookie 只经 HTTPS 发送，用户从这个地址将无法登录；"
                                  "请用 nginx 提供 HTTPS 并改为 https:// 地址。")
    else:
        report.add(OK, name, f"{raw}。")


# ---------------------------------------------------------------- single sign-on


def _check_sso(report: Report, app, env_name: str, timeout: int) -> None:
    from ..sso.checks import check_ldap, check_oidc

    levels = (OK, WARNING, ERROR)
    check_oidc(report.add, levels, app.config, env_name, timeout)
    check_ldap(report.add, levels, app.config, env_name, timeout)


# ---------------------------------------------------------------- the command


def run_checks(timeout: int = DEFAULT_TIMEOUT) -> Report:
    report = Report()
    env_name, overrides, leave_out = _check_env_and_secret(report)
    if env_name is None:
        return report
    app, database_usable = _build_app(report, overrides, leave_out)
    if app is None:
        return report
    from ..extensions import db

    with app.app_context():
        engine = _check_database(report, app, env_name, timeout) if database_usable else None
        schema_ok = False
        if engine is not None:
            try:
                schema_ok = _check_schema(report, engine)
            finally:
                engine.dispose()
        else:
            report.add(WARNING, "数据库结构", "无法检查（数据库不可用，见上一行）。")
        _check_upload_folder(report, app)
        _check_smtp(report, app, timeout)
        if schema_ok:
            try:
                _check_webhooks(report, timeout)
            finally:
                db.session.remove()
        else:
            report.add(WARNING, "群机器人", "无法检查（数据库不可用或结构不是最新）。")
        _check_pdf(report, app)
        _check_base_url(report, app, env_name)
        _check_extras(report, app)
        _check_sso(report, app, env_name, timeout)
        db.engine.dispose()
    return report


@click.command("check", cls=PlainCommand)
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.IntRange(1, 60),
              help="连接数据库、邮件服务器、群机器人时最多等待的秒数")
def check_command(timeout):
    """检查配置：密钥、数据库及其结构、上传目录、邮件服务器、群机器人、PDF 字体、网址、可选组件、统一身份认证。

    每项一行（OK / 警告 / 错误）并说明如何处理；有任何错误时以状态 1 退出。
    """
    report = run_checks(timeout)
    for item in report.items:
        click.secho(item.line(), fg=_COLORS[item.level])
    summary = f"共检查 {len(report.items)} 项：{report.errors} 项错误，{report.warnings} 项警告。"
    if report.errors:
        click.secho(summary, fg="red")
        sys.exit(1)
    click.secho(summary, fg="yellow" if report.warnings else "green")


COMMANDS = (check_command,)
