"""RapidPro's side of a Junebug ("JN") channel, behaving as courier's handler does.

nyaruka/courier's ``handlers/junebug`` is the client the message API must
satisfy.  These doubles reproduce what it sends and what it checks (facts read
from that handler and its tests, re-implemented here):

:class:`FakeCourier` is courier's HTTP side for one JN channel:

- ``POST /c/jn/<uuid>/inbound``: the JSON body must decode into courier's MO
  struct (``from``, ``timestamp``, ``content``, ``to``, ``reply_to``,
  ``message_id``, all strings; ``null`` counts as empty; other keys ignored);
  ``from``, ``timestamp``, ``to`` and ``message_id`` are required (non-empty)
  → 400; with a secret the ``Authorization`` header must be exactly
  ``Token <secret>`` → 401; ``timestamp`` must parse with Go's layout
  ``2006-01-02 15:04:05`` (a fraction after the seconds is accepted) → 400;
  ``from`` must be a phone number → 400 (courier uses libphonenumber; here a
  simpler ``+``/digits check).  Accepted → 200.
- ``POST /c/jn/<uuid>/event``: ``event_type`` and ``message_id`` required →
  400; the same Token check → 401; ``submitted`` → sent (S),
  ``delivery_succeeded`` → delivered (D), ``delivery_failed``/``rejected`` →
  failed (F); ``delivery_pending`` and unknown types are ignored (200).

:class:`CourierSender` is courier's ``SendMsg``: the text is split into parts
of at most ``max_length`` characters, each POSTed to the send URL with
``Content-Type`` and ``Accept: application/json``, HTTP Basic auth and the body
``{"event_url", "content", "from", "to"}`` plus ``"event_auth_token"`` when the
channel has a secret (Go's compact, HTML-escaping JSON, in that key order).  A
non-2xx answer, or an answer without a string ``result.message_id`` (the body
is only read if its Content-Type looks like text: json, text, xml...), makes
the message errored (E); otherwise it is wired (W) with the first part's id as its
external id.  Courier builds ``event_url`` as ``https://<domain>/c/jn/<uuid>/event``;
the scheme is a parameter here because the double serves plain HTTP.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

#: courier's default maximum length of one part (``maxMsgLength``).
MAX_MSG_LENGTH = 1530
STATUS_MAPPING = {
    "submitted": "S",
    "delivery_pending": "P",
    "delivery_succeeded": "D",
    "delivery_failed": "F",
    "rejected": "F",
}
USER_AGENT = "Courier/vDev"
#: courier reads a response body only if its Content-Type contains one of these.
_TEXTUAL = ("text", "json", "utf", "javascript", "xml")
MO_FIELDS = ("from", "timestamp", "content", "to", "reply_to", "message_id")
MO_REQUIRED = ("from", "timestamp", "to", "message_id")
EVENT_FIELDS = ("event_type", "message_id")

# Go's time.Parse("2006-01-02 15:04:05", ...): fixed-width fields, then an
# optional fraction ("." or "," and digits) directly after the seconds.
_GO_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?$"
)
_PHONE = re.compile(r"^\+?\d{5,15}$")


def parse_go_timestamp(value: str) -> datetime:
    """Parse as courier does, or raise ValueError."""
    match = _GO_DATETIME.match(value)
    if match is None:
        raise ValueError(f"unable to parse date: {value}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def go_json(value: dict[str, Any]) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact and HTML-safe."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def split_msg(text: str, max_length: int) -> list[str]:
    """Split ``text`` into parts of at most ``max_length``, at spaces if possible."""
    parts: list[str] = []
    rest = text
    while len(rest) > max_length:
        cut = rest.rfind(" ", 0, max_length + 1)
        if cut <= 0:
            cut = max_length
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest or not parts:
        parts.append(rest)
    return parts


class Rejected(Exception):
    """A request courier would refuse, with the status it would answer."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@attrs.frozen
class CourierRequest:
    """One request as courier received it, and what it answered."""

    path: str
    headers: dict[str, str]
    raw: bytes
    code: int
    outcome: str


@attrs.frozen
class IncomingMsg:
    """A message courier accepted (``NewIncomingMsg``)."""

    urn: str
    text: str
    external_id: str
    received_on: datetime
    payload: dict[str, Any]


@attrs.frozen
class StatusUpdate:
    """A status courier recorded for an external id."""

    external_id: str
    status: str
    payload: dict[str, Any]


def _decode_struct(raw: bytes, fields: tuple[str, ...]) -> dict[str, str]:
    """Decode as Go decodes JSON into a struct of string fields."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Rejected(400, f"unable to parse request JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Rejected(400, "unable to parse request JSON: not an object")
    result: dict[str, str] = {}
    for field in fields:
        value = data.get(field)
        if value is None:
            result[field] = ""
        elif isinstance(value, str):
            result[field] = value
        else:
            raise Rejected(
                400, f"json: cannot unmarshal {type(value).__name__} into {field}"
            )
    return result


def _require(payload: dict[str, str], fields: tuple[str, ...]) -> None:
    for field in fields:
        if not payload[field]:
            raise Rejected(400, f"field '{field}' failed on the 'required' tag")


class _Handler(Resource):
    isLeaf = True

    def __init__(self, courier: FakeCourier) -> None:
        super().__init__()
        self.courier = courier

    def render_POST(self, request: Any) -> bytes:
        raw = request.content.read()
        headers = {
            k.decode().lower(): v[-1].decode()
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        path = request.path.decode()
        code, outcome = self.courier.handle(path, headers, raw)
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"message": outcome}).encode()


class FakeCourier:
    """Courier's JN endpoints for one channel (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        channel_uuid: str | None = None,
        secret: str | None = None,
        strict_tel: bool = True,
    ) -> None:
        self.reactor = reactor
        self.channel_uuid = channel_uuid or str(uuid.uuid4())
        self.secret = secret
        self.strict_tel = strict_tel
        self.requests: list[CourierRequest] = []
        self.messages: DeferredQueue[IncomingMsg] = DeferredQueue()
        self.statuses: DeferredQueue[StatusUpdate] = DeferredQueue()
        self.port: IListeningPort | None = None
        self.base = ""

    @property
    def inbound_url(self) -> str:
        return f"{self.base}/c/jn/{self.channel_uuid}/inbound"

    @property
    def event_url(self) -> str:
        return f"{self.base}/c/jn/{self.channel_uuid}/event"

    async def start(self) -> str:
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self.port = await endpoint.listen(Site(_Handler(self)))
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"  # type: ignore[attr-defined]
        return self.base

    async def stop(self) -> None:
        if self.port is not None:
            await self.port.stopListening()  # type: ignore[misc]
            self.port = None

    def rejections(self) -> list[CourierRequest]:
        """Every request courier refused (a test usually expects none)."""
        return [r for r in self.requests if r.code != 200]

    # -- the handler -----------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, str]:
        """Handle one POST; record it, then publish what courier accepted."""
        accepted: IncomingMsg | StatusUpdate | None = None
        try:
            code, outcome, accepted = self._dispatch(path, headers, raw)
        except Rejected as exc:
            code, outcome = exc.code, exc.reason
        self.requests.append(CourierRequest(path, headers, raw, code, outcome))
        if isinstance(accepted, IncomingMsg):
            self.messages.put(accepted)
        elif isinstance(accepted, StatusUpdate):
            self.statuses.put(accepted)
        return code, outcome

    def _dispatch(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, IncomingMsg | StatusUpdate | None]:
        prefix = f"/c/jn/{self.channel_uuid}/"
        if not path.startswith(prefix):
            raise Rejected(400, "channel not found")
        action = path[len(prefix) :]
        if action == "inbound":
            return self._receive_message(headers, raw)
        if action == "event":
            return self._receive_event(headers, raw)
        raise Rejected(404, "not found")

    def _check_token(self, headers: dict[str, str]) -> None:
        if self.secret and headers.get("authorization") != f"Token {self.secret}":
            raise Rejected(401, "invalid Authorization header")

    def _receive_message(
        self, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, IncomingMsg]:
        payload = _decode_struct(raw, MO_FIELDS)
        _require(payload, MO_REQUIRED)
        self._check_token(headers)
        try:
            received_on = parse_go_timestamp(payload["timestamp"])
        except ValueError as exc:
            raise Rejected(400, str(exc)) from exc
        sender = payload["from"]
        if self.strict_tel and not _PHONE.match(sender):
            raise Rejected(400, "phone number supplied is not a number")
        urn = "tel:" + sender
        incoming = IncomingMsg(
            urn=urn,
            text=payload["content"],
            external_id=payload["message_id"],
            received_on=received_on,
            payload=json.loads(raw),
        )
        return 200, "Message Accepted", incoming

    def _receive_event(
        self, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, StatusUpdate | None]:
        payload = _decode_struct(raw, EVENT_FIELDS)
        _require(payload, EVENT_FIELDS)
        self._check_token(headers)
        status = STATUS_MAPPING.get(payload["event_type"])
        if status is None:
            return 200, "Ignored: ignoring unknown event_type", None
        if status == "P":
            return 200, "Ignored: ignoring existing pending status", None
        update = StatusUpdate(payload["message_id"], status, json.loads(raw))
        return 200, "Status Update Accepted", update

    async def next_message(self, timeout: float = 10.0) -> IncomingMsg:
        d: Deferred[IncomingMsg] = self.messages.get()
        d.addTimeout(timeout, self.reactor)
        return await d

    async def next_status(self, timeout: float = 10.0) -> StatusUpdate:
        d: Deferred[StatusUpdate] = self.statuses.get()
        d.addTimeout(timeout, self.reactor)
        return await d


@attrs.frozen
class SendResult:
    """The outcome of one ``SendMsg``: status W (wired) or E (errored)."""

    status: str
    external_id: str | None
    parts: list[dict[str, Any]]
    error: str | None = None


class CourierSender:
    """Courier's ``SendMsg`` for one JN channel (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        *,
        send_url: str,
        username: str,
        password: str,
        channel_uuid: str,
        address: str,
        callback_domain: str,
        secret: str | None = None,
        max_length: int = MAX_MSG_LENGTH,
        callback_scheme: str = "https",
    ) -> None:
        self.send_url = send_url
        self.username = username
        self.password = password
        self.address = address
        self.secret = secret
        self.max_length = max_length
        self.event_url = (
            f"{callback_scheme}://{callback_domain}/c/jn/{channel_uuid}/event"
        )
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    async def close(self) -> None:
        await self.pool.closeCachedConnections()

    def payload(self, part: str, to: str) -> bytes:
        body: dict[str, Any] = {
            "event_url": self.event_url,
            "content": part,
            "from": self.address,
            "to": to,
        }
        if self.secret:
            body["event_auth_token"] = self.secret
        return go_json(body)

    def headers(self) -> dict[bytes, list[bytes]]:
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode())
        return {
            b"Content-Type": [b"application/json"],
            b"Accept": [b"application/json"],
            b"Authorization": [b"Basic " + credentials],
            b"User-Agent": [USER_AGENT.encode()],
        }

    async def send(self, text: str, to: str) -> SendResult:
        """Send ``text`` to the phone number ``to`` (the URN's path)."""
        external_id: str | None = None
        answers: list[dict[str, Any]] = []
        for index, part in enumerate(split_msg(text, self.max_length)):
            response = await self.client.post(
                self.send_url, data=self.payload(part, to), headers=self.headers()
            )
            raw = await response.content()
            content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[
                0
            ].decode("latin-1")
            answer = {"code": response.code, "body": raw, "content_type": content_type}
            answers.append(answer)
            if not 200 <= response.code < 300:
                return SendResult("E", None, answers, f"HTTP {response.code}")
            if not any(kind in content_type for kind in _TEXTUAL):
                raw = b""  # courier does not read a body it does not take for text
            try:
                message_id = json.loads(raw)["result"]["message_id"]
            except (ValueError, KeyError, TypeError):
                message_id = None
            if not isinstance(message_id, str):
                return SendResult(
                    "E", None, answers, "unable to get result.message_id from body"
                )
            if index == 0:
                external_id = message_id
        return SendResult("W", external_id, answers)
