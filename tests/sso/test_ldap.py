"""LDAP login against a real slapd (tests/sso/servers.py): binds by DN template and by service-account
search, escaping, empty passwords, the login throttle, local passwords beside LDAP, account matching."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from fazhi_flow.models import LoginThrottle
from fazhi_flow.services import login_throttle
from fazhi_flow.sso import ldap as sso_ldap
from fazhi_flow.sso.matching import NO_MATCH, OTHER_SUBJECT
from fazhi_flow.testing import PASSWORD

from .people import last_audit, logged_in_id, person, two_regions, user_count
from .servers import PEOPLE, READER_DN, SUFFIX, free_port, person_ldif

FAILED = "用户名或密码不正确。"


@pytest.fixture(scope="module")
def entries(directory):
    """Directory people, each with their own password (added once per run)."""
    tag = secrets.token_hex(3)
    people = {
        "zhang": (f"zhangwei{tag}", "Ldap-zw-" + secrets.token_hex(4), f"zhangwei{tag}@hs.example.gov.cn"),
        "lina": (f"lina{tag}", "Ldap-ln-" + secrets.token_hex(4), f"lina{tag}@hs.example.gov.cn"),
        "stranger": (f"liuyang{tag}", "Ldap-ly-" + secrets.token_hex(4), None),
        "star": (f"x{tag}*", "Ldap-st-" + secrets.token_hex(4), None),  # a name with a filter character
    }
    directory.add("\n".join(person_ldif(uid, pw, mail) for uid, pw, mail in people.values()))
    return people


@pytest.fixture()
def district(db):
    hs, zy, units = two_regions(db)
    db.session.commit()
    return {"hs": hs, "zy": zy, "units": units}


def _local(db, district, uid, region="hs", **columns):
    code = "430903" if region == "hs" else "430902"
    user = person(db, district[region], district["units"][code], uid, "张伟", **columns)
    db.session.commit()
    return user


def _post(client, username, password):
    return client.post("/login", data={"username": username, "password": password})


def test_dn_template_login_binds_the_entry_and_keeps_local_passwords(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    user = _local(db, district, uid, region="zy")
    response = _post(client, uid, ldap_password)
    assert response.status_code == 302 and logged_in_id(client) == user.id
    assert last_audit(db, "auth.login").detail == {"method": "ldap"}
    db.session.expire_all()
    assert user.sso_subject.startswith("ldap:") and len(user.sso_subject) == len("ldap:") + 36  # entryUUID
    client.post("/logout")
    # The local password still works while it is not switched off...
    assert _post(client, uid, PASSWORD).status_code == 302 and logged_in_id(client) == user.id
    assert last_audit(db, "auth.login").detail == {"method": "password"}
    client.post("/logout")
    user.password_login_disabled = True
    db.session.commit()
    # ...and once it is, only the directory's password does.
    page = _post(client, uid, PASSWORD).get_data(as_text=True)
    assert "该账号不能使用本地密码，请输入统一身份认证（LDAP）的密码" in page and logged_in_id(client) is None
    assert _post(client, uid, ldap_password).status_code == 302 and logged_in_id(client) == user.id


def test_an_ldap_login_is_not_sent_to_change_the_local_password(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    _local(db, district, uid, must_change_password=True)
    assert _post(client, uid, ldap_password).headers["Location"] == "/"
    assert client.get("/").headers["Location"] == "/tasks/"


def test_wrong_and_empty_passwords(client, db, app, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    _local(db, district, uid)
    assert FAILED in _post(client, uid, ldap_password + "x").get_data(as_text=True)
    assert logged_in_id(client) is None
    # An empty password would be an anonymous bind, which a server may accept: never a login.
    with app.test_request_context():
        assert sso_ldap.authenticate(uid, "") is None
        assert sso_ldap.authenticate(uid, ldap_password) is not None
    assert "请输入密码" in _post(client, uid, "").get_data(as_text=True)
    assert logged_in_id(client) is None


def test_the_throttle_counts_ldap_attempts(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    _local(db, district, uid)
    free = login_throttle.POLICIES["pair"].free
    for _ in range(free + 1):
        assert FAILED in _post(client, uid, "wrong-" + ldap_password).get_data(as_text=True)
    failures = db.session.scalar(select(LoginThrottle.failures).where(LoginThrottle.key.like(f"acct:{uid}")))
    assert failures == free + 1
    # Blocked now: even the right directory password waits.
    response = _post(client, uid, ldap_password)
    assert response.status_code == 429 and logged_in_id(client) is None


def test_mail_matches_a_differently_named_account(client, db, ldap_config, entries, district):
    uid, ldap_password, mail = entries["lina"]
    user = _local(db, district, "li.na", email=mail.upper())
    assert _post(client, uid, ldap_password).status_code == 302 and logged_in_id(client) == user.id


def test_a_directory_person_without_an_account_is_not_created(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["stranger"]
    before = user_count(db)
    assert NO_MATCH in _post(client, uid, ldap_password).get_data(as_text=True)
    assert logged_in_id(client) is None and user_count(db) == before


def test_an_account_bound_to_another_entry_is_refused(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    # Bound at an earlier login to an entry since deleted; the new entry of the same name is someone else.
    user = _local(db, district, uid, sso_subject="ldap:1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert OTHER_SUBJECT in _post(client, uid, ldap_password).get_data(as_text=True)
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject == "ldap:1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def test_inactive_account_is_refused(client, db, ldap_config, entries, district):
    uid, ldap_password, _ = entries["zhang"]
    _local(db, district, uid, active=False)
    assert "您的账号已停用" in _post(client, uid, ldap_password).get_data(as_text=True)
    assert logged_in_id(client) is None


def test_search_mode_escapes_the_username(client, db, app, ldap_config, directory, entries, district):
    ldap_config(LDAP_USER_DN="", LDAP_BIND_DN=READER_DN, LDAP_BIND_PASSWORD=directory.reader_password,
                LDAP_SEARCH_BASE=PEOPLE, LDAP_SEARCH_FILTER="(&(objectClass=inetOrgPerson)(uid={username}))")
    uid, ldap_password, _ = entries["zhang"]
    user = _local(db, district, uid)
    assert _post(client, uid, ldap_password).status_code == 302 and logged_in_id(client) == user.id
    client.post("/logout")
    star_uid, star_password, _ = entries["star"]
    with app.test_request_context():
        # Wildcards and filter syntax in the typed name are literal characters, not a pattern.
        assert sso_ldap.authenticate(uid[:4] + "*", ldap_password) is None
        assert sso_ldap.authenticate(f"{uid})(uid=*", ldap_password) is None
        assert sso_ldap.authenticate("*", ldap_password) is None
        # The entry whose name really has a "*" is found by exactly that name.
        found = sso_ldap.authenticate(star_uid, star_password)
        assert found is not None and found.username == star_uid


def test_dn_template_escapes_the_username(client, db, app, ldap_config, entries):
    uid, ldap_password, _ = entries["zhang"]
    with app.test_request_context():
        # A name that would move the bind to another subtree stays one RDN value.
        assert sso_ldap.authenticate(f"{uid},ou=people", ldap_password) is None
        assert sso_ldap.authenticate(f"{uid}+cn=x", ldap_password) is None


def test_a_refused_service_account_or_a_down_server(client, db, app, ldap_config, directory, entries, district):
    local_only = _local(db, district, "wangfang")
    ldap_user = _local(db, district, entries["zhang"][0], password_login_disabled=True)
    ldap_config(LDAP_USER_DN="", LDAP_BIND_DN=READER_DN, LDAP_BIND_PASSWORD="not-the-password",
                LDAP_SEARCH_BASE=SUFFIX)
    with app.test_request_context(), pytest.raises(sso_ldap.LdapUnavailable):
        sso_ldap.authenticate(entries["zhang"][0], entries["zhang"][1])
    ldap_config(LDAP_URL=f"ldap://127.0.0.1:{free_port()}", LDAP_TIMEOUT=2)
    # Local passwords still work while the directory is away; directory people are told why they cannot.
    assert _post(client, "wangfang", PASSWORD).status_code == 302 and logged_in_id(client) == local_only.id
    client.post("/logout")
    page = _post(client, ldap_user.username, entries["zhang"][1]).get_data(as_text=True)
    assert "暂时无法连接统一身份认证（LDAP）服务器" in page and logged_in_id(client) is None


# ldap3 2.9 checks the name with ssl.match_hostname, deprecated (not yet removed) in Python 3.11; a
# DeprecationWarning is ignored outside tests, but here warnings are errors.
@pytest.mark.filterwarnings(r"ignore:ssl.match_hostname\(\) is deprecated:DeprecationWarning")
def test_starttls_and_ldaps_verify_the_certificate(client, db, app, ldap_config, tls_directory, district):
    uid, password = "tls" + secrets.token_hex(3), "Ldap-tls-" + secrets.token_hex(4)
    tls_directory.add(person_ldif(uid, password, f"{uid}@hs.example.gov.cn"))
    user = _local(db, district, uid)
    template = f"uid={{username}},{PEOPLE}"
    ldap_config(LDAP_URL=tls_directory.url, LDAP_USER_DN=template, LDAP_START_TLS=True,
                LDAP_CA_FILE=tls_directory.ca_file)
    assert _post(client, uid, password).status_code == 302 and logged_in_id(client) == user.id
    client.post("/logout")
    ldap_config(LDAP_URL=tls_directory.ldaps_url, LDAP_START_TLS=False)
    with app.test_request_context():
        assert sso_ldap.authenticate(uid, password) is not None
    # Without the private CA the certificate is not trusted: no password goes to that server.
    for url, start_tls in ((tls_directory.url, True), (tls_directory.ldaps_url, False)):
        ldap_config(LDAP_URL=url, LDAP_START_TLS=start_tls, LDAP_CA_FILE="")
        with app.test_request_context(), pytest.raises(sso_ldap.LdapUnavailable):
            sso_ldap.authenticate(uid, password)
    user.password_login_disabled = True
    db.session.commit()
    page = _post(client, uid, password).get_data(as_text=True)
    assert "暂时无法连接统一身份认证（LDAP）服务器" in page and logged_in_id(client) is None
