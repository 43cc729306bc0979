"""Fixtures for the python compat suite: the real herald binary, the official `pusher` SDK
(3.3) pointed at it, and a raw Pusher-protocol WebSocket client (`websockets`).

herald is started once per session from `target/release/herald` (or $HERALD_BIN) with a
temporary TOML config on a free port of 127.0.0.1, and killed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pusher
import pytest
from websockets.sync.client import connect

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 8.0  # seconds any single expected frame may take
START_TIMEOUT = 15.0

# The python SDK only accepts numeric app ids.
APP = {
    "id": "12345",
    "key": "compat-key",
    "secret": "compat-secret",
    "enabled": True,
    "client_events": True,
    "subscription_count": True,
}


def herald_bin() -> str:
    return os.environ.get("HERALD_BIN") or str(REPO_ROOT / "target" / "release" / "herald")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is JSON-compatible
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table: an app's `webhooks = [{url = …}]`, `headers`
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(server: dict, apps: list[dict], webhooks: dict | None = None) -> str:
    """`webhooks` is the server-wide `[webhooks]` section (leave delay, retries, breaker)."""
    lines = ["[metrics]", 'host = "127.0.0.1"', "port = 0", "", "[server]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in server.items()]
    if webhooks:
        lines += ["", "[webhooks]"] + [f"{k} = {_toml_value(v)}" for k, v in webhooks.items()]
    for app in apps:
        lines += ["", "[[apps]]"] + [f"{k} = {_toml_value(v)}" for k, v in app.items()]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/up", timeout=1) as r:
            r.read()
            return r.status == 200
    except Exception:
        return False


@dataclass
class Herald:
    port: int
    apps: list[dict]
    process: subprocess.Popen
    log_path: Path

    @property
    def app(self) -> dict:
        return self.apps[0]

    def ws_url(self, key: str | None = None) -> str:
        key = key or self.app["key"]
        return f"ws://{HOST}:{self.port}/app/{key}?protocol=7&client=js&version=8.6.0&flash=false"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_herald(apps: list[dict], server: dict | None = None, webhooks: dict | None = None) -> Herald:
    binary = herald_bin()
    if not os.path.exists(binary):
        raise RuntimeError(f"herald binary not found at {binary} (cargo build --release -p herald, or set HERALD_BIN)")
    env = {k: v for k, v in os.environ.items() if not re.match(r"^(HERALD_|REVERB_|PUSHER_)", k)}
    env["RUST_LOG"] = os.environ.get("HERALD_RUST_LOG", "warn")
    last_error = None
    for _ in range(3):
        port = free_port()
        tmp = Path(tempfile.mkdtemp(prefix="herald-compat-py-"))
        config = tmp / "herald.toml"
        config.write_text(to_toml({"host": HOST, "port": port, **(server or {})}, apps, webhooks))
        log_path = tmp / "herald.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            [binary, "--config", str(config), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        # Readiness probe with a deadline: poll /up until it answers.
        while not _up(port):
            if proc.poll() is not None:
                out = log_path.read_text(errors="replace")
                last_error = RuntimeError(f"herald exited with {proc.returncode} before serving /up:\n{out}")
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"herald did not answer /up within {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        else:
            return Herald(port=port, apps=apps, process=proc, log_path=log_path)
        if not re.search(r"address (already )?in use", str(last_error), re.I):
            break
    raise last_error


def stop_herald(h: Herald) -> None:
    if h.process.poll() is None:
        h.process.terminate()
        try:
            h.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            h.process.kill()
            h.process.wait()
    if os.environ.get("HERALD_SHOW_LOGS"):
        print(f"--- herald output (port {h.port}) ---\n{h.output()}")
    shutil.rmtree(h.log_path.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def herald():
    h = start_herald([APP, {**APP, "id": "67890", "key": "off-key", "secret": "off-secret", "enabled": False}])
    yield h
    stop_herald(h)


@pytest.fixture(scope="session")
def sdk(herald) -> pusher.Pusher:
    app = herald.app
    return pusher.Pusher(
        app_id=app["id"], key=app["key"], secret=app["secret"], host=HOST, port=herald.port, ssl=False, timeout=WAIT
    )


class PusherError(Exception):
    def __init__(self, frame: dict):
        super().__init__(f"pusher:error {frame.get('data')}")
        self.frame = frame
        data = frame.get("data")
        self.data = json.loads(data) if isinstance(data, str) else data


class RawClient:
    """A Pusher protocol 7 client over a raw WebSocket. Every frame read is kept in `frames`."""

    def __init__(self, url: str):
        # legacy=True: a connection object used without `with` (websockets >= 17.1 asks for the flag).
        self.ws = connect(url, open_timeout=WAIT, close_timeout=2, max_size=2**20, legacy=True)
        self.frames: list[dict] = []
        self._cursor = 0
        first = self.wait_for(lambda f: True, "the first frame")
        if first.get("event") != "pusher:connection_established":
            raise AssertionError(f"first frame is not connection_established: {first}")
        self.established = json.loads(first["data"])
        self.socket_id: str = self.established["socket_id"]

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def _read_one(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        msg = self.ws.recv(timeout=remaining)
        if isinstance(msg, bytes):
            return {}
        frame = json.loads(msg)
        self.frames.append(frame)
        return frame

    def wait_for(self, pred, what: str, timeout: float = WAIT, start: int = 0) -> dict:
        """The first frame from index `start` on (already received or future) satisfying `pred`."""
        for f in self.frames[start:]:
            if pred(f):
                return f
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self._read_one(deadline)
            except TimeoutError:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {self.frames}") from None
            if f and pred(f):
                return f

    def wait_event(self, event: str, channel: str | None = None, timeout: float = WAIT) -> dict:
        return self.wait_for(
            lambda f: f.get("event") == event and (channel is None or f.get("channel") == channel),
            f"{event} on {channel}",
            timeout,
        )

    def events(self, event: str, channel: str | None = None) -> list[dict]:
        return [f for f in self.frames if f.get("event") == event and (channel is None or f.get("channel") == channel)]

    def subscribe(self, channel: str, auth: str | None = None, channel_data: str | None = None) -> dict:
        """Send pusher:subscribe; return subscription_succeeded or raise PusherError."""
        data = {"channel": channel, "auth": auth or ""}
        if channel_data is not None:
            data["channel_data"] = channel_data
        seen = len(self.frames)
        self.send({"event": "pusher:subscribe", "data": data})
        frame = self.wait_for(
            lambda f: (f.get("event") == "pusher_internal:subscription_succeeded" and f.get("channel") == channel)
            or f.get("event") == "pusher:error",
            f"subscription_succeeded on {channel}",
            start=seen,
        )
        if frame["event"] == "pusher:error":
            raise PusherError(frame)
        return frame

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def ws(herald):
    """Factory: `ws()` opens a connected RawClient; all are closed after the test."""
    clients: list[RawClient] = []

    def make(key: str | None = None) -> RawClient:
        c = RawClient(herald.ws_url(key))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


_counter = 0


def unique(prefix: str) -> str:
    global _counter
    _counter += 1
    return f"{prefix}{os.getpid()}-{_counter}"
