"""A Socket.IO chat on Flask-SocketIO, served by ``nettools serve`` with real websockets.

Rooms, join and leave notices, messages broadcast to the room, and the room's
user list, on Flask-SocketIO in its default mode ("threading": under
``nettools serve``, which monkey-patches, its threads are greenthreads).  The
page at ``/`` uses the official socket.io JavaScript client, which the app
serves at ``/socket.io.min.js`` from the npm package ``socket.io-client``.

Run it, from recipes/:

    npm install socket.io-client@4        # once: the browser client (node_modules/)
    nettools serve socketio_chat:app --port 8000

and open http://127.0.0.1:8000/ in two browsers.  ``SOCKETIO_CLIENT_JS=PATH``
serves the client from elsewhere.  A Python client:

    import socketio
    sio = socketio.Client()
    sio.on("message", print)
    sio.connect("http://127.0.0.1:8000", transports=["websocket"])
    sio.call("join", {"name": "ada", "room": "lobby"})
    sio.emit("message", {"text": "hello"})

Several workers need a message queue, so that a message reaches the room's
members on every worker, and the websocket transport only, as long-polling
would need every request of a session to reach the same worker:

    SOCKETIO_MESSAGE_QUEUE=redis://127.0.0.1:6379/0 \\
        nettools serve socketio_chat:app --port 8000 --workers 4

With a message queue set the server and the page use websockets only, and the
room's user list lives in Redis too, so it spans the workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import socketio as python_socketio
from flask import Flask, Response, request
from flask_socketio import SocketIO, emit, join_room, leave_room

#: Where the browser client is looked for, unless SOCKETIO_CLIENT_JS says.
CLIENT_JS = Path(__file__).parent / "node_modules/socket.io-client/dist/socket.io.min.js"
MAX_NAME = 32
MAX_ROOM = 32
MAX_TEXT = 2000

#: Redis, as redis://HOST:PORT/DB, rediss://... or unix:///path/to/redis.sock.
QUEUE = os.environ.get("SOCKETIO_MESSAGE_QUEUE") or None
#: Several workers (a queue) need the websocket transport only.
TRANSPORTS = ["websocket"] if QUEUE else ["polling", "websocket"]

app = Flask(__name__)
queue_options = {"client_manager": python_socketio.RedisManager(QUEUE)} if QUEUE else {}
socketio = SocketIO(app, transports=TRANSPORTS, **queue_options)


class Members:
    """Who is in which room: in this process, or in Redis when there is a queue
    (then the lists span every worker)."""

    def __init__(self, queue: str | None) -> None:
        self.local: dict[str, dict[str, str]] = {}
        self.redis = None
        if queue:
            import redis  # only needed with a queue

            self.redis = redis.Redis.from_url(queue, decode_responses=True)

    def add(self, room: str, sid: str, name: str) -> None:
        if self.redis is not None:
            self.redis.hset(f"socketio_chat:{room}", sid, name)
        else:
            self.local.setdefault(room, {})[sid] = name

    def remove(self, room: str, sid: str) -> None:
        if self.redis is not None:
            self.redis.hdel(f"socketio_chat:{room}", sid)
        elif room in self.local:
            self.local[room].pop(sid, None)
            if not self.local[room]:
                del self.local[room]

    def names(self, room: str) -> list[str]:
        if self.redis is not None:
            return sorted(self.redis.hvals(f"socketio_chat:{room}"))
        return sorted(self.local.get(room, {}).values())


members = Members(QUEUE)
#: This worker's connections: sid -> (name, room).  A client's events always
#: reach the worker that holds its connection.
joined: dict[str, tuple[str, str]] = {}


def _field(data: Any, key: str, limit: int) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value.strip()[:limit] if isinstance(value, str) else ""


def _leave(sid: str) -> None:
    if sid not in joined:
        return
    name, room = joined.pop(sid)
    leave_room(room, sid=sid)
    members.remove(room, sid)
    emit("notice", {"room": room, "text": f"{name} left"}, to=room)
    emit("users", {"room": room, "users": members.names(room)}, to=room)


@socketio.on("join")
def on_join(data: Any) -> dict:
    """``{"name", "room"}``; answers ``{"ok": true, ...}`` or ``{"ok": false, "error"}``."""
    name, room = _field(data, "name", MAX_NAME), _field(data, "room", MAX_ROOM)
    if not name or not room:
        return {"ok": False, "error": "a name and a room, please"}
    sid = request.sid
    _leave(sid)
    joined[sid] = (name, room)
    join_room(room)
    members.add(room, sid, name)
    emit("notice", {"room": room, "text": f"{name} joined"}, to=room)
    emit("users", {"room": room, "users": members.names(room)}, to=room)
    # "worker": which process holds the connection (with --workers N).
    return {"ok": True, "name": name, "room": room, "worker": os.getpid()}


@socketio.on("message")
def on_message(data: Any) -> dict:
    """``{"text"}``: to everyone in the sender's room, the sender too."""
    text = _field(data, "text", MAX_TEXT)
    if request.sid not in joined:
        return {"ok": False, "error": "join a room first"}
    if not text:
        return {"ok": False, "error": "empty message"}
    name, room = joined[request.sid]
    emit("message", {"room": room, "name": name, "text": text}, to=room)
    return {"ok": True}


@socketio.on("leave")
def on_leave() -> dict:
    _leave(request.sid)
    return {"ok": True}


@socketio.on("disconnect")
def on_disconnect(*reason: Any) -> None:
    _leave(request.sid)


@app.get("/socket.io.min.js")
def client_js() -> Response:
    path = Path(os.environ.get("SOCKETIO_CLIENT_JS") or CLIENT_JS)
    if not path.is_file():
        return Response(
            f"socket.io client not found at {path}: run `npm install socket.io-client@4` "
            f"in {CLIENT_JS.parents[2]}, or set SOCKETIO_CLIENT_JS\n",
            404,
            mimetype="text/plain",
        )
    return Response(path.read_bytes(), mimetype="application/javascript")


@app.get("/")
def index() -> Response:
    page = PAGE.replace("%TRANSPORTS%", repr(TRANSPORTS).replace("'", '"'))
    return Response(page, mimetype="text/html")


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Socket.IO chat on nettools</title>
<style>
body { font: 15px sans-serif; margin: 1em; display: grid; gap: .6em;
       grid-template-columns: 1fr 12em; grid-template-rows: auto 1fr auto; height: 90vh; }
header { grid-column: 1 / 3; } #messages, #users { border: 1px solid #ccc; overflow: auto;
         margin: 0; padding: .4em; list-style: none; } .notice { color: #777; font-style: italic; }
.name { font-weight: bold; margin-right: .4em; } form { grid-column: 1 / 3; display: flex; }
#text { flex: 1; }
</style></head>
<body>
<header>
  <input id="name" placeholder="your name" maxlength="32">
  <input id="room" placeholder="room" value="lobby" maxlength="32">
  <button id="join">Join</button>
  <span id="status" data-transport="">connecting</span>
</header>
<ul id="messages"></ul>
<ul id="users"></ul>
<form id="send"><input id="text" autocomplete="off" placeholder="say something">
<button>Send</button></form>
<script src="/socket.io.min.js"></script>
<script>
const $ = (id) => document.getElementById(id);
const socket = io({ transports: %TRANSPORTS% });
function showTransport() {
  const name = socket.io.engine ? socket.io.engine.transport.name : "";
  $("status").dataset.transport = name;
  $("status").textContent = socket.connected ? "online (" + name + ")" : "offline";
}
function add(cls, name, text) {
  const li = document.createElement("li");
  li.className = cls;
  if (name) { const b = document.createElement("span"); b.className = "name";
              b.textContent = name; li.appendChild(b); }
  const t = document.createElement("span"); t.className = "text"; t.textContent = text;
  li.appendChild(t); $("messages").appendChild(li); li.scrollIntoView();
}
socket.on("connect", () => {
  showTransport();
  socket.io.engine.on("upgrade", showTransport);
});
socket.on("disconnect", showTransport);
socket.on("notice", (m) => add("notice", "", m.text));
socket.on("message", (m) => add("msg", m.name, m.text));
socket.on("users", (m) => {
  $("users").replaceChildren(...m.users.map((u) => {
    const li = document.createElement("li"); li.textContent = u; return li; }));
});
$("join").onclick = () => {
  socket.emit("join", { name: $("name").value, room: $("room").value }, (r) => {
    if (!r.ok) { add("notice", "", r.error); return; }
    document.body.dataset.room = r.room;
  });
};
$("send").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (text) socket.emit("message", { text }, () => {});
  $("text").value = "";
};
</script>
</body></html>
"""
