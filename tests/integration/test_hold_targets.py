"""R13: a hold names a target that exists, exactly as Synapse stores it (SQLite and PostgreSQL).

Time: nothing here depends on time; holds are placed and released at once.
"""

from collections.abc import Callable

import pytest

from tests.harness import MatrixClient, SynapseServer, uid

pytestmark = pytest.mark.integration


def put_hold(admin: MatrixClient, **target: object) -> tuple[int, dict[str, object]]:
    hold_id = uid("target")
    status, body = admin.lux("PUT", f"/holds/{hold_id}", {**target, "reason": "case 7"})
    if status in (200, 201):
        admin.lux("DELETE", f"/holds/{hold_id}")
    return status, body


# (what the test calls it, how to build the user ID from an existing one, status, errcode)
USER_TARGETS: list[tuple[str, Callable[[str], str], int, str | None]] = [
    ("exactly as stored", lambda u: u, 201, None),
    ("a local user that does not exist", lambda u: u.replace(":", "e:", 1), 404, "M_NOT_FOUND"),
    ("another case", lambda u: u.upper().replace("LUX.TEST", "lux.test"), 404, "M_NOT_FOUND"),
    ("a trailing space", lambda u: u + " ", 400, "M_INVALID_PARAM"),
    ("a leading space", lambda u: " " + u, 400, "M_INVALID_PARAM"),
    ("a NUL character", lambda u: u.replace(":", "\x00:"), 400, "M_BAD_JSON"),
    ("256 characters", lambda u: "@" + "a" * (255 - len(":lux.test")) + ":lux.test", 400, None),
    ("100 KB", lambda u: "@" + "a" * 100_000 + ":lux.test", 400, "M_INVALID_PARAM"),
    ("a remote user", lambda u: "@someone:remote.example", 201, None),
    ("a remote user on a port", lambda u: "@someone:[::1]:8448", 201, None),
    ("a bad server name", lambda u: "@someone:remote example", 400, "M_INVALID_PARAM"),
    ("no server name", lambda u: u.split(":")[0], 400, "M_INVALID_PARAM"),
]


@pytest.mark.parametrize(
    ("build", "status", "errcode"),
    [case[1:] for case in USER_TARGETS],
    ids=[case[0] for case in USER_TARGETS],
)
def test_r13_user_holds_name_a_real_user_exactly(
    admin: MatrixClient,
    user: MatrixClient,
    build: Callable[[str], str],
    status: int,
    errcode: str | None,
) -> None:
    target = build(str(user.user_id))
    got, body = put_hold(admin, user_id=target)
    assert got == status, body
    if errcode is not None:
        assert body["errcode"] == errcode
    if status >= 400:
        assert isinstance(body["error"], str) and len(body["error"]) < 300


def test_r13_a_256_character_user_id_is_refused_and_255_is_checked(admin: MatrixClient) -> None:
    longest = "@" + "a" * (255 - len("@:lux.test")) + ":lux.test"
    assert len(longest) == 255
    assert put_hold(admin, user_id=longest)[0] == 404  # well formed, but nobody has it
    status, body = put_hold(admin, user_id=longest[:1] + "a" + longest[1:])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert "255" in str(body["error"])


def test_r13_a_deactivated_user_can_still_be_held(
    synapse: SynapseServer, admin: MatrixClient
) -> None:
    gone = synapse.register_user(uid("gone"))
    assert gone.password is not None
    gone.deactivate(gone.password)
    assert put_hold(admin, user_id=str(gone.user_id))[0] == 201


@pytest.mark.parametrize(
    ("target", "status", "errcode"),
    [
        ("!#alias:lux.test", 400, "M_INVALID_PARAM"),
        ("#alias:lux.test", 400, "M_INVALID_PARAM"),
        ("!", 400, "M_INVALID_PARAM"),
        ("!room :lux.test", 400, "M_INVALID_PARAM"),
        ("!" + "r" * 255 + ":lux.test", 400, "M_INVALID_PARAM"),
        ("!unknownroom:lux.test", 404, "M_NOT_FOUND"),
        ("!AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCd", 404, "M_NOT_FOUND"),
        (["!list:lux.test"], 400, "M_INVALID_PARAM"),
    ],
)
def test_r13_room_holds_name_a_room_this_server_knows(
    admin: MatrixClient, target: object, status: int, errcode: str
) -> None:
    got, body = put_hold(admin, room_id=target)
    assert (got, body["errcode"]) == (status, errcode), body


def test_r13_a_room_everyone_left_can_still_be_held(
    admin: MatrixClient, user: MatrixClient
) -> None:
    room = user.create_room()
    assert put_hold(admin, room_id=room)[0] == 201
    assert put_hold(admin, room_id=room + " ")[0] == 400
    user.leave(room)
    assert put_hold(admin, room_id=room)[0] == 201
