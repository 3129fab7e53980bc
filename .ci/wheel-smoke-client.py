"""Log in to a running fazhi_flow as each given account and fetch its pages and their assets.

Usage: wheel-smoke-client.py BASE_URL PASSWORD USER [USER...]. Exits 1 on any 404/500 or failed login.
"""
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

PAGES_PER_ROLE = 8
LINK = re.compile(r'<a\s[^>]*href="(/[^"#]*)"')
ASSET = re.compile(r'<(?:link[^>]*href|script[^>]*src)="(/[^"]+)"')
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def fetch(opener, url, data=None):
    body = urllib.parse.urlencode(data).encode() if data else None
    try:
        with opener.open(url, body, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace"), resp.geturl()
    except urllib.error.HTTPError as exc:
        return exc.code, "", url


def check(opener, base, path, seen, failures):
    if path in seen:
        return ""
    seen.add(path)
    status, text, _ = fetch(opener, base + path)
    print(f"  {status} {path}")
    if status >= 400:
        failures.append(f"{status} {path}")
    return text


def login(base, user, password):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    _, form, _ = fetch(opener, base + "/login")
    token = CSRF.search(form)
    if not token:
        raise SystemExit("登录页没有 CSRF 令牌 / no CSRF token on the login page")
    data = {"csrf_token": token.group(1), "username": user, "password": password}
    status, _, final = fetch(opener, base + "/login", data)
    if status != 200 or urllib.parse.urlsplit(final).path.startswith("/login"):
        raise SystemExit(f"{user} 登录失败 / login failed (HTTP {status}, ended at {final})")
    return opener


def walk(base, user, password, failures):
    print(f"== {user}")
    opener = login(base, user, password)
    seen = set()
    home = check(opener, base, "/", seen, failures)
    links = [p for p in dict.fromkeys(LINK.findall(home)) if "logout" not in p][:PAGES_PER_ROLE]
    pages = [home] + [check(opener, base, p, seen, failures) for p in links]
    for page in pages:
        for asset in ASSET.findall(page):
            check(opener, base, asset.replace("&amp;", "&"), seen, failures)
    if len(seen) < 3:
        failures.append(f"{user}: only {len(seen)} URLs reached")


def main(base, password, *users):
    failures = []
    for user in users:
        walk(base.rstrip("/"), user, password, failures)
    if failures:
        print("失败 / FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("所有页面和样式、脚本均可访问 / all pages and assets OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
