"""Real servers for the single sign-on tests: OpenLDAP's slapd and a small OpenID Connect provider.

slapd runs from a generated slapd.conf with the mdb backend in a temporary folder, on a free port.
The provider is a real HTTP server (werkzeug, in a thread) speaking the authorization code flow with
PKCE: discovery document, authorization endpoint (the person is already signed in at the provider:
``account``), token endpoint (client authentication, one-time codes, the PKCE verifier checked) and
JWKS; its ID tokens are RS256-signed with joserfc. ``tamper`` makes it misbehave the ways a forged
or mixed-up answer would.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SLAPD = "/usr/sbin/slapd"
LDAPADD = shutil.which("ldapadd") or "/usr/bin/ldapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=hs,dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slapd_missing() -> str | None:
    """Why slapd cannot run here, or None."""
    for path, package in ((Path(SLAPD), "slapd"), (Path(LDAPADD), "ldap-utils"),
                          (SCHEMA_DIR / "inetorgperson.schema", "slapd"), (MODULE_DIR, "slapd")):
        if not path.exists():
            return f"{path} is missing (apt-get install slapd ldap-utils)"
    return None


@dataclass
class Directory:
    url: str
    root_password: str
    reader_password: str
    process: subprocess.Popen
    folder: Path
    ldaps_url: str | None = None

    def add(self, ldif: str) -> None:
        path = self.folder / f"add-{secrets.token_hex(4)}.ldif"
        path.write_text(ldif, encoding="utf-8")
        proc = subprocess.run([LDAPADD, "-x", "-H", self.url, "-D", ROOT_DN, "-w", self.root_password, "-f", str(path)],
                              capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, proc.stderr

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def make_certificates(folder: Path) -> dict:
    """A private CA and a server certificate for 127.0.0.1 signed by it (PEM files in ``folder``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "赫山区测试根证书")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    files["key"].chmod(0o600)
    return files


def start_slapd(folder: Path, tls: dict | None = None) -> Directory:
    """slapd on a free port; with ``tls`` (make_certificates) StartTLS on ldap:// and ldaps:// on
    another port (``Directory.ldaps_url``)."""
    db_dir = folder / "db"
    db_dir.mkdir()
    root_password, reader_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    conf = folder / "slapd.conf"
    conf.write_text("\n".join([
        *(f"include {SCHEMA_DIR / name}" for name in ("core.schema", "cosine.schema", "inetorgperson.schema")),
        f"pidfile {folder / 'slapd.pid'}",
        f"argsfile {folder / 'slapd.args'}",
        f"modulepath {MODULE_DIR}",
        "moduleload back_mdb",
        "database mdb",
        "maxsize 33554432",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {root_password}",
        f"directory {db_dir}",
        # Passwords are only ever compared by a bind, never read; everything else is readable.
        "access to attrs=userPassword by self write by anonymous auth by * none",
        "access to * by * read",
        *([f"TLSCACertificateFile {tls['ca']}", f"TLSCertificateFile {tls['cert']}",
           f"TLSCertificateKeyFile {tls['key']}"] if tls else []),
        "",
    ]), encoding="utf-8")
    url = f"ldap://127.0.0.1:{free_port()}"
    ldaps_url = f"ldaps://127.0.0.1:{free_port()}" if tls else None
    listen = f"{url}/ {ldaps_url}/" if tls else f"{url}/"
    log = open(folder / "slapd.log", "w")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen([SLAPD, "-f", str(conf), "-h", listen, "-d", "0"], stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 15
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    while True:
        if process.poll() is not None:
            raise RuntimeError("slapd exited: " + (folder / "slapd.log").read_text()[-2000:])
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("slapd did not open its port") from None
            time.sleep(0.1)
    directory = Directory(url, root_password, reader_password, process, folder, ldaps_url)
    directory.add(f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: hs
o: 赫山区

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: {READER_DN}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: reader
userPassword: {reader_password}
""")
    return directory


def person_ldif(uid: str, password: str, mail: str | None = None, name: str = "测试人员") -> str:
    lines = [f"dn: uid={uid},{PEOPLE}", "objectClass: inetOrgPerson", f"uid: {uid}",
             f"cn:: {base64.b64encode(name.encode()).decode()}", f"sn:: {base64.b64encode(name[:1].encode()).decode()}",
             f"userPassword: {password}"]
    if mail:
        lines.append(f"mail: {mail}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- OpenID Connect provider


@dataclass
class Provider:
    client_id: str
    client_secret: str
    redirect_uri: str
    url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "hs-1"}))
    # The person signed in at the provider: the claims of their ID token.
    account: dict = field(default_factory=dict)
    # Misbehaviour: {"nonce": "...", "aud": "...", "iss": "...", "exp": -3600, "key": other RSAKey,
    # "no_id_token": True, "extra": {more claims}, "denied": "error description"}.
    tamper: dict = field(default_factory=dict)
    codes: dict = field(default_factory=dict)
    token_requests: list = field(default_factory=list)
    authorize_requests: list = field(default_factory=list)

    def metadata(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def __call__(self, environ, start_response):
        request = Request(environ)
        routes = {"/.well-known/openid-configuration": self._discovery, "/authorize": self._authorize,
                  "/token": self._token, "/jwks": self._jwks}
        handler = routes.get(request.path)
        response = handler(request) if handler else Response("not found", 404)
        return response(environ, start_response)

    def _json(self, data, status=200) -> Response:
        return Response(json.dumps(data), status, content_type="application/json")

    def _discovery(self, request) -> Response:
        return self._json(self.metadata())

    def _jwks(self, request) -> Response:
        return self._json(KeySet([self.key]).as_dict(private=False))

    def _authorize(self, request) -> Response:
        args = request.args
        self.authorize_requests.append(dict(args))
        if (args.get("client_id") != self.client_id or args.get("redirect_uri") != self.redirect_uri
                or args.get("response_type") != "code"):
            return Response("invalid request", 400)
        if args.get("code_challenge_method") != "S256" or not args.get("code_challenge") or not args.get("state"):
            return Response("PKCE S256 and state are required", 400)
        if "denied" in self.tamper:
            query = urlencode({"error": "access_denied", "error_description": self.tamper["denied"],
                               "state": args["state"]})
            return Response(status=302, headers={"Location": f"{self.redirect_uri}?{query}"})
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": args["code_challenge"], "nonce": args.get("nonce"),
                            "account": dict(self.account), "redirect_uri": args["redirect_uri"]}
        query = urlencode({"code": code, "state": args["state"]})
        return Response(status=302, headers={"Location": f"{self.redirect_uri}?{query}"})

    def _client_ok(self, request) -> bool:
        auth = request.authorization
        return bool(auth and auth.username == self.client_id and auth.password == self.client_secret)

    def _token(self, request) -> Response:
        form = request.form
        grant = self.codes.pop(form.get("code", ""), None)  # one use only
        verifier = form.get("code_verifier", "")
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        checks = {"client": self._client_ok(request), "grant": grant is not None,
                  "pkce": grant is not None and verifier and expected == grant["challenge"],
                  "redirect_uri": grant is not None and form.get("redirect_uri") == grant["redirect_uri"]}
        self.token_requests.append(checks)
        if not all(checks.values()):
            return self._json({"error": "invalid_grant"}, 400)
        answer = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 300}
        if not self.tamper.get("no_id_token"):
            answer["id_token"] = self._id_token(grant)
        return self._json(answer)

    def _id_token(self, grant) -> str:
        now = int(time.time())
        claims = {"iss": self.tamper.get("iss", self.url), "aud": self.tamper.get("aud", self.client_id),
                  "iat": now, "exp": now + self.tamper.get("exp", 300), **grant["account"],
                  **self.tamper.get("extra", {})}
        nonce = self.tamper.get("nonce", grant["nonce"])
        if nonce is not None:
            claims["nonce"] = nonce
        key = self.tamper.get("key", self.key)
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


class ProviderServer:
    def __init__(self, provider: Provider):
        self.server = make_server("127.0.0.1", 0, provider, threaded=True)
        provider.url = f"http://127.0.0.1:{self.server.server_port}"
        self.provider = provider
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Provider:
        self.thread.start()
        return self.provider

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
