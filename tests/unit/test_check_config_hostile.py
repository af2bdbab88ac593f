"""``check-config`` on hostile or ambiguous YAML: never a traceback, never an "OK" for a
config that deletes nothing or cannot keep up (R1-R12), findings for what YAML 1.1
resolves silently, and the module's own parser refusing what would hang or blow up.

Each shape of issue 25 point 8 has its case; then a property-based test (hypothesis)
feeds generated homeserver.yaml texts and asserts the documented exit status (0, 1, 2),
no exception and no fallback "could not be checked" line.

Time: nothing here depends on time.
"""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synapse.module_api.errors import ConfigError

from synapse_lux_privacy import cli
from synapse_lux_privacy.cli import main
from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.regex_safety import backtracks_catastrophically

MODULE = "synapse_lux_privacy.LuxPrivacyModule"
# Synapse settings that make the base document compliant (see test_cli.py).
BASE = """\
server_name: example.org
push: {include_content: false}
email: {notif_from: noreply@example.org}
user_ips_max_age: null
redaction_retention_period: null
require_auth_for_profile_requests: true
limit_profile_requests_to_users_who_share_rooms: true
"""


def _write(tmp_path: Path, module_config: str) -> Path:
    """homeserver.yaml with the module's ``config:`` block given as YAML text (indented
    under ``config:`` here), so that the test controls the raw text."""
    body = "\n".join("      " + line for line in module_config.splitlines())
    path = tmp_path / "homeserver.yaml"
    path.write_text(f"{BASE}modules:\n  - module: {MODULE}\n    config:\n{body}\n")
    return path


def _check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    status = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_base_document_is_compliant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases below start from a config that passes, so each finding is theirs."""
    status, out, err = _check(capsys, _write(tmp_path, "sweep_batch_size: 90"))
    assert (status, err) == (0, "")
    assert out.startswith("OK")


def test_an_integer_of_4301_digits_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _check(capsys, _write(tmp_path, "sweep_batch_size: " + "9" * 4301))
    assert (status, out) == (2, "")
    assert err == (
        f"error: {tmp_path / 'homeserver.yaml'} line 11: modules[0].config.sweep_batch_size"
        " is a number of 4,301 digits, more than Synapse can read (4,300)\n"
    )


@pytest.mark.parametrize(
    ("config", "key", "placeholder"),
    [
        ('quota: {notice_texts: {en: "{count:,>999999999999}"}}', "quota.notice_texts.en",
         "{count:,>999999999999}"),
        ('quota: {notice_texts: {en: "{quota!r}"}}', "quota.notice_texts.en", "{quota!r}"),
        ('quota: {notice_texts: {en: "{count:%}"}}', "quota.notice_texts.en", "{count:%}"),
        ('notify: {texts: {en: {subject: "{date:>3000000}", body: "b"}}}',
         "notify.texts.en.subject", "{date:>3000000}"),
        ('notify: {texts: {en: {subject: "s", body: "{date.year}"}}}', "notify.texts.en.body",
         "{date.year}"),
        ('notify: {texts: {en: {subject: "s", body: "{}"}}}', "notify.texts.en.body", "{}"),
    ],
)  # fmt: skip
def test_r4_r12_templates_with_format_specs_or_conversions_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, key: str, placeholder: str
) -> None:
    """Only plain ``{name}`` placeholders: a format spec could build a gigabyte text."""
    status, out, err = _check(capsys, _write(tmp_path, config))
    assert (status, out) == (2, "")
    assert err.startswith(f"error in modules[0].config: {key}: ")
    assert f'("{placeholder}" is not allowed)' in err


def test_r4_r12_plain_placeholders_and_doubled_braces_are_accepted() -> None:
    config = parse_config(
        {
            "quota": {"notice_texts": {"en": "{count} files ({removed}) over {quota} {{x}}"}},
            "notify": {"texts": {"de": {"subject": "{server_name}", "body": "{user_id} {date}"}}},
        }
    )
    assert config.quota.notice_texts == (("en", "{count} files ({removed}) over {quota} {{x}}"),)


@pytest.mark.parametrize("value", ["true", "on", "yes", "True"])
def test_r1_r12_dry_run_is_reported_as_nothing_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """``dry_run: true`` (or YAML 1.1's ``on``/``yes``) is never "OK": nothing goes."""
    status, out, _ = _check(capsys, _write(tmp_path, f"dry_run: {value}"))
    assert status == 1
    assert out.splitlines()[0] == (
        "dry_run is true, so nothing is deleted: every sweep only counts what is due; it"
        " should be false once dry runs have shown what goes (R1-R12)"
    )


def test_a_key_given_twice_is_a_finding_naming_it_and_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _check(capsys, _write(tmp_path, "dry_run: true\ndry_run: false"))
    assert status == 1
    assert out.splitlines()[0] == (
        f"modules[0].config.dry_run is given twice ({tmp_path / 'homeserver.yaml'} lines 11"
        " and 12) and Synapse silently takes the last one; it should be given once (YAML, as"
        " Synapse reads it)"
    )


def test_a_top_level_key_given_twice_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "sweep_batch_size: 90")
    path.write_text(path.read_text() + "server_name: example.org\n")
    status, out, _ = _check(capsys, path)
    assert status == 1
    assert out.startswith("server_name is given twice")


def test_r1_r12_sexagesimal_number_is_a_finding_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML 1.1 reads ``1:30`` as 90: the operator meant something else."""
    status, out, _ = _check(capsys, _write(tmp_path, "sweep_batch_size: 1:30"))
    assert status == 1
    assert out.splitlines()[0] == (
        f"modules[0].config.sweep_batch_size is 1:30 ({tmp_path / 'homeserver.yaml'} line 11),"
        " which YAML 1.1 reads as the base-60 number 90; it should be the number meant,"
        ' written plainly, or "1:30" quoted if text is meant (YAML, as Synapse reads it)'
    )


def test_quoted_times_are_not_sexagesimal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = _check(capsys, _write(tmp_path, 'sweep_batch_size: 90\nx_time: "1:30"'))
    assert status == 2  # x_time is an unknown key; but no sexagesimal finding came first
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        ("sweep_pace: 0.0001", "sweep_pace", "0.0001 items per second, at most 9 items a day"),
        (
            "sweep_adaptive_pace: {enabled: true, min_pace: 0.5}",
            "sweep_adaptive_pace.min_pace",
            "0.5 items per second, at most 43,200 items a day",
        ),
    ],
)
def test_r1_r12_a_pace_below_one_item_per_second_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, key: str, value: str
) -> None:
    status, out, _ = _check(capsys, _write(tmp_path, config))
    assert status == 1
    assert out.splitlines()[0].startswith(f"{key} is {value}, fewer than a day's due items")


def test_r1_r12_a_pace_of_one_item_per_second_gives_no_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = "sweep_pace: 1\nsweep_adaptive_pace: {enabled: false, min_pace: 0.5}"
    status, _, _ = _check(capsys, _write(tmp_path, config))
    assert status == 0


def test_r10_credentials_in_the_national_directory_url_are_a_finding_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    config = (
        "directory: {national: {url: 'https://lux:s3cret@directory.example/v1',"
        f" token_path: {token}}}}}"
    )
    status, out, _ = _check(capsys, _write(tmp_path, config))
    assert status == 1
    assert out.splitlines()[0].startswith(
        'directory.national.url is "https://***@directory.example/v1", with a user name or'
        " password in it"
    )
    assert "s3cret" not in out


@pytest.mark.parametrize("pattern", ["(a+)+$", "@(a*)*:example.org", "(a|aa)+", "(x+x+)+y"])
def test_r12_exempt_pattern_with_catastrophic_backtracking_exits_2_and_the_module_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str
) -> None:
    """The same parse_config runs at Synapse's start: the module refuses it too."""
    status, out, err = _check(capsys, _write(tmp_path, f"accounts: {{exempt: ['re:{pattern}']}}"))
    assert (status, out) == (2, "")
    assert err.startswith("error in modules[0].config: accounts.exempt[0]: ")
    assert "exponential time" in err
    with pytest.raises(ConfigError):
        parse_config({"accounts": {"exempt": ["re:" + pattern]}})


@pytest.mark.parametrize(
    ("pattern", "slow"),
    [
        ("(a+)+$", True), ("(a*)*", True), ("((ab)*c)*", True), ("(a?)+", True),
        ("(x+){2,9}", True), ("(?=(a+)+)b", True), ("(a|aa)+", True), ("(foo|bar)*", True),
        ("@bot-[0-9]+:example\\.org", False), ("@.*:example\\.org", False), ("(a+)?", False),
        ("(a{2,3}){2}", False), ("(a|b)+", False), ("(?>a+)+", False), ("(a++)+", False),
        ("@(bot|svc)-[0-9]+:x", False), ("(?:ab)+", False),
    ],
)  # fmt: skip
def test_r12_nested_repetitions_are_recognised(pattern: str, slow: bool) -> None:
    assert backtracks_catastrophically(pattern) is slow


# -- generated YAML ----------------------------------------------------------------------

NASTY = st.sampled_from(
    ["on", "no", "~", "0", "-1", "1:30", "1:30:00", "1:2.5", "0x1F", "017", ".inf", ".nan",
     "9" * 4301, "-" + "9" * 4400, "0x" + "f" * 5000, "0.0001", "1e400", "'{count:,>9999}'",
     "'{date:>300000000}'", "'{quota!r}'", "'{count:%}'", "'{}'", "'{'", "'re:(a+)+$'",
     "'re:.*'", "'https://u:p@x.example'", "!!binary aGk=", "!!python/name:os.system",
     "[]", "{}", "2001-12-14", "!!set {a, b}", "'\\ud800'", '"\\x00"', "&a [1, 2]", "*a",
     "[*a, *a]"]
)  # fmt: skip
BOOL = st.sampled_from(["true", "false", "on", "off", "yes"])
DURATION = st.sampled_from(["24M", "1y", "30d", "1h", "1m", "0", "90", "7d", "1:30"])
NUMBER = st.sampled_from(["1", "0.5", "2", "500", "0.0001", "1e6", "10", "1:30", "1_000"])
TEMPLATE = st.sampled_from(
    ["'{count} files'", "'{removed} of {quota}'", "'{user_id} {date}'", "'{server_name}'",
     "'{{x}}'", "'{count:>99999}'", "'{date!s}'", "'{last_active[0]}'", "'plain'"]
)  # fmt: skip
EXEMPT = st.sampled_from(
    ["'@admin:example.org'", "'re:@bot-[0-9]+:example\\.org'", "'re:(a+)+$'", "'re:(a|aa)+'",
     "'re:.*'", "'@Admin:example.org'", "'re:['"]
)  # fmt: skip


def _flow(items: list[str]) -> str:
    """A YAML flow sequence of the given scalars."""
    return f"[{', '.join(items)}]"


SCHEMA: dict[str, object] = {
    "dry_run": BOOL, "sweep_interval": DURATION, "allow_short_periods": BOOL,
    "sweep_batch_size": NUMBER, "sweep_pace": NUMBER,
    "sweep_adaptive_pace": {"enabled": BOOL, "max_slowdown": NUMBER, "min_pace": NUMBER,
                            "rest": NUMBER},
    "retention": {"messages": DURATION, "attachments": DURATION, "redacted_content": DURATION},
    "quota": {"default_bytes": st.sampled_from(["5G", "0", "1T", "1:30"]),
              "notice_texts": {"en": TEMPLATE, "de": TEMPLATE}},
    "notify": {"account_deletion": st.lists(DURATION, max_size=3).map(_flow),
               "texts": {"en": {"subject": TEMPLATE, "body": TEMPLATE}}},
    "accounts": {"inactive_delete_after": DURATION,
                 "exempt": st.lists(EXEMPT, max_size=3).map(_flow)},
    "directory": {"require_consent": BOOL,
                  "national": {"url": st.sampled_from(["'https://dir.example'",
                                                       "'https://u:p@dir.example'", "'ftp://x'"]),
                               "token_path": st.just("/nonexistent")}},
    "logs": {"ip_retention": DURATION},
}  # fmt: skip


@st.composite
def yaml_blocks(draw: st.DrawFn, schema: dict[str, object] = SCHEMA) -> str:
    """A block mapping following the config's keys, with valid values, nasty scalars,
    repeated keys and the odd unknown key mixed in."""
    lines = []
    keys = draw(st.lists(st.sampled_from(sorted(schema)), max_size=6))  # repeats likely
    if draw(st.integers(0, 9)) == 0:
        keys.append(draw(st.sampled_from(["x", "<<", "'\\t'"])))
    for key in keys:
        sub = schema.get(key)
        if isinstance(sub, dict) and draw(st.integers(0, 5)):
            inner = draw(yaml_blocks(sub))
            lines.append(f"{key}:")
            lines.extend("  " + line for line in inner.splitlines())
        else:
            good = sub if isinstance(sub, st.SearchStrategy) else NASTY
            value = draw(NASTY) if draw(st.integers(0, 3)) == 0 else draw(good)
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def test_generated_yaml_always_gets_an_exit_status_and_never_an_exception(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 generated config blocks, some after a broken first line: main() returns 0, 1 or
    2; an unforeseen exception (caught as "could not be checked") fails the test too."""
    # The installed Synapse is checked the same way whatever the YAML: not redone 400 times.
    monkeypatch.setattr(cli, "_synapse_findings", lambda allow_untested: [])
    path = tmp_path / "homeserver.yaml"

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(yaml_blocks(), st.sampled_from(["", "x: [", "modules: 3\n", "\t", "%YAML 1.1\n"]))
    def one(block: str, prefix: str) -> None:
        body = "\n".join("      " + line for line in block.splitlines())
        path.write_text(f"{prefix}{BASE}modules:\n  - module: {MODULE}\n    config:\n{body}\n")
        status = main(["check-config", str(path)])
        out, err = capsys.readouterr()
        assert status in (0, 1, 2), (block, out, err)
        assert "could not be checked" not in err, (block, err)
        assert "Traceback" not in out + err
        assert (status == 2) == bool(err), (block, out, err)
        assert status != 0 or not re.search(r"dry_run: (true|on|yes)", block, re.I)

    one()
