"""The operator commands (``sweep``, ``estimate``, ``report``: R1-R12 sweeps, R14
reports) against a hostile or mistaken server, over real sockets on 127.0.0.1: every
failure is one line and exit status 2, Ctrl-C is 130 and cancels the sweep once, never
a traceback (issue 21 problem 5, issue 25 point 9).

The server is ``hostile_server.HostileServer`` (no Synapse): hypothesis generates its
answers (HTML, JSON of every type in every field, unknown statuses, slow answers,
closed connections, bytes that are not HTTP). Time: the client's timeouts and the
grace given to a server that stops answering are shortened for the tests (patched
constants), so nothing waits for seconds; no test sleeps for a period it checks.
"""

import io
import json
import signal
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_lux_privacy.admin_cli import client, polling
from synapse_lux_privacy.cli import main
from tests.unit.hostile_server import (
    CLOSE,
    GARBAGE,
    SIGINT,
    SLOW,
    Answer,
    HostileServer,
    completed_sweep,
    listener,
)

API = "/_synapse/client/lux_privacy/v1"
ANSWER_TIMEOUT_S = 0.3
CONNECT_TIMEOUT_S = 0.5
LOST_CONTACT_S = 0.2


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    hostile = HostileServer()
    with (
        patch.object(client, "ANSWER_TIMEOUT_S", ANSWER_TIMEOUT_S, create=True),
        patch.object(client, "CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S, create=True),
        patch.object(polling, "LOST_CONTACT_S", LOST_CONTACT_S, create=True),
    ):
        yield hostile
    hostile.close()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text("syt_secret\n")
    return str(path)


def run(*argv: str) -> tuple[int, str, str]:
    """The command as the operator runs it; its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as e:  # argparse's usage errors
            status = int(e.code or 0)
    return status, out.getvalue(), err.getvalue()


def command(name: str, url: str, token_file: str) -> list[str]:
    server_args = ["--url", url, "--token-file", token_file]
    if name == "report":
        return ["report", "@alice:example.org", *server_args]
    if name == "estimate":
        return ["estimate", *server_args, "--interval", "0.01", "--sample-seconds", "0.05"]
    return ["sweep", *server_args, "--interval", "0.01"]


def assert_one_error_line(status: int, err: str, *expected: str) -> str:
    """Exit 2 and one ``error:`` line holding each expected phrase; the line."""
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for phrase in expected:
        assert phrase in lines[0], err
    return lines[0]


# -- generated answers -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
statuses = st.sampled_from(["running", "completed", "completed_with_errors", "cancelled"])
record_fields = st.sampled_from(list(completed_sweep()))
count_fields = st.sampled_from(["candidates", "deleted", "held", "skipped", "errors", "bytes"])


@st.composite
def sweep_records(draw: st.DrawFn) -> dict[str, Any]:
    """A sweep record with some fields, or some counts of a rule, of any JSON type; or an
    unknown status."""
    record = completed_sweep(draw(statuses))
    record.update(draw(st.dictionaries(record_fields, json_values, max_size=2)))
    if draw(st.booleans()):
        record["status"] = draw(st.text(max_size=12))
    if isinstance(record.get("results"), dict) and draw(st.booleans()):
        counts = draw(st.dictionaries(count_fields, json_values, max_size=2))
        rule = draw(st.sampled_from(["messages", "[bold]x[/]", "\x1b[2J"]))
        record["results"] = {rule: {**record["results"].get("messages", {}), **counts}}
    return record


bodies = st.one_of(
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(lambda v: json.dumps(v).encode(), sweep_records()),
    st.builds(lambda t: f"<html><body><h1>{t}</h1></body></html>".encode(), st.text()),
    st.binary(max_size=64),
)
answers = st.builds(
    Answer,
    status=st.sampled_from([200, 200, 200, 202, 204, 302, 400, 403, 404, 409, 500, 502, 503]),
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/html"]),
    headers=st.sampled_from([(), (("Location", "https://elsewhere.example/"),)]),
    action=st.sampled_from(["answer"] * 6 + [CLOSE, GARBAGE, SLOW]),
    delay_s=st.just(ANSWER_TIMEOUT_S * 2),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["sweep", "estimate", "report"]),
    posts=st.lists(answers, max_size=1),
    gets=st.lists(answers, min_size=1, max_size=3),
    deletes=st.lists(answers, max_size=1),
)
def test_r1_r14_every_hostile_answer_ends_in_one_line_never_a_traceback(
    server: HostileServer,
    token_file: str,
    name: str,
    posts: list[Answer],
    gets: list[Answer],
    deletes: list[Answer],
) -> None:
    """Whatever the server answers, the command ends: 0 or 1 for a sweep it could
    follow, else exit 2 with an ``error:`` line last; every line it prints is one
    printable line (no terminal escapes from the server); no unknown status is waited
    on for ever (after the scripted answers the server says ``completed``, so a
    command still polling an unknown status would print its progress, not fail)."""
    server.script(POST=posts, GET=gets, DELETE=deletes)
    status, out, err = run(*command(name, server.url, token_file))
    assert "Traceback" not in err
    assert "a bug: please report it" not in err, err
    assert status in (0, 1, 2), err
    if status == 2:
        assert err.splitlines()[-1].startswith("error: "), err
    for line in (out + err).splitlines():
        assert line.isprintable(), repr(line)


def test_r1_an_unknown_status_ends_the_wait_with_an_error(
    server: HostileServer, token_file: str
) -> None:
    """A status the command does not know (a newer module's) is not polled for ever."""
    server.script(GET=[Answer.json(completed_sweep("paused"))] * 50)
    status, _, err = run(*command("sweep", server.url, token_file))
    assert_one_error_line(status, err, "status 'paused'", "does not know")
    assert len(server.requests("GET")) == 1


@pytest.mark.parametrize(
    ("body", "kind", "expected"),
    [
        (b"<html><h1>502 Bad Gateway</h1></html>", "text/html", "is not JSON (text/html"),
        (b"[]", "application/json", "not a user's report (a JSON object): []"),
        (b"null", "application/json", "not a user's report (a JSON object): None"),
    ],
)
def test_r14_report_refuses_html_or_a_json_value_that_is_no_report(
    server: HostileServer, token_file: str, body: bytes, kind: str, expected: str
) -> None:
    server.script(GET=[Answer(200, body, kind)])
    status, out, err = run(*command("report", server.url, token_file))
    assert_one_error_line(status, err, expected)
    assert out == ""


def test_r1_a_wrongly_typed_field_is_named(server: HostileServer, token_file: str) -> None:
    record = completed_sweep()
    record["results"]["messages"]["deleted"] = "2"
    server.script(GET=[Answer.json(record)])
    status, _, err = run(*command("sweep", server.url, token_file))
    assert_one_error_line(status, err, "results.messages.deleted = '2', not a whole number")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (b"", "GET /sweep/settings is not the sweep settings"),
        (b"[]", "GET /sweep/settings is not the sweep settings"),
        (b'{"sweep_batch_size": "500"}', "sweep_batch_size = '500', not a whole number"),
        (
            b'{"sweep_batch_size": 500, "sweep_adaptive_pace": {"enabled": "yes"}}',
            "sweep_adaptive_pace.enabled = 'yes', not true or false",
        ),
    ],
)
def test_r1_estimate_names_a_settings_answer_it_cannot_read(
    server: HostileServer, token_file: str, settings: bytes, expected: str
) -> None:
    """The estimate (issue 21) reads the server's pace settings first: an empty, wrongly
    shaped or wrongly typed answer is one line and exit 2, not "unexpected ... a bug"."""
    server.script(GET=[Answer(200, settings, "application/json")])
    status, _, err = run(*command("estimate", server.url, token_file))
    assert_one_error_line(status, err, expected)


# -- the first use: addresses, TLS, protocols ------------------------------------------


def test_https_against_plain_http_says_so_within_the_connect_timeout(
    server: HostileServer, token_file: str
) -> None:
    """Issue 21: a TLS handshake with a plain HTTP port is given CONNECT_TIMEOUT_S (10 s,
    here 0.5 s), then the hint to use http://, not a 60 s blank screen."""
    with listener(None) as port:
        status, _, err = run(*command("report", f"https://127.0.0.1:{port}", token_file))
    assert_one_error_line(
        status,
        err,
        f"TLS handshake with 127.0.0.1:{port} failed (no answer within {CONNECT_TIMEOUT_S:g} s)",
        f"If it speaks plain HTTP, use --url http://127.0.0.1:{port}",
    )


def test_https_against_an_http_server_that_answers_gives_the_hint(
    server: HostileServer, token_file: str
) -> None:
    """The HTTP server answers the TLS client hello with a 400: the handshake fails."""
    status, _, err = run(*command("report", server.url.replace("http:", "https:"), token_file))
    assert_one_error_line(status, err, "TLS handshake", f"use --url {server.url}")


@pytest.mark.parametrize(
    "greeting", [b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"-ERR unknown command\r\n", b""]
)
def test_a_port_that_is_not_http_gives_one_line_and_exit_2(
    server: HostileServer, token_file: str, greeting: bytes
) -> None:
    """Issue 21: an SSH or Redis port, or one that closes at once: exit 2, one line."""
    with listener(greeting) as port:
        status, _, err = run(*command("report", f"http://127.0.0.1:{port}", token_file))
    assert_one_error_line(
        status, err, f"127.0.0.1:{port} does not answer HTTP", "Synapse's HTTP listener"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"http://127.0.0.1:8008{API}",
            "give the server's base URL, e.g. --url http://127.0.0.1:8008",
        ),
        (f"https://matrix.example.org{API}/", "e.g. --url https://matrix.example.org"),
        ("https://matrix.example.org/?x=1", "takes no query (?...) or fragment (#...)"),
        ("https://matrix.example.org/#top", "takes no query (?...) or fragment (#...)"),
        ("http://[::1", "is not a valid URL"),
        ("http://[::1]:port", "is not a valid URL"),
        ("http://host:99999", "is not a valid URL"),
        ("http://matrix.example.org /x", "spaces or control characters"),
        ("http://admin:pw@matrix.example.org", "no user@ in the URL"),
    ],
)
def test_a_url_that_is_no_base_url_gives_one_line_and_exit_2(
    token_file: str, url: str, expected: str
) -> None:
    """Issue 21 and 25: the API prefix, a query, a fragment, a broken IPv6 literal."""
    status, _, err = run("report", "@a:b", "--url", url, "--token-file", token_file)
    assert_one_error_line(status, err, "--url", expected)


def test_a_404_from_a_server_without_the_module_says_what_to_check(
    server: HostileServer, token_file: str
) -> None:
    unknown = Answer.json({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, 404)
    server.script(GET=[unknown])
    status, _, err = run(*command("report", server.url, token_file))
    assert_one_error_line(
        status, err, "404 M_UNRECOGNIZED", "is the synapse_lux_privacy module loaded"
    )


def test_a_redirect_is_reported_and_does_not_carry_the_token(
    server: HostileServer, token_file: str
) -> None:
    """A redirect to another address (here the same server under another path) is not
    followed: the token goes nowhere else, and the new base URL is suggested."""
    target = f"{server.url}/elsewhere{API}/users/%40alice%3Aexample.org"
    server.script(GET=[Answer(302, headers=(("Location", target),))])
    status, _, err = run(*command("report", server.url, token_file))
    assert_one_error_line(status, err, f"use --url {server.url}/elsewhere")
    assert [r.path for r in server.requests("GET")] == [f"{API}/users/%40alice%3Aexample.org"]


def test_a_token_file_of_two_lines_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    """Issue 25: a header cannot hold a line break; the file is refused, not sent."""
    token = tmp_path / "token"
    token.write_text("syt_first\nsyt_second\n")
    status, _, err = run(
        "report", "@a:b", "--url", "http://127.0.0.1:9", "--token-file", str(token)
    )
    assert_one_error_line(status, err, "holds several lines")


def test_interval_inf_is_a_usage_error(token_file: str) -> None:
    """Issue 25: ``--interval inf`` would make the first sleep raise OverflowError."""
    status, _, err = run(*command("sweep", "http://127.0.0.1:9", token_file), "--interval", "inf")
    assert status == 2
    assert "argument --interval: 'inf' is not a positive number of seconds" in err


# -- a server that stops answering, and Ctrl-C -----------------------------------------


def test_r1_a_server_that_stops_answering_mid_sweep_leaves_the_sweep_followable(
    server: HostileServer, token_file: str
) -> None:
    """Issue 21: the server answers twice, then closes every connection; after
    LOST_CONTACT_S (30 s, here 0.2 s) of trying, the command says the sweep may still
    run (or be marked interrupted) and how to follow it."""
    running = Answer.json(completed_sweep("running"))
    server.script(GET=[running, running], then={"GET": Answer(action=CLOSE)})
    status, _, err = run(*command("sweep", server.url, token_file))
    lines = err.splitlines()
    assert status == 2
    assert "trying again for 0.2 s" in lines[0]
    assert lines[-1].startswith("error: the server has not answered for 0.2 s (cannot reach")
    assert "The sweep may still be running" in lines[-1]
    assert "the next sweep marks it interrupted" in lines[-1]
    assert f"Follow it with GET {API}/sweeps/s1" in lines[-1]


def test_r1_a_server_back_within_the_grace_is_followed_to_the_end(
    server: HostileServer, token_file: str
) -> None:
    """A restart shorter than LOST_CONTACT_S: polling goes on to the sweep's end."""
    server.script(GET=[Answer(action=CLOSE), Answer(502, b"<html>Bad Gateway</html>")])
    status, _, err = run(*command("sweep", server.url, token_file))
    assert status == 0, err
    assert "the server answers again" in err


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C as on a terminal (a run started in the background inherits it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_r1_ctrl_c_while_the_sweep_starts_cancels_it_once_and_exits_130(
    server: HostileServer, token_file: str, ctrl_c: None
) -> None:
    """Issue 25: Ctrl-C (a real SIGINT) during ``POST /sweeps`` takes effect once the
    server has said which sweep it started; that sweep is cancelled, once."""
    server.script(POST=[Answer(202, b'{"sweep_id": "s1"}', action=SIGINT)])
    status, _, err = run(*command("sweep", server.url, token_file))
    assert status == 130, err
    assert [r.path for r in server.requests("DELETE")] == [f"{API}/sweeps/s1"]
    assert server.requests("GET") == []
    assert "sweep s1 was asked to stop after its current batch" in err


def test_r1_a_second_ctrl_c_while_the_sweep_starts_leaves_at_once(
    server: HostileServer, token_file: str, ctrl_c: None
) -> None:
    server.script(POST=[Answer(202, b'{"sweep_id": "s1"}', action=SIGINT, interrupts=2)])
    status, _, err = run(*command("sweep", server.url, token_file))
    assert status == 130, err
    assert "Traceback" not in err
    assert f"GET {API}/sweeps lists the latest" in err


def test_r1_a_second_ctrl_c_during_the_cancel_request_exits_130_having_sent_it_once(
    server: HostileServer, token_file: str, ctrl_c: None
) -> None:
    """Issue 25: Ctrl-C while following, then again while the cancel request waits."""
    server.script(
        GET=[Answer(200, json.dumps(completed_sweep("running")).encode(), action=SIGINT)],
        DELETE=[Answer(200, b"{}", action=SIGINT)],
    )
    status, _, err = run(*command("sweep", server.url, token_file))
    assert status == 130, err
    assert "Traceback" not in err
    assert len(server.requests("DELETE")) == 1
    assert "the request to cancel sweep s1 may not have reached the server" in err
