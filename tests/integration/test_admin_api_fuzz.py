"""No input makes the admin API answer 5xx or log a traceback (SQLite and PostgreSQL),
and no input is read two ways: ambiguous input is refused, not guessed.

Explicit cases first (deep nesting, lone surrogates, NUL characters, huge bodies on
every endpoint that takes a body; keys given twice, byte-order marks and bodies that
are not UTF-8; unknown or repeated query parameters; echoed values cut short), then a
property-based test (hypothesis) throwing generated methods, paths, query strings and
bodies at every route documented in ``docs/admin-api.md`` of a running server, over one
keep-alive session.

Time: nothing here depends on time. Sweeps run dry, a bounded number of times.
"""

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid
from tests.harness.client import LUX_PREFIX

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("LUX_FUZZ_EXAMPLES", "2000"))
# Valid bodies that would start a sweep or a reconciliation: at most this many per run.
HEAVY_BUDGET = 25


def documented_routes() -> list[tuple[str, str]]:
    """Every ``METHOD /path`` that docs/admin-api.md documents."""
    text = (REPO_ROOT / "docs" / "admin-api.md").read_text()
    found = re.findall(r"`(GET|PUT|POST|DELETE) (/[^`?\s]*)", text)
    return sorted(set(found))


ROUTES = documented_routes()


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def fuzz_hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """This module's own homeserver, so its log holds only what these requests caused."""
    database: str = request.param
    pg_params = None
    if database == "postgres":
        pg_params = request.getfixturevalue("postgres_cluster").create_database(uid("fuzz_"))
    server = SynapseServer(
        tmp_path_factory.mktemp(f"fuzz-{database}"),
        database,  # type: ignore[arg-type]
        pg_params,
        {},
    )
    server.start()
    yield server
    server.stop()


ADMIN = "@fuzzadmin:lux.test"


@pytest.fixture(scope="module")
def fuzz_admin(fuzz_hs: SynapseServer) -> MatrixClient:
    """The server admin (a fixed ID, so that generated bodies can name a real user)."""
    return fuzz_hs.register_user("fuzzadmin", admin=True)


def fill(template: str, value: str) -> str:
    """The path with every ``{param}`` replaced by ``value``."""
    return re.sub(r"\{[a-z_]+\}", value, template)


def fill_valid(template: str) -> str:
    """The path with well-formed parameters: the admin's user ID, a new hold ID."""
    path = template.replace("{user_id}", quote(ADMIN, safe=""))
    return fill(path, uid("h"))


def send(
    admin: MatrixClient,
    method: str,
    path: str,
    body: bytes | None,
    query: Sequence[tuple[str, str]] = (),
) -> Any:
    """One request; the query string (names may repeat) is encoded here, so that any text
    (lone surrogates included, as the bytes they would be) reaches the server."""
    if query:
        path += "?" + "&".join(f"{_q(k)}={_q(v)}" for k, v in query)
    headers = {"Content-Type": "application/json"} if body is not None else None
    return admin.request(method, LUX_PREFIX + path, data=body, headers=headers)


def _q(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def test_every_documented_route_is_served(fuzz_admin: MatrixClient) -> None:
    """The fuzzing below covers what the docs list: each listed route must exist."""
    assert {("POST", "/sweep"), ("PUT", "/holds/{hold_id}"), ("GET", "/users/{user_id}")} <= set(
        ROUTES
    )
    for method, template in ROUTES:
        if method != "GET":
            continue  # a GET is harmless; the others are exercised below
        resp = send(fuzz_admin, method, fill_valid(template), None)
        answer = resp.json()
        assert not (isinstance(answer, dict) and answer.get("errcode") == "M_UNRECOGNIZED"), (
            method,
            template,
        )


NESTED = b"[" * 5000 + b"]" * 5000
NASTY_BODIES = {
    "nested array": NESTED,
    "nested object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "lone surrogate": b'{"user_id": "@a:lux.test", "reason": "\\ud800"}',
    "lone surrogate key": b'{"\\udfff": 1}',
    "NUL in a value": b'{"user_id": "@a:lux.test", "reason": "a\\u0000b"}',
    "NaN": b'{"quota_bytes": NaN, "as_of": NaN}',
    "huge integer": b'{"quota_bytes": ' + b"9" * 5000 + b"}",
    "huge body": b'{"reason": "' + b"x" * (2 * 1024 * 1024) + b'"}',
}


@pytest.mark.parametrize("what", list(NASTY_BODIES))
def test_nasty_bodies_get_a_4xx_on_every_endpoint_with_a_body(
    fuzz_hs: SynapseServer, fuzz_admin: MatrixClient, what: str
) -> None:
    """R13 holds, R4 quota, R10 consent, sweeps: every body goes through one parser."""
    log_start = len(fuzz_hs.log_text())
    for method, template in ROUTES:
        if method not in ("PUT", "POST"):
            continue
        resp = send(fuzz_admin, method, fill_valid(template), NASTY_BODIES[what])
        assert 400 <= resp.status_code < 500, (method, template, resp.status_code, resp.text)
        if resp.status_code == 400:
            assert resp.json()["errcode"] in ("M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM")
    assert "Traceback" not in fuzz_hs.log_text()[log_start:]


def test_a_hold_with_a_surrogate_or_nul_in_its_reason_is_refused(
    fuzz_admin: MatrixClient,
) -> None:
    for reason in (b"\\ud800", b"a\\u0000b"):
        body = b'{"user_id": "' + str(fuzz_admin.user_id).encode() + b'", "reason": "'
        resp = send(fuzz_admin, "PUT", "/holds/" + uid("h"), body + reason + b'"}')
        assert (resp.status_code, resp.json()["errcode"]) == (400, "M_BAD_JSON")


# Bodies a parser could read more than one way (issue 25 point 7): each is refused.
AMBIGUOUS_BODIES = {
    "key given twice": (b'{"x": {"k": 1, "k": 2}}', "M_BAD_JSON"),
    "UTF-8 byte-order mark": (b"\xef\xbb\xbf{}", "M_NOT_JSON"),
    "UTF-16 with byte-order mark": ("{}".encode("utf-16"), "M_NOT_JSON"),
    "UTF-16 without byte-order mark": ("{}".encode("utf-16-le"), "M_NOT_JSON"),
    "UTF-32": ("{}".encode("utf-32"), "M_NOT_JSON"),
    "Latin-1": ('{"reason": "caf\u00e9"}'.encode("latin-1"), "M_NOT_JSON"),
}


@pytest.mark.parametrize("what", list(AMBIGUOUS_BODIES))
def test_ambiguous_bodies_are_refused_on_every_endpoint_with_a_body(
    fuzz_admin: MatrixClient, what: str
) -> None:
    """R13 holds, R4 quota, R10 consent, R12 warnings, sweeps: one parser, one reading."""
    body, errcode = AMBIGUOUS_BODIES[what]
    for method, template in ROUTES:
        if method not in ("PUT", "POST"):
            continue
        resp = send(fuzz_admin, method, fill_valid(template), body)
        assert (resp.status_code, resp.json()["errcode"]) == (400, errcode), (template, resp.text)


def _sweep_count(admin: MatrixClient) -> int:
    return len(send(admin, "GET", "/sweeps", None, [("limit", "100")]).json()["sweeps"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"dry_run": true, "dry_run": false}',
        '{"dry_run": false}'.encode("utf-16"),
        b"\xef\xbb\xbf{}",
    ],
    ids=["dry_run twice", "UTF-16 with BOM", "UTF-8 BOM"],
)
def test_r1_an_ambiguous_sweep_request_starts_no_sweep(
    fuzz_admin: MatrixClient, body: bytes
) -> None:
    """The issue's case: ``dry_run`` given twice (the last used to win: a real sweep)."""
    before = _sweep_count(fuzz_admin)
    for path in ("/sweeps", "/sweep"):
        resp = send(fuzz_admin, "POST", path, body)
        assert resp.status_code == 400, resp.text
    assert _sweep_count(fuzz_admin) == before


def test_unknown_query_parameters_are_refused_on_every_route(fuzz_admin: MatrixClient) -> None:
    """docs/admin-api.md: a query parameter a route does not take is a 400, on every route
    (the check is in the shared request handling, before any handler runs)."""
    for method, template in ROUTES:
        resp = send(fuzz_admin, method, fill_valid(template), b"{}", [("fuzz", "1")])
        assert resp.status_code == 400, (method, template, resp.text)
        answer = resp.json()
        assert answer["errcode"] == "M_INVALID_PARAM"
        assert answer["error"].startswith("unknown query parameter 'fuzz'"), answer


@pytest.mark.parametrize(
    ("path", "name", "values"),
    [
        ("/sweeps", "limit", ("1", "50")),
        ("/audit", "since", ("0", "1")),
        ("/failures", "limit", ("5", "5")),
        ("/holds", "include_released", ("false", "true")),
    ],
)
def test_repeated_query_parameters_are_refused(
    fuzz_admin: MatrixClient, path: str, name: str, values: tuple[str, str]
) -> None:
    """The first of two values used to win silently."""
    resp = send(fuzz_admin, "GET", path, None, [(name, v) for v in values])
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")
    assert resp.json()["error"] == f"query parameter '{name}' given 2 times"


def test_declared_query_parameters_and_a_query_token_still_work(
    fuzz_admin: MatrixClient,
) -> None:
    query = [("since", "0"), ("limit", "5")]
    assert send(fuzz_admin, "GET", "/audit", None, query).status_code == 200
    token = fuzz_admin.access_token
    assert token is not None
    fuzz_admin.access_token = None
    try:
        resp = send(fuzz_admin, "GET", "/holds", None, [("access_token", token)])
    finally:
        fuzz_admin.access_token = token
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/sweeps/" + "f" * 15_000, ()),
        ("DELETE", "/sweeps/" + "f" * 15_000, ()),
        ("GET", "/holds", (("x" * 10_000, "1"),)),
        ("GET", "/audit", (("limit", "9" * 10_000),)),
    ],
    ids=["sweep id", "cancelled sweep id", "query name", "query value"],
)
def test_echoed_values_are_cut_short(
    fuzz_admin: MatrixClient, method: str, path: str, query: tuple[tuple[str, str], ...]
) -> None:
    """A 15,000-character sweep ID used to come back whole in the 404."""
    resp = send(fuzz_admin, method, path, None, query)
    assert 400 <= resp.status_code < 500
    error = resp.json()["error"]
    assert len(error) < 300, error[:400]
    assert "…" in error, error


# -- generated requests ------------------------------------------------------------------

TEXT = st.text(max_size=40)
NASTY_TEXT = st.sampled_from(["\x00", "\ud800", "\udfff", " ", "\n", "é", "%00", "..", "/"])
IDS = (
    TEXT
    | st.builds(lambda a, b: f"@{a}:{b}", TEXT, TEXT)
    | st.builds(lambda a: f"!{a}:lux.test", TEXT)
    | st.builds(lambda t, n: t * n, NASTY_TEXT | TEXT, st.integers(1, 400))
    | st.sampled_from([ADMIN, "@nobody:lux.test", "h1", "", "%", "%zz"])
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | TEXT
    | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)
KEYS = st.sampled_from(
    ["user_id", "room_id", "reason", "dry_run", "as_of", "rules", "quota_bytes", "consent"]
)
# Values that pass some checks and fail others, so that bodies reach deep into handlers.
TELLING = st.sampled_from(
    [
        *(ADMIN, ADMIN + " ", ADMIN.upper(), "@x:remote.example", "!#alias:lux.test"),
        *("!r:lux.test", "case 1", "\ud800", "a\x00b", "", " ", True, False, 0, -1, 1.5),
        *(2**63, 10**30, ["messages"], ["nope"], [], {"a": 1}),
    ]
)
SHAPED = st.dictionaries(KEYS, TELLING | JSON_VALUES, max_size=4)
DEPTHS = st.sampled_from([2, 16, 17, 999, 1001, 5000]) | st.integers(1, 3000)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()


def _twice(pair: tuple[str, Any, Any]) -> bytes:
    """An object with one key given twice."""
    key, first, second = pair
    return b"{%s: %s, %s: %s}" % (_encode(key), _encode(first), _encode(key), _encode(second))


AMBIGUOUS = (
    SHAPED.map(lambda body: b"\xef\xbb\xbf" + _encode(body))
    | SHAPED.map(lambda body: json.dumps(body).encode("utf-16"))
    | SHAPED.map(lambda body: json.dumps(body).encode("utf-16-le"))
    | st.tuples(KEYS, TELLING | JSON_VALUES, TELLING | JSON_VALUES).map(_twice)
)
BODIES = (
    st.none()
    | AMBIGUOUS
    | SHAPED.map(_encode)
    | JSON_VALUES.map(_encode)
    | st.binary(max_size=200)
    | DEPTHS.map(lambda n: b"[" * n + b"]" * n)
    | DEPTHS.map(lambda n: b'{"a":' * n + b"0" + b"}" * n)
    | st.sampled_from([b"", b"{}", b"null", b"1e999", b'{"as_of": -0.0}', b"\xff", b'"\\ud800"'])
)
# Every query parameter a documented route takes; any other one is a 400.
DECLARED_QUERY = ("limit", "since", "include_released", "rule")
QUERY_NAMES = st.sampled_from(DECLARED_QUERY) | TEXT
QUERIES = st.lists(st.tuples(QUERY_NAMES, TEXT | IDS), max_size=3)
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"])


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes | None, list[tuple[str, str]]]:
    method, template = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(METHODS)
    segment = draw(IDS)
    safe = "" if draw(st.integers(0, 4)) else "/@:!"
    encoded = quote(segment.encode("utf-8", "surrogatepass"), safe=safe)
    path = fill(template, encoded)
    if draw(st.integers(0, 19)) == 0:
        path += "/" + _q(draw(TEXT))
    return method, path, draw(BODIES), draw(QUERIES)


def read_one_way(body: bytes | None) -> bool:
    """Whether a body has one reading only: UTF-8 without a byte-order mark, no key twice."""
    if not body or not body.strip():
        return True
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False
    try:
        text = body.decode("utf-8")
        json.loads(text, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        return False
    return True


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a key given twice")
    return dict(pairs)


class Tally:
    """What the generated requests did: how many, how many heavy ones, by status."""

    def __init__(self) -> None:
        self.sent = 0
        self.heavy = 0
        self.statuses: dict[int, int] = {}


def tame(method: str, path: str, body: bytes | None, tally: Tally) -> bytes | None:
    """Keep valid sweeps dry and bounded, reconciliations and exports bounded (module
    docstring), and never erase an account (R14: the fuzzing admin would be the first)."""
    heavy = path.startswith(("/sweep", "/quota")) or path.endswith(("/exports", "/erase"))
    if method != "POST" or not heavy:
        return body
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return body
    if not isinstance(parsed, dict):
        return body
    tally.heavy += 1
    if tally.heavy > HEAVY_BUDGET or path.endswith("/erase"):
        return _encode({**parsed, "fuzz": 1})  # an unknown key: refused before any work
    return _encode({**parsed, "dry_run": True}) if path.startswith("/sweep") else body


def test_generated_requests_never_get_a_5xx_nor_log_a_traceback(
    fuzz_hs: SynapseServer, fuzz_admin: MatrixClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXAMPLES generated requests (2,000 by default; ``LUX_FUZZ_EXAMPLES``) per database."""
    log_start = len(fuzz_hs.log_text())
    tally = Tally()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests_())
    def one(request: tuple[str, str, bytes | None, list[tuple[str, str]]]) -> None:
        method, path, body, query = request
        # Twisted drops a request line over 16 KiB without an answer: not the module's doing.
        assume(len(path) + sum(len(_q(k)) + len(_q(v)) for k, v in query) < 12_000)
        body = tame(method, path, body, tally)
        resp = send(fuzz_admin, method, path, body, query)
        tally.sent += 1
        tally.statuses[resp.status_code] = tally.statuses.get(resp.status_code, 0) + 1
        assert resp.status_code < 500, (method, path, body[:200] if body else body, resp.text)
        # OPTIONS is Synapse's CORS answer, given before any route runs.
        if resp.status_code < 300 and method != "OPTIONS":
            names = [name for name, _ in query]
            assert set(names) <= set(DECLARED_QUERY) and len(set(names)) == len(names), query
            if method in ("PUT", "POST"):
                assert read_one_way(body), (method, path, body[:200] if body else body)
        if resp.status_code >= 400:
            assert len(resp.json().get("error", "")) <= 501, resp.text[:600]

    one()
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz {fuzz_hs.database}: {tally.sent} requests in {elapsed:.1f} s"
            f" ({tally.heavy} sweep/reconcile bodies), statuses {sorted(tally.statuses.items())}"
        )
    assert tally.sent >= EXAMPLES
    new_log = fuzz_hs.log_text()[log_start:]
    assert "Traceback" not in new_log, new_log[new_log.index("Traceback") - 2000 :][:6000]
