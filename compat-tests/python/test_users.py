"""User features through the python SDK (`pusher` 3.3.4): `authenticate_user` for
`pusher:signin`, `send_to_user` reaching every signed-in socket of the user (and nobody else),
and `terminate_user_connections`.

SDK bug (pusher-http-python 3.3.4, `pusher_client.py` `terminate_user_connections`): it builds
`Request(self, POST, "/users/{}/terminate_connections")` — without the `/apps/{app_id}` prefix
every other method uses and the Pusher HTTP API requires (PROTOCOL.md §7.5; the Node SDK adds
it). herald answers that path 404, so the SDK method raises. The test pins that, then makes the
correct request with the SDK's own signing (`pusher.http.Request`) to show herald terminates.
"""

from __future__ import annotations

import json
import time

import pusher
import pytest
from conftest import WAIT, PusherError, unique
from pusher.http import POST, Request
from websockets.exceptions import ConnectionClosed


def data_of(frame: dict):
    d = frame.get("data")
    return json.loads(d) if isinstance(d, str) else d


def close_code(client, timeout: float = WAIT) -> int:
    """Read until the server closes the socket (deadline-bound); the close code it sent."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client._read_one(deadline)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            raise AssertionError(f"the server did not close the socket within {timeout}s") from None


def sign_in(client, sdk, user_id: str, **extra) -> dict:
    auth = sdk.authenticate_user(client.socket_id, {"id": user_id, **extra})
    client.send({"event": "pusher:signin", "data": {"auth": auth["auth"], "user_data": auth["user_data"]}})
    ok = client.wait_event("pusher:signin_success")
    assert data_of(ok)["user_data"] == auth["user_data"]
    return auth


def test_send_to_user_reaches_every_signed_in_socket_only(ws, sdk):
    user, other = unique("py-u-"), unique("py-o-")
    tab1, tab2, stranger, anonymous = ws(), ws(), ws(), ws()
    sign_in(tab1, sdk, user, user_info={"name": "One"})
    sign_in(tab2, sdk, user)
    sign_in(stranger, sdk, other)
    # tab2 never subscribes to #server-to-user-<id>: herald delivers by user (PROTOCOL.md §7.3).
    tab1.subscribe(f"#server-to-user-{user}")
    assert sdk.send_to_user(user, "notice", {"n": 1}) == {}
    for tab in (tab1, tab2):
        frame = tab.wait_event("notice", f"#server-to-user-{user}")
        assert data_of(frame) == {"n": 1}
    # Sentinels on the other sockets, then check "notice" never reached them.
    sdk.send_to_user(other, "sentinel", {})
    stranger.wait_event("sentinel", f"#server-to-user-{other}")
    channel = unique("py-anon-")
    anonymous.subscribe(channel)
    sdk.trigger(channel, "sentinel", {})
    anonymous.wait_event("sentinel", channel)
    assert stranger.events("notice") == []
    assert anonymous.events("notice") == []
    assert len(tab1.events("notice")) == 1


def test_subscribing_to_another_users_channel_is_refused(ws, sdk):
    c = ws()
    sign_in(c, sdk, unique("py-me-"))
    with pytest.raises(PusherError) as err:
        c.subscribe(f"#server-to-user-{unique('py-not-me-')}")
    assert err.value.data["code"] == 4009


def test_terminate_user_connections_sdk_path_bug_and_the_correct_request(ws, sdk, herald):
    user, other = unique("py-term-"), unique("py-keep-")
    a, b, bystander = ws(), ws(), ws()
    sign_in(a, sdk, user)
    sign_in(b, sdk, user)
    sign_in(bystander, sdk, other)

    # The SDK's own method: POST /users/<id>/terminate_connections (no /apps/<id>) → 404.
    made = sdk._pusher_client.terminate_user_connections.make_request(user)
    assert made.path == f"/users/{user}/terminate_connections", "SDK fixed? then drop the workaround below"
    with pytest.raises(pusher.errors.PusherBadStatus, match="^404"):
        sdk.terminate_user_connections(user)
    # Nothing was terminated: a still answers a ping.
    a.send({"event": "pusher:ping", "data": {}})
    a.wait_event("pusher:pong")

    # The request the SDK should make, signed by the SDK itself.
    client = sdk._pusher_client
    fixed = Request(client, POST, f"/apps/{herald.app['id']}/users/{user}/terminate_connections", {})
    assert client.http.send_request(fixed) == {}
    for c in (a, b):
        assert close_code(c) == 4009
    bystander.send({"event": "pusher:ping", "data": {}})
    bystander.wait_event("pusher:pong")
    sdk.send_to_user(other, "still-here", {})
    bystander.wait_event("still-here", f"#server-to-user-{other}")


def test_terminate_sends_pusher_error_before_the_close(ws, sdk, herald):
    user = unique("py-term-err-")
    c = ws()
    sign_in(c, sdk, user)
    client = sdk._pusher_client
    client.http.send_request(Request(client, POST, f"/apps/{herald.app['id']}/users/{user}/terminate_connections", {}))
    assert close_code(c) == 4009
    errors = c.events("pusher:error")
    assert [data_of(e) for e in errors] == [{"code": 4009, "message": "You got disconnected by the app"}]
