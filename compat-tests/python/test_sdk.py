"""The official python server SDK (`pusher` 3.3) against herald: trigger, trigger_batch,
authenticate for private and presence channels, channels_info, channel_info, users_info.

Delivery is observed with a raw Pusher-protocol WebSocket client. Note that the python SDK
signs every GET with `body_md5` of the empty body; all the GET tests depend on herald
accepting that (PROTOCOL.md §11.2 step 4).
"""

from __future__ import annotations

import json

import pusher
import pytest
from conftest import HOST, PusherError, unique


def data_of(frame: dict):
    d = frame.get("data")
    return json.loads(d) if isinstance(d, str) else d


def subscribe_private(client, sdk, channel: str):
    auth = sdk.authenticate(channel=channel, socket_id=client.socket_id)
    return client.subscribe(channel, auth=auth["auth"])


def subscribe_presence(client, sdk, channel: str, user_id, user_info=None):
    custom = {"user_id": user_id}
    if user_info is not None:
        custom["user_info"] = user_info
    auth = sdk.authenticate(channel=channel, socket_id=client.socket_id, custom_data=custom)
    # Sent byte-for-byte as the SDK produced it (json.dumps with spaces).
    assert auth["channel_data"].startswith('{"user_id": ')
    return client.subscribe(channel, auth=auth["auth"], channel_data=auth["channel_data"])


# --- events -----------------------------------------------------------------------------------


def test_handshake_shape(ws):
    c = ws()
    assert c.established["activity_timeout"] > 0
    assert isinstance(c.socket_id, str)
    assert c.socket_id.count(".") == 1 and all(p.isdigit() for p in c.socket_id.split("."))


def test_trigger_reaches_a_subscriber(ws, sdk):
    c = ws()
    channel = unique("py-public-")
    ok = c.subscribe(channel)
    assert data_of(ok) == {}
    assert sdk.trigger(channel, "my-event", {"message": "hello", "n": 1}) == {}
    frame = c.wait_event("my-event", channel)
    assert isinstance(frame["data"], str), "event data must be a JSON string on the wire"
    assert data_of(frame) == {"message": "hello", "n": 1}


def test_trigger_several_channels(ws, sdk):
    a, b = ws(), ws()
    ca, cb = unique("py-multi-a-"), unique("py-multi-b-")
    a.subscribe(ca)
    b.subscribe(cb)
    sdk.trigger([ca, cb], "multi", "plain text")
    assert a.wait_event("multi", ca)["data"] == "plain text"
    assert b.wait_event("multi", cb)["data"] == "plain text"


def test_trigger_excludes_socket_id(ws, sdk):
    sender, other = ws(), ws()
    channel = unique("py-exclude-")
    sender.subscribe(channel)
    other.subscribe(channel)
    sdk.trigger(channel, "update", {"v": 1}, socket_id=sender.socket_id)
    other.wait_event("update", channel)
    sdk.trigger(channel, "sentinel", {})
    sender.wait_event("sentinel", channel)
    assert sender.events("update") == []


def test_trigger_batch(ws, sdk):
    c = ws()
    c1, c2 = unique("py-batch-1-"), unique("py-batch-2-")
    c.subscribe(c1)
    c.subscribe(c2)
    result = sdk.trigger_batch(
        [
            {"channel": c1, "name": "first", "data": {"i": 1}},
            {"channel": c2, "name": "second", "data": {"i": 2}},
        ]
    )
    assert result == {}
    assert data_of(c.wait_event("first", c1)) == {"i": 1}
    assert data_of(c.wait_event("second", c2)) == {"i": 2}


# --- authentication ---------------------------------------------------------------------------


def test_authenticate_private_then_subscribe(ws, sdk):
    c = ws()
    channel = unique("private-py-")
    ok = subscribe_private(c, sdk, channel)
    assert ok["channel"] == channel
    sdk.trigger(channel, "secret", {"x": 1})
    assert data_of(c.wait_event("secret", channel)) == {"x": 1}


def test_private_with_bad_auth_is_refused_and_connection_kept(ws, sdk):
    c = ws()
    channel = unique("private-py-bad-")
    auth = sdk.authenticate(channel=channel, socket_id="1.1")  # signed for another socket
    with pytest.raises(PusherError) as err:
        c.subscribe(channel, auth=auth["auth"])
    assert err.value.data["code"] == 4009
    # still usable
    c.subscribe(unique("py-after-"))


def test_authenticate_presence_then_subscribe(ws, sdk):
    alice, bob = ws(), ws()
    channel = unique("presence-py-")
    ok = subscribe_presence(alice, sdk, channel, "1", {"name": "Alice"})
    presence = data_of(ok)["presence"]
    assert presence == {"ids": ["1"], "hash": {"1": {"name": "Alice"}}, "count": 1}

    ok_b = subscribe_presence(bob, sdk, channel, 2, {"name": "Bob"})  # numeric id, emitted as "2"
    p = data_of(ok_b)["presence"]
    assert sorted(p["ids"]) == ["1", "2"]
    assert p["count"] == 2
    assert p["hash"] == {"1": {"name": "Alice"}, "2": {"name": "Bob"}}

    added = alice.wait_event("pusher_internal:member_added", channel)
    assert data_of(added) == {"user_id": "2", "user_info": {"name": "Bob"}}

    # client event on presence carries the sender's user_id
    bob.send({"event": "client-hi", "channel": channel, "data": {"from": "bob"}})
    hi = alice.wait_event("client-hi", channel)
    assert hi["user_id"] == "2"
    assert data_of(hi) == {"from": "bob"}

    bob.close()
    removed = alice.wait_event("pusher_internal:member_removed", channel)
    assert data_of(removed) == {"user_id": "2"}


def test_presence_channel_data_must_match_signature(ws, sdk):
    c = ws()
    channel = unique("presence-py-forged-")
    auth = sdk.authenticate(channel=channel, socket_id=c.socket_id, custom_data={"user_id": "1"})
    with pytest.raises(PusherError) as err:
        c.subscribe(channel, auth=auth["auth"], channel_data=json.dumps({"user_id": "admin"}))
    assert err.value.data["code"] == 4009


# --- HTTP reads (all signed with body_md5 of the empty body) ----------------------------------


def test_channels_info(ws, sdk):
    c = ws()
    channel = unique("py-listed-")
    c.subscribe(channel)
    info = sdk.channels_info()
    assert channel in info["channels"]
    assert info["channels"][channel] == {}


def test_channels_info_presence_prefix_with_user_count(ws, sdk):
    a, b = ws(), ws()
    channel = unique("presence-py-list-")
    subscribe_presence(a, sdk, channel, "u1")
    subscribe_presence(b, sdk, channel, "u2")
    info = sdk.channels_info(prefix_filter="presence-py-list-", attributes=["user_count"])
    assert info["channels"][channel] == {"user_count": 2}


def test_channel_info_subscription_count(ws, sdk):
    a, b = ws(), ws()
    channel = unique("py-count-")
    a.subscribe(channel)
    b.subscribe(channel)
    assert sdk.channel_info(channel, ["subscription_count"]) == {"occupied": True, "subscription_count": 2}
    empty = sdk.channel_info(unique("py-nobody-"))
    assert empty["occupied"] is False


def test_channel_info_user_count(ws, sdk):
    a, b, b2 = ws(), ws(), ws()
    channel = unique("presence-py-count-")
    subscribe_presence(a, sdk, channel, "1")
    subscribe_presence(b, sdk, channel, "2")
    subscribe_presence(b2, sdk, channel, "2")
    assert sdk.channel_info(channel, ["user_count"]) == {"occupied": True, "user_count": 2}


def test_channel_info_user_count_on_public_channel_is_bad_request(sdk):
    with pytest.raises(pusher.errors.PusherBadRequest):
        sdk.channel_info(unique("py-public-"), ["user_count"])


def test_users_info(ws, sdk):
    a, b = ws(), ws()
    channel = unique("presence-py-users-")
    subscribe_presence(a, sdk, channel, "1", {"name": "A"})
    subscribe_presence(b, sdk, channel, 2)
    users = sdk.users_info(channel)
    assert sorted(u["id"] for u in users["users"]) == ["1", "2"]


def test_wrong_secret_is_bad_auth(herald):
    bad = pusher.Pusher(
        app_id=herald.app["id"], key=herald.app["key"], secret="wrong", host=HOST, port=herald.port, ssl=False
    )
    with pytest.raises(pusher.errors.PusherBadAuth):
        bad.channels_info()
    with pytest.raises(pusher.errors.PusherBadAuth):
        bad.trigger("x", "y", {})


def test_disabled_app_is_forbidden(herald):
    off = pusher.Pusher(app_id="67890", key="off-key", secret="off-secret", host=HOST, port=herald.port, ssl=False)
    with pytest.raises(pusher.errors.PusherForbidden):
        off.trigger("x", "y", {})


# --- user authentication and server-to-user events ------------------------------------------


def test_authenticate_user_signin_and_send_to_user(ws, sdk):
    c = ws()
    user_id = unique("py-user-")
    auth = sdk.authenticate_user(c.socket_id, {"id": user_id, "user_info": {"name": "Py"}})
    # python's json.dumps spacing: herald must verify the bytes as sent.
    assert auth["user_data"].startswith('{"id": ')
    c.send({"event": "pusher:signin", "data": {"auth": auth["auth"], "user_data": auth["user_data"]}})
    ok = c.wait_event("pusher:signin_success")
    assert data_of(ok)["user_data"] == auth["user_data"]
    # pusher-js subscribes to its server-to-user channel after signin; do the same.
    c.subscribe(f"#server-to-user-{user_id}")
    sdk.send_to_user(user_id, "notice", {"text": "hi"})
    frame = c.wait_event("notice", f"#server-to-user-{user_id}")
    assert data_of(frame) == {"text": "hi"}


def test_signin_with_bad_signature_is_refused(ws, sdk):
    c = ws()
    auth = sdk.authenticate_user("1.1", {"id": unique("py-user-")})  # signed for another socket
    c.send({"event": "pusher:signin", "data": {"auth": auth["auth"], "user_data": auth["user_data"]}})
    err = c.wait_event("pusher:error")
    assert data_of(err)["code"] == 4009
    assert c.events("pusher:signin_success") == []
