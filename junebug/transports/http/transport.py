"""The ``http`` channel type: a generic HTTP/JSON SMS aggregator.

Most SMS aggregators (Infobip, Vonage, Clickatell, Jasmin's HTTP API, local
ones) work alike: an MT message is one HTTP request to a send URL, inbound
messages and delivery reports are webhooks the aggregator calls.  This channel
type is configured to speak a given aggregator's dialect (see
:class:`~junebug.transports.http.config.HttpConfig` and docs/channels.rst).

Correlation: when the aggregator's answer carries its own id for the message
(``response_id_field`` / ``response_id_pattern``), the ack's
``sent_message_id`` is that id, and the store maps it back to our message id
for ``message_id_ttl`` seconds so delivery reports find their message.
Without them, delivery reports must carry our ``message_id`` (send it with
``"{message_id}"`` in the template).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlencode

from twisted.web.server import NOT_DONE_YET, Request

from junebug.http import json_body
from junebug.messages import (
    UserMessage,
    ack,
    delivery_report,
    nack,
    user_message,
)
from junebug.stores import keys
from junebug.transports.http.client import AggregatorClient, SendResult
from junebug.transports.http.config import HttpConfig
from junebug.transports.http.template import (
    flatten,
    lookup,
    message_variables,
    render,
)
from junebug.transports.httprpc import (
    ChannelWebServer,
    HeldRequest,
    Response,
    error_response,
    request_args,
)
from junebug.transports.interface import TransportContext

__all__ = ["HttpConfig", "HttpTransport"]

#: How much of a failed answer's body a nack reason quotes.
REASON_BODY_LIMIT: Final = 200


class WebhookError(Exception):
    """A webhook request that cannot be used; ``code`` is the HTTP answer."""

    def __init__(self, code: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class HttpTransport:
    """Sends MT messages to an aggregator; serves its webhooks (optional)."""

    CONFIG_CLASS: ClassVar[type[Any]] = HttpConfig
    TRANSPORT_TYPE: ClassVar[str] = "sms"
    #: Longest ``stop()`` waits for webhook messages to be published.
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(
        self,
        context: TransportContext,
        config: HttpConfig,
        *,
        client: AggregatorClient | None = None,
    ) -> None:
        self._context = context
        self._config = config
        self._log = context.log
        self._client = client
        self._owns_client = client is None
        self._statuses = context.statuses
        self._tasks = context.tasks
        self._server: ChannelWebServer | None = None
        if config.web_path is not None:
            self._server = ChannelWebServer(
                reactor=context.reactor,
                config=config,
                channel_id=context.channel_id,
                log=context.log,
                statuses=self._statuses,
                routes={
                    config.inbound_url_path: self._render_inbound,
                    config.dlr_url_path: self._render_dlr,
                },
                authorise=self._token_given,
            )
        pattern = config.response_id_pattern
        self._id_pattern = re.compile(pattern) if pattern is not None else None

    # -- what the channel, plugins and tests may look at ----------------------

    @property
    def config(self) -> HttpConfig:
        return self._config

    @property
    def port(self) -> int | None:
        """The webhooks' bound TCP port, or None (no ``web_path``, or stopped)."""
        return self._server.port if self._server is not None else None

    @property
    def correlates(self) -> bool:
        """True if sends learn the aggregator's id for each message."""
        return (
            self._config.response_id_field is not None
            or self._config.response_id_pattern is not None
        )

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = AggregatorClient(self._context.reactor)
        if self._server is not None:
            await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        if not await self._tasks.wait(self.STOP_TIMEOUT):
            self._log.warn(
                "HTTP channel {channel_id}: gave up waiting for webhook messages "
                "to be published",
                channel_id=self._context.channel_id,
            )
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            try:
                await client.close()
            except Exception:
                self._log.failure("HTTP channel could not close its connections")

    # -- outbound ------------------------------------------------------------

    def build_request(
        self, message: UserMessage
    ) -> tuple[str, dict[str, str], bytes | None]:
        """The URL, headers and body that send ``message``."""
        config = self._config
        variables = message_variables(message, config.default_from)
        url = render(config.send_url, variables, quote=lambda t: quote(t, safe=""))
        body = render(config.body_template, variables)
        headers: dict[str, str] = {}
        if config.auth is not None:
            headers.update(config.auth.headers())
        data: bytes | None = None
        if config.send_format == "json":
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        elif config.send_format == "form":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(flatten(body)).encode("ascii")
        else:
            pairs = flatten(body)
            if pairs:
                url += ("&" if "?" in url else "?") + urlencode(pairs)
        headers.update(config.headers)
        return url, headers, data

    async def handle_outbound(self, message: UserMessage) -> None:
        channel_id = self._context.channel_id
        message_id: str = message.get("message_id") or ""
        if not message.get("to_addr"):
            await self._context.publish_event(
                nack(message_id, "Missing fields: to_addr", channel_id)
            )
            return
        client = self._client
        if client is None:
            raise RuntimeError(f"HTTP channel {channel_id} is not started")
        url, headers, data = self.build_request(message)
        auth = self._config.auth
        basic = (
            (auth.username or "", auth.password or "")
            if auth is not None and auth.type == "basic"
            else None
        )
        result = await client.send(
            self._config.send_method,
            url,
            headers=headers,
            body=data,
            timeout=self._config.timeout,
            basic_auth=basic,
        )
        if not result.ok:
            reason = self._failure_reason(result)
            self._log.warn(
                "HTTP channel {channel_id}: sending {message_id} failed: {reason}",
                channel_id=channel_id,
                message_id=message_id,
                reason=reason,
            )
            await self._report_quietly(
                "send", "down", "send_failed", "Sending failed", reasons=[reason]
            )
            await self._context.publish_event(nack(message_id, reason, channel_id))
            return
        provider_id = self._provider_id(result.body)
        if provider_id is not None:
            await self._remember(provider_id, message_id)
        elif self.correlates:
            self._log.warn(
                "HTTP channel {channel_id}: no message id in the answer to "
                "{message_id}; its delivery reports will not be matched",
                channel_id=channel_id,
                message_id=message_id,
            )
        await self._report_quietly("send", "ok", "sent", "Messages sent")
        await self._context.publish_event(
            ack(message_id, provider_id or message_id, channel_id)
        )

    @staticmethod
    def _failure_reason(result: SendResult) -> str:
        if result.code is None:
            return result.error or "no answer"
        body = " ".join(result.body.split())[:REASON_BODY_LIMIT]
        return f"HTTP {result.code}: {body}" if body else f"HTTP {result.code}"

    def _provider_id(self, body: str) -> str | None:
        """The aggregator's id for a sent message, found in its answer."""
        if self._config.response_id_field is not None:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            found = _as_text(lookup(parsed, self._config.response_id_field))
            if found:
                return found
        if self._id_pattern is not None:
            match = self._id_pattern.search(body)
            if match is not None and match.group(1):
                return match.group(1)
        return None

    async def _remember(self, provider_id: str, message_id: str) -> None:
        try:
            await self._context.store.set(
                keys.http_provider_message(self._context.channel_id, provider_id),
                message_id,
                ttl=self._config.message_id_ttl,
            )
        except Exception:
            # The message was sent: an ack still follows, reports won't match.
            self._log.failure(
                "HTTP channel {channel_id}: could not store the id of {message_id}",
                channel_id=self._context.channel_id,
                message_id=message_id,
            )

    async def _report_quietly(self, *args: Any, **kwargs: Any) -> None:
        """Publish a status before going on; a failure is logged, not raised."""
        self._statuses.report(*args, **kwargs)
        await self._statuses.flush()

    # -- webhooks --------------------------------------------------------------

    def _token_given(self, request: Request, args: dict[bytes, list[bytes]]) -> bool:
        """Whether a webhook carries ``webhook_token`` (header or ``?token=``);
        checked by the server before the body is read."""
        token = self._config.webhook_token
        if token is None:
            return True
        expected = token.encode("utf-8")
        header = self._config.webhook_token_header
        given = request.getHeader(header) or ""
        candidates = [given]
        if header.lower() == "authorization" and " " in given:
            candidates.append(given.split(" ", 1)[1])
        candidates.extend(v.decode("utf-8", "replace") for v in args.get(b"token", []))
        if any(hmac.compare_digest(c.encode("utf-8"), expected) for c in candidates):
            return True
        self._log.warn(
            "HTTP channel {channel_id}: webhook with a wrong token",
            channel_id=self._context.channel_id,
        )
        return False

    def _payload(self, request: Request) -> Any:
        """The webhook's data: a JSON body, else the form/query parameters."""
        content_type = (request.getHeader("content-type") or "").lower()
        limit = self._config.max_body_size
        raw = request.content.read(limit + 1) if request.content else b""
        if len(raw) > limit:
            raise WebhookError(413, "Request body too large")
        looks_json = raw.lstrip()[:1] in (b"{", b"[")
        if "json" in content_type or (looks_json and "form" not in content_type):
            try:
                return json_body.loads(raw.decode("utf-8"))
            except ValueError:
                raise WebhookError(400, "The body is not valid JSON") from None
        values, errors = request_args(request)
        if errors:
            raise WebhookError(400, "Invalid encoding", **errors)
        return values

    def _items(self, payload: Any, list_field: str | None) -> list[Any]:
        if list_field is None:
            return [payload]
        items = lookup(payload, list_field)
        if not isinstance(items, list):
            raise WebhookError(400, f"No list of items at {list_field!r}")
        return items

    def _webhook(
        self, request: Request, parse: Any, publish: Any, component: str
    ) -> bytes | int:
        server = self._server
        assert server is not None
        try:
            parsed = parse(self._payload(request))
        except WebhookError as exc:
            self._statuses.report(
                component,
                "down",
                "invalid_inbound_fields",
                "Invalid inbound fields",
                details={"error": str(exc), **exc.details},
            )
            return server.answer(
                request, error_response(exc.code, str(exc), **exc.details)
            )
        held = server.hold(request)
        self._tasks.spawn(
            self._answer_after(held, publish(parsed), component),
            f"publish a {component} webhook",
        )
        return NOT_DONE_YET

    async def _answer_after(self, held: HeldRequest, work: Any, component: str) -> None:
        server = self._server
        assert server is not None
        try:
            await work
        except Exception:
            self._log.failure(
                "HTTP channel {channel_id}: could not publish a webhook's messages",
                channel_id=self._context.channel_id,
            )
            server.finish(
                held.request_id,
                error_response(503, "The messages could not be accepted"),
                report=False,
            )
            return
        server.finish(
            held.request_id,
            Response(
                200,
                self._config.webhook_response.encode("utf-8"),
                self._config.webhook_response_content_type,
            ),
            report=False,
        )
        await self._report_quietly(component, "ok", "request_parsed", "Request parsed")

    # inbound messages

    def _render_inbound(self, request: Request) -> bytes | int:
        return self._webhook(
            request, self._parse_inbound, self._publish_inbound, "inbound"
        )

    def _parse_inbound(self, payload: Any) -> list[UserMessage]:
        config = self._config
        fields = config.merged_inbound_fields
        messages: list[UserMessage] = []
        errors: list[str] = []
        for index, item in enumerate(self._items(payload, config.inbound_list_field)):
            values = {
                name: _as_text(lookup(item, path)) for name, path in fields.items()
            }
            to_addr = values.get("to") or config.default_from
            missing = [
                f"{name} ({fields.get(name, 'default_from')})"
                for name, value in (("from", values.get("from")), ("to", to_addr))
                if not value
            ]
            if missing:
                errors.append(f"item {index}: missing {', '.join(missing)}")
                continue
            metadata: dict[str, Any] = {}
            if values.get("message_id"):
                metadata["provider_message_id"] = values["message_id"]
            messages.append(
                user_message(
                    to_addr=to_addr,
                    from_addr=values["from"],
                    content=values.get("content"),
                    group=values.get("group"),
                    transport_name=self._context.channel_id,
                    transport_type=config.transport_type,
                    provider=config.provider,
                    transport_metadata={"http": metadata} if metadata else None,
                )
            )
        if errors:
            raise WebhookError(400, "Invalid inbound fields", errors=errors)
        return messages

    async def _publish_inbound(self, messages: list[UserMessage]) -> None:
        for msg in messages:
            await self._context.publish_inbound(msg)

    # delivery reports

    def _render_dlr(self, request: Request) -> bytes | int:
        return self._webhook(
            request, self._parse_reports, self._publish_reports, "delivery_report"
        )

    def _parse_reports(self, payload: Any) -> list[tuple[str, str | None, str]]:
        config = self._config
        fields = config.merged_dlr_fields
        status_map = config.status_map
        reports: list[tuple[str, str | None, str]] = []
        errors: list[str] = []
        for index, item in enumerate(self._items(payload, config.dlr_list_field)):
            provider_id = _as_text(lookup(item, fields["id"]))
            raw_status = _as_text(lookup(item, fields["status"]))
            if not provider_id or raw_status is None:
                errors.append(
                    f"item {index}: needs an id ({fields['id']}) and a status "
                    f"({fields['status']})"
                )
                continue
            status = status_map.get(raw_status.lower(), config.dlr_default_status)
            reports.append((provider_id, status, raw_status))
        if errors:
            raise WebhookError(400, "Invalid delivery report fields", errors=errors)
        return reports

    async def _message_id_for(self, provider_id: str) -> str | None:
        stored = await self._context.store.get(
            keys.http_provider_message(self._context.channel_id, provider_id)
        )
        if stored is not None:
            return stored
        # Without correlation, the aggregator echoes our own message id.
        return None if self.correlates else provider_id

    async def _publish_reports(
        self, reports: list[tuple[str, str | None, str]]
    ) -> None:
        channel_id = self._context.channel_id
        for provider_id, status, raw_status in reports:
            if status is None:
                self._log.warn(
                    "HTTP channel {channel_id}: ignoring delivery report for "
                    "{provider_id} with unknown status {status!r}",
                    channel_id=channel_id,
                    provider_id=provider_id,
                    status=raw_status,
                )
                continue
            message_id = await self._message_id_for(provider_id)
            if message_id is None:
                self._log.warn(
                    "HTTP channel {channel_id}: ignoring delivery report for "
                    "unknown message {provider_id}",
                    channel_id=channel_id,
                    provider_id=provider_id,
                )
                continue
            event = delivery_report(message_id, status, channel_id)
            event["transport_metadata"] = {
                "http": {"provider_message_id": provider_id, "status": raw_status}
            }
            await self._context.publish_event(event)
