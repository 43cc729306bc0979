"""Webhooks (PROTOCOL.md §12) received by a real `http.server` on 127.0.0.1 and validated with
the python SDK's `validate_webhook(key, signature, body)`, while raw Pusher-protocol clients
make the transitions: channel_occupied / channel_vacated (after the leave delay),
member_added / member_removed, client_event, cache_miss, subscription_count.

"Exactly once" is shown with a sentinel: a later transition's webhook is awaited, then the
record is checked.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pusher
import pytest
from conftest import APP, HOST, WAIT, RawClient, start_herald, stop_herald, unique

LEAVE_DELAY_MS = 300


class Receiver:
    """Records every POST (headers, raw body, arrival time); answers 200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                entry = {"headers": dict(self.headers), "body": body, "at": time.monotonic()}
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with outer.cond:
                    outer.requests.append(entry)
                    outer.cond.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, pred=lambda e: True) -> list[tuple[dict, dict]]:
        with self.cond:
            reqs = list(self.requests)
        out = []
        for r in reqs:
            for e in json.loads(r["body"]).get("events", []):
                if pred(e):
                    out.append((e, r))
        return out

    def wait_event(self, pred, what: str, timeout: float = WAIT) -> tuple[dict, dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self.events(pred)
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {self.events()}")
                self.cond.wait(remaining)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ev(name: str, channel: str, **fields):
    return lambda e: e.get("name") == name and e.get("channel") == channel and all(e.get(k) == v for k, v in fields.items())


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def wh_herald(receiver):
    app = {**APP, "webhooks": [{"url": receiver.url}]}  # event_types absent: every kind
    h = start_herald([app], webhooks={"leave_delay_ms": LEAVE_DELAY_MS})
    yield h
    stop_herald(h)


@pytest.fixture(scope="module")
def wh_sdk(wh_herald) -> pusher.Pusher:
    app = wh_herald.app
    return pusher.Pusher(
        app_id=app["id"], key=app["key"], secret=app["secret"], host=HOST, port=wh_herald.port, ssl=False, timeout=WAIT
    )


@pytest.fixture
def client(wh_herald):
    clients: list[RawClient] = []

    def make() -> RawClient:
        c = RawClient(wh_herald.ws_url())
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def validated(sdk: pusher.Pusher, request: dict) -> dict:
    """The SDK's own check, as an app's webhook endpoint does it."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    body = sdk.validate_webhook(
        key=headers["x-pusher-key"], signature=headers["x-pusher-signature"], body=request["body"].decode()
    )
    assert body is not None, f"validate_webhook refused {headers} {request['body']!r}"
    assert isinstance(body["time_ms"], int)
    return body


def hook(receiver, sdk, pred, what, timeout=WAIT) -> tuple[dict, dict]:
    event, request = receiver.wait_event(pred, what, timeout)
    validated(sdk, request)
    return event, request


def sentinel(receiver, sdk, client) -> None:
    c = client()
    name = unique("py-wh-sentinel-")
    c.subscribe(name)
    hook(receiver, sdk, ev("channel_occupied", name), "sentinel occupied")


def count(receiver, name, channel, **fields) -> int:
    return len(receiver.events(ev(name, channel, **fields)))


def subscribe_presence(c, sdk, channel, user_id):
    auth = sdk.authenticate(channel=channel, socket_id=c.socket_id, custom_data={"user_id": user_id})
    return c.subscribe(channel, auth=auth["auth"], channel_data=auth["channel_data"])


def test_validate_webhook_accepts_herald_and_rejects_tampering(receiver, wh_sdk, client):
    c = client()
    name = unique("py-wh-sig-")
    c.subscribe(name)
    event, request = hook(receiver, wh_sdk, ev("channel_occupied", name), "channel_occupied")
    assert event == {"name": "channel_occupied", "channel": name}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    body = request["body"].decode()
    assert wh_sdk.validate_webhook(headers["x-pusher-key"], headers["x-pusher-signature"], body.replace(name, name + "x")) is None
    assert wh_sdk.validate_webhook("other-key", headers["x-pusher-signature"], body) is None
    assert wh_sdk.validate_webhook(headers["x-pusher-key"], "0" * 64, body) is None


def test_occupied_then_vacated_after_the_delay(receiver, wh_sdk, client):
    a, b = client(), client()
    name = unique("py-wh-room-")
    a.subscribe(name)
    hook(receiver, wh_sdk, ev("channel_occupied", name), "channel_occupied")
    b.subscribe(name)
    hook(receiver, wh_sdk, ev("subscription_count", name, subscription_count=2), "subscription_count 2")
    a.close()
    hook(receiver, wh_sdk, ev("subscription_count", name, subscription_count=1), "subscription_count 1")
    left = time.monotonic()
    b.send({"event": "pusher:unsubscribe", "data": {"channel": name}})
    event, request = hook(receiver, wh_sdk, ev("channel_vacated", name), "channel_vacated")
    assert event == {"name": "channel_vacated", "channel": name}
    assert request["at"] - left >= (LEAVE_DELAY_MS - 10) / 1000
    sentinel(receiver, wh_sdk, client)
    assert count(receiver, "channel_occupied", name) == 1
    assert count(receiver, "channel_vacated", name) == 1


def test_member_added_and_removed(receiver, wh_sdk, client):
    a1, a2, b = client(), client(), client()
    name = unique("presence-py-wh-")
    subscribe_presence(a1, wh_sdk, name, "pa")
    event, _ = hook(receiver, wh_sdk, ev("member_added", name, user_id="pa"), "member_added pa")
    assert event == {"name": "member_added", "channel": name, "user_id": "pa"}
    subscribe_presence(a2, wh_sdk, name, "pa")
    subscribe_presence(b, wh_sdk, name, 7)  # numeric id: emitted as the string "7"
    hook(receiver, wh_sdk, ev("member_added", name, user_id="7"), "member_added 7")
    a1.close()
    b.close()
    event, _ = hook(receiver, wh_sdk, ev("member_removed", name, user_id="7"), "member_removed 7")
    assert event == {"name": "member_removed", "channel": name, "user_id": "7"}
    a2.close()
    hook(receiver, wh_sdk, ev("member_removed", name, user_id="pa"), "member_removed pa")
    sentinel(receiver, wh_sdk, client)
    assert count(receiver, "member_added", name, user_id="pa") == 1
    assert count(receiver, "member_removed", name, user_id="pa") == 1
    assert count(receiver, "member_removed", name, user_id="7") == 1


def test_client_event_on_presence_carries_user_id(receiver, wh_sdk, client):
    a, b = client(), client()
    name = unique("presence-py-wh-chat-")
    subscribe_presence(a, wh_sdk, name, "alice")
    subscribe_presence(b, wh_sdk, name, "bob")
    a.send({"event": "client-hello", "channel": name, "data": {"x": 1}})
    b.wait_event("client-hello", name)
    event, _ = hook(receiver, wh_sdk, ev("client_event", name), "client_event")
    assert isinstance(event["data"], str), "client_event data is a string"
    assert json.loads(event.pop("data")) == {"x": 1}
    assert event == {
        "name": "client_event",
        "channel": name,
        "event": "client-hello",
        "socket_id": a.socket_id,
        "user_id": "alice",
    }
    sentinel(receiver, wh_sdk, client)
    assert count(receiver, "client_event", name) == 1


def test_cache_miss_once_for_two_subscribers(receiver, wh_sdk, client):
    a, b = client(), client()
    name = unique("cache-py-wh-")
    a.subscribe(name)
    a.wait_event("pusher:cache_miss", name)
    event, _ = hook(receiver, wh_sdk, ev("cache_miss", name), "cache_miss")
    assert event == {"name": "cache_miss", "channel": name}
    b.subscribe(name)
    b.wait_event("pusher:cache_miss", name)
    sentinel(receiver, wh_sdk, client)
    assert count(receiver, "cache_miss", name) == 1


def test_subscription_count_per_transition(receiver, wh_sdk, client):
    a, b = client(), client()
    name = unique("py-wh-counted-")
    a.subscribe(name)
    hook(receiver, wh_sdk, ev("subscription_count", name, subscription_count=1), "count 1")
    b.subscribe(name)
    hook(receiver, wh_sdk, ev("subscription_count", name, subscription_count=2), "count 2")
    b.send({"event": "pusher:unsubscribe", "data": {"channel": name}})
    event, _ = hook(receiver, wh_sdk, ev("subscription_count", name, subscription_count=1), "count back to 1")
    assert event == {"name": "subscription_count", "channel": name, "subscription_count": 1}
    sentinel(receiver, wh_sdk, client)
    counts = [e["subscription_count"] for e, _ in receiver.events(ev("subscription_count", name))]
    assert counts == [1, 2, 1]
