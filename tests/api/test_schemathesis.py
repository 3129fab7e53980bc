"""The API against its own OpenAPI document: schemathesis generates requests for every operation of
/api/v1/openapi.json (the document's examples, its boundary and negative cases, then random ones) and
sends them with real tokens of several roles over the two-county world; then chains of operations
(stateful phase: an answer's values, such as a version, feed the next request).

Every answer must be no server error, with a status, a content type, headers and a body the document
declares for that operation; bad input must be refused, and an undocumented method answered 405 with the
right Allow header. A check that fails here is a bug of the API or its document.

Bounded and reproducible: a fixed seed, deterministic generation, a fixed number of random examples per
operation, no deadline, and no Hypothesis example database or schemathesis cache (nothing is written into
the tree). Half of the integers generated for parameters are ids of the world's objects (both counties),
so requests reach real material (their own and the other county's) as well as missing ids.

Schemathesis runs through its engine (as its command line does), one run per token: its pytest
integration for a schema loaded from a fixture does not work with this pytest.
"""
from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from .api_world import build_api_world, make_token, per_request_context

# The checks this test stands for: no server error; status, content type, body and headers as documented;
# bad input refused (4xx, "negative data"); a method the path does not take answered 405 with an Allow
# header naming exactly the documented methods. The other checks of schemathesis are off: they need a
# model of object life the document does not describe ("a deleted object is gone"), or re-send requests
# with other credentials through a transport that does not take a WSGI app.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection",
          "unsupported_method", "allow_header_conformance", "missing_required_header")
OTHER_CHECKS = ("positive_data_acceptance", "use_after_free", "ensure_resource_availability", "ignored_auth",
                "object_level_authorization")
SEED = 20241231
# Random examples per operation and phase (the examples and coverage phases add their own bounded cases).
# Kept small: the suite runs twice in CI (SQLite, PostgreSQL), and each token's run repeats it.
MAX_EXAMPLES = 5
# The stateful phase chains operations (read a contribution, then save or submit it with the version read);
# steps per scenario.
STATEFUL_STEPS = 10
# Whose token: the role's county person (赫山区) and the token's scope. The read-only token is a liaison's.
ROLES = {
    "联络员": ("liaison", "write"),
    "审核人": ("reviewer", "write"),
    "管理员": ("admin", "write"),
    "只读令牌": ("liaison", "read"),
}
# The token whose run also sends the coverage phase's negative cases (wrong types, values out of range,
# missing parameters, unexpected methods and content types). The API refuses those before any role
# matters (405 by the router, then 401, the scope's 403, 415/400/422 from the body and query), so one
# token covers that path; its boundary (positive) cases, which reach the views and their policy, run
# with every token.
NEGATIVE_COVERAGE_ROLE = "联络员"
# A bound on one run (one token), so that a regression that makes the API slow fails instead of hanging.
MAX_SECONDS = 240


def _config(world, token: str, negative_coverage: bool) -> SchemathesisConfig:
    ids = sorted({i for county in (world.a, world.b) for kind in county.ids.values() for i in kind})
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "cache": {"enabled": False},
        "headers": {"Authorization": f"Bearer {token}"},
        "checks": {**{name: {"enabled": True} for name in CHECKS},
                   **{name: {"enabled": False} for name in OTHER_CHECKS}},
        # Contributions' versions are small numbers: a body's "version" is one of them more often than
        # chance would make it, so saves and decisions get past the version check and reach the workflow.
        "dictionaries": {"ids": {"values": ids}, "versions": {"values": list(range(1, 9))}},
        "parameters": {"body.version": {"dictionary": "versions", "probability": 0.6}},
        "generation": {
            "mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
            "dictionaries": {"integer": {"dictionary": "ids", "probability": 0.5}},
        },
        "phases": {"stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
                   **({} if negative_coverage else {"coverage": {"generation": {"mode": "positive"}}})},
    })


def _run(schema) -> tuple[list[str], int, dict[str, int]]:
    """Run every phase; returns (failures and errors as text, requests sent, requests per status, and
    the statuses each operation answered)."""
    found, sent, statuses, answered = [], 0, {}, {}
    templates = _templates(schema)
    for event in from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            found.append(f"error {getattr(event, 'label', '')}: {type(event.value).__name__}: {event.value}"[:600])
        recorder = getattr(event, "recorder", None)
        if not isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)) or recorder is None:
            continue
        for interaction in recorder.interactions.values():
            sent += 1
            if interaction.response is not None:
                code = interaction.response.status_code
                statuses[code] = statuses.get(code, 0) + 1
                answered.setdefault(f"{interaction.request.method} {_path(templates, interaction.request.uri)}",
                                    set()).add(code)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    interaction = recorder.interactions.get(case_id)
                    request = f"{interaction.request.method} {interaction.request.uri}" if interaction else case_id
                    body = (interaction.request.body or b"")[:300].decode("utf-8", "replace") if interaction else ""
                    answer = ""
                    if interaction is not None and interaction.response is not None:
                        answer = (f"{interaction.response.status_code} "
                                  f"{(interaction.response.content or b'')[:300].decode('utf-8', 'replace')}")
                    failure = check.failure_info.failure
                    found.append(f"{recorder.label} [{check.name}] {request} {body}\n    → {answer}\n    "
                                 f"{failure.title}: {failure.message[:400]}")
    return sorted(set(found)), sent, statuses, answered


def _templates(schema) -> list[tuple[re.Pattern, str]]:
    """(pattern, path) of each path of the document, to name a request's operation."""
    out = []
    for result in schema.get_all_operations():
        template = result.ok().path
        out.append((re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"), template))
    return out


def _path(templates, uri: str) -> str:
    path = urlsplit(uri).path
    return next((template for pattern, template in templates if pattern.match(path)), path)


@pytest.fixture()
def hypothesis_home(tmp_path):
    """Hypothesis keeps caches (constants it found in the code) under its home directory, by default
    .hypothesis in the working directory: during this test that is a temporary directory."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_answers_as_documented(app, db, capsys, hypothesis_home, role):
    world = build_api_world(db)
    attr, scope = ROLES[role]
    token = make_token(db, getattr(world.a.people, attr), scope, name="契约测试")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", per_request_context(app),
                                            config=_config(world, token, role == NEGATIVE_COVERAGE_ROLE))
    operations = [op.ok() for op in schema.get_all_operations()]
    started = time.monotonic()
    found, sent, statuses, answered = _run(schema)
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nschemathesis {role}: {len(operations)} operations, {sent} requests in {seconds:.0f} s, "
              f"statuses {dict(sorted(statuses.items()))}, {len(found)} failures"
              + "".join(f"\n  {line}" for line in found[:40]))
    assert not found, "\n".join(found[:40])
    assert len(operations) >= 10 and sent >= len(operations) * MAX_EXAMPLES, (len(operations), sent)
    # The run reached real material, not only refusals: every read operation answered 200 at least once.
    reads = [f"GET {op.path}" for op in operations if op.method.upper() == "GET"]
    assert reads and all(200 in answered.get(read, ()) for read in reads), {r: answered.get(r) for r in reads}
    assert seconds < MAX_SECONDS, seconds
