"""The config of the ``http`` channel type (a generic HTTP/JSON SMS aggregator)."""

from __future__ import annotations

import re
from typing import Any, Final

import attrs

from junebug.errors import ConfigError
from junebug.redaction import MASKED, SECRET
from junebug.transports.http.template import check_template
from junebug.transports.httprpc import HttpRpcConfig, normalise_path

METHODS: Final = ("POST", "PUT", "PATCH", "GET")
BODY_FORMATS: Final = ("json", "form", "query")
AUTH_TYPES: Final = ("basic", "token", "header")
DELIVERY_STATUSES: Final = ("delivered", "failed", "pending")

#: The body sent when no ``body_template`` is given.
DEFAULT_BODY_TEMPLATE: Final = {
    "to": "{to}",
    "from": "{from}",
    "content": "{content}",
    "message_id": "{message_id}",
}
#: Where the fields of an inbound message are found when not configured.
DEFAULT_INBOUND_FIELDS: Final = {
    "from": "from",
    "to": "to",
    "content": "content",
    "message_id": "id",
}
DEFAULT_DLR_FIELDS: Final = {"id": "id", "status": "status"}
#: Common aggregator and SMPP status words; keys are matched case-insensitively.
DEFAULT_DLR_STATUS_MAP: Final = {
    "delivered": "delivered",
    "delivrd": "delivered",
    "delivered_to_handset": "delivered",
    "success": "delivered",
    "read": "delivered",
    "failed": "failed",
    "failure": "failed",
    "undeliv": "failed",
    "undelivered": "failed",
    "undeliverable": "failed",
    "rejectd": "failed",
    "rejected": "failed",
    "expired": "failed",
    "deleted": "failed",
    "error": "failed",
    "pending": "pending",
    "enroute": "pending",
    "acceptd": "pending",
    "accepted": "pending",
    "queued": "pending",
    "buffered": "pending",
    "sent": "pending",
    "submitted": "pending",
}
REQUIRED_INBOUND_FIELDS: Final = ("from",)
KNOWN_INBOUND_FIELDS: Final = ("from", "to", "content", "message_id", "group")
KNOWN_DLR_FIELDS: Final = ("id", "status")


@attrs.frozen
class AuthConfig:
    """How sends authenticate.

    - ``basic``: ``username`` and ``password`` as HTTP Basic.
    - ``token``: ``Authorization: <scheme> <token>`` (``scheme`` defaults to
      ``Bearer``; Junebug's own callbacks use ``Token``).
    - ``header``: the header ``header`` set to ``value`` (API-key headers).
    """

    type: str
    username: str | None = None
    password: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)
    token: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)
    scheme: str = "Bearer"
    header: str | None = None
    value: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)

    def __attrs_post_init__(self) -> None:
        if self.type not in AUTH_TYPES:
            raise ConfigError(
                f"auth.type: must be one of {', '.join(AUTH_TYPES)}, not {self.type!r}"
            )
        needed = {
            "basic": ("username", "password"),
            "token": ("token",),
            "header": ("header", "value"),
        }[self.type]
        for name in needed:
            if getattr(self, name) is None:
                raise ConfigError(f"auth.{name}: required for auth type {self.type!r}")

    def headers(self) -> dict[str, str]:
        """The headers to send (Basic is computed by the client)."""
        if self.type == "token":
            return {"Authorization": f"{self.scheme} {self.token}".strip()}
        if self.type == "header":
            assert self.header is not None and self.value is not None
            return {self.header: self.value}
        return {}


def _check_path(name: str, path: str) -> None:
    if not path or any(not part for part in path.split(".")):
        raise ConfigError(f"{name}: {path!r} is not a field path such as 'a.b.0'")


@attrs.frozen
class HttpConfig(HttpRpcConfig):
    """A generic HTTP/JSON SMS aggregator (see docs/channels.rst).

    Sending: each MT message becomes one request to ``send_url`` with
    ``method``; its body (or query) is ``body_template`` with ``{to}``,
    ``{from}``, ``{content}``... filled in.  A 2xx answer is an ``ack``
    (``sent_message_id`` = the aggregator's id when ``response_id_field`` or
    ``response_id_pattern`` finds one), anything else a ``nack``.

    Receiving (only with ``web_path``): inbound messages are posted to
    ``<web_path>/<inbound_path>`` and delivery reports to
    ``<web_path>/<dlr_path>``, as JSON, a form or a query string; the
    ``*_fields`` options say where each value is.
    """

    send_url: str = ""
    method: str = "POST"
    body_format: str | None = None
    body_template: dict[str, Any] = attrs.field(
        factory=lambda: dict(DEFAULT_BODY_TEMPLATE)
    )
    #: Every header value is a secret: aggregators put credentials in them.
    headers: dict[str, str] = attrs.field(factory=dict, metadata=SECRET, repr=MASKED)
    auth: AuthConfig | None = None
    timeout: float = 10.0
    default_from: str | None = None
    transport_type: str = "sms"
    provider: str | None = None
    response_id_field: str | None = None
    response_id_pattern: str | None = None
    message_id_ttl: int = 7 * 24 * 60 * 60
    inbound_path: str = "inbound"
    dlr_path: str = "dlr"
    inbound_fields: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_INBOUND_FIELDS)
    )
    inbound_list_field: str | None = None
    dlr_fields: dict[str, str] = attrs.field(factory=lambda: dict(DEFAULT_DLR_FIELDS))
    dlr_list_field: str | None = None
    dlr_status_map: dict[str, str] = attrs.field(factory=dict)
    dlr_default_status: str | None = None
    webhook_token: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)
    webhook_token_header: str = "X-Webhook-Token"  # noqa: S105 - a header name
    webhook_response: str = '{"status": "ok"}'
    webhook_response_content_type: str = "application/json"

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not re.match(r"^https?://", self.send_url):
            raise ConfigError("send_url: required, an http:// or https:// URL")
        check_template(self.send_url, "send_url")
        if self.method.upper() not in METHODS:
            raise ConfigError(
                f"method: must be one of {', '.join(METHODS)}, not {self.method!r}"
            )
        if self.body_format is not None:
            if self.body_format not in BODY_FORMATS:
                raise ConfigError(
                    f"body_format: must be one of {', '.join(BODY_FORMATS)}, "
                    f"not {self.body_format!r}"
                )
            if self.method.upper() == "GET" and self.body_format != "query":
                raise ConfigError("body_format: a GET can only send 'query'")
        check_template(self.body_template, "body_template")
        if self.send_format in ("form", "query"):
            for key, value in self.body_template.items():
                if isinstance(value, dict | list):
                    raise ConfigError(
                        f"body_template.{key}: a {self.send_format} body is flat; "
                        "nested values are only for JSON"
                    )
        if self.timeout <= 0:
            raise ConfigError("timeout: must be more than 0 seconds")
        if self.message_id_ttl <= 0:
            raise ConfigError("message_id_ttl: must be more than 0 seconds")
        if self.response_id_field is not None:
            _check_path("response_id_field", self.response_id_field)
        if self.response_id_pattern is not None:
            try:
                compiled = re.compile(self.response_id_pattern)
            except re.error as exc:
                raise ConfigError(f"response_id_pattern: {exc}") from None
            if compiled.groups < 1:
                raise ConfigError(
                    "response_id_pattern: needs a group around the id, e.g. "
                    "'Success \"(.+)\"'"
                )
        for name, fields, known in (
            ("inbound_fields", self.inbound_fields, KNOWN_INBOUND_FIELDS),
            ("dlr_fields", self.dlr_fields, KNOWN_DLR_FIELDS),
        ):
            for key, path in fields.items():
                if key not in known:
                    raise ConfigError(
                        f"{name}.{key}: unknown field, must be one of "
                        f"{', '.join(known)}"
                    )
                _check_path(f"{name}.{key}", path)
        for key in REQUIRED_INBOUND_FIELDS:
            if key not in self.merged_inbound_fields:
                raise ConfigError(f"inbound_fields.{key}: required")
        for name in ("inbound_list_field", "dlr_list_field"):
            value = getattr(self, name)
            if value is not None:
                _check_path(name, value)
        for key, status in self.dlr_status_map.items():
            if status not in DELIVERY_STATUSES:
                raise ConfigError(
                    f"dlr_status_map.{key}: must be one of "
                    f"{', '.join(DELIVERY_STATUSES)}, not {status!r}"
                )
        if (
            self.dlr_default_status is not None
            and self.dlr_default_status not in DELIVERY_STATUSES
        ):
            raise ConfigError(
                f"dlr_default_status: must be one of {', '.join(DELIVERY_STATUSES)}"
            )
        if self.web_path is not None:
            if self.inbound_url_path == self.dlr_url_path:
                raise ConfigError("inbound_path, dlr_path: must be different paths")
            if normalise_path(self.health_path) in (
                self.inbound_url_path,
                self.dlr_url_path,
            ):
                raise ConfigError("health_path: must differ from the webhook paths")

    @property
    def send_method(self) -> str:
        return self.method.upper()

    @property
    def send_format(self) -> str:
        """``json``, ``form`` or ``query`` (the default: query for GET, else json)."""
        if self.body_format is not None:
            return self.body_format
        return "query" if self.send_method == "GET" else "json"

    @property
    def merged_inbound_fields(self) -> dict[str, str]:
        """Where each inbound field is: the defaults, then ``inbound_fields``."""
        return {**DEFAULT_INBOUND_FIELDS, **self.inbound_fields}

    @property
    def merged_dlr_fields(self) -> dict[str, str]:
        return {**DEFAULT_DLR_FIELDS, **self.dlr_fields}

    @property
    def status_map(self) -> dict[str, str]:
        """Aggregator status (lower-cased) -> delivered/failed/pending."""
        merged = dict(DEFAULT_DLR_STATUS_MAP)
        merged.update({k.lower(): v for k, v in self.dlr_status_map.items()})
        return merged

    @property
    def inbound_url_path(self) -> str:
        return normalise_path(f"{self.path}/{self.inbound_path.strip('/')}")

    @property
    def dlr_url_path(self) -> str:
        return normalise_path(f"{self.path}/{self.dlr_path.strip('/')}")
