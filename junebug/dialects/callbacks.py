"""The dialects' callbacks: delivery reports and MO messages as Kannel and
Jasmin send them.

Delivery reports.  A message sent through a dialect keeps, in its outbound
record, ``dialect`` and that dialect's DLR settings; each of its events
becomes at most one request (:func:`dlr_request`):

* Kannel: a GET of ``dlr_url`` with its ``%`` escapes filled
  (:mod:`junebug.http.url_templates`), if the event's DLR type is in
  ``dlr_mask``: ack 8 (submitted to the SMSC), nack 16 (rejected by it),
  delivery report delivered 1, failed 2, pending 4 (buffered).
* Jasmin: its form fields to ``dlr_url`` with ``dlr_method``: at level 1 (or
  3) the ack (``message_status=ESME_ROK``) or nack (its ``ESME_`` status),
  at level 2 (or 3) the delivery report (``DELIVRD``, ``UNDELIV``, or
  ``ACCEPTD`` while pending) with the receipt's fields; only ``ACK/Jasmin``
  answers it.

MO messages.  A channel's (or destination's) ``mo_format`` says how its
``mo_url`` receives them (:func:`mo_request`): ``kannel-get`` (a GET, as
Kannel's ``get-url``), ``kannel-post`` (the text POSTed as ``text/plain``
with ``X-Kannel-*`` headers, as ``post-url``) or ``jasmin`` (the form of
Jasmin's HTTP connector; only ``ACK/Jasmin`` answers it).  ``junebug`` (the
default) is Junebug's JSON POST, not made here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from junebug.http import url_templates
from junebug.http.plain import PlainRequest
from junebug.messages import AnyMessage
from junebug.transports.smpp.gsm0338 import gsm_encode, is_gsm_encodable

#: The ``mo_format`` values: Junebug's JSON POST, and the dialects' requests.
MO_FORMATS: Final = ("junebug", "kannel-get", "kannel-post", "jasmin")
JASMIN_ACK: Final = "ACK/Jasmin"
_FORM: Final = "application/x-www-form-urlencoded"
_ESME_STATUS: Final = re.compile(r"ESME_[A-Z0-9]+")
#: Jasmin's level-2 ``message_status`` for each delivery status.
JASMIN_STATES: Final = {
    "delivered": "DELIVRD",
    "failed": "UNDELIV",
    "pending": "ACCEPTD",
}
#: Receipt states Jasmin passes on as they are.
_JASMIN_RECEIPT_STATES: Final = frozenset(
    {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD"}
)


# -- delivery reports ---------------------------------------------------------


def dlr_request(
    event: AnyMessage, record: Mapping[str, Any], channel_id: str
) -> tuple[str, PlainRequest] | None:
    """The dialect request for one event of a dialect's message, or None
    if it asked for no report of this kind."""
    url = record.get("dlr_url")
    if not isinstance(url, str) or not url:
        return None
    dialect = record.get("dialect")
    if dialect == "kannel":
        return _kannel_dlr(url, event, record, channel_id)
    if dialect == "jasmin":
        return _jasmin_dlr(url, event, record, channel_id)
    return None


def needs_smsc_id(event: AnyMessage, record: Mapping[str, Any]) -> bool:
    """Whether :func:`dlr_request` wants ``record["smsc_id"]`` (the SMSC's id
    from the message's ack) for this event: a Jasmin level-2 report names
    it, and a delivery report does not carry it."""
    return (
        record.get("dialect") == "jasmin"
        and event.get("event_type") == "delivery_report"
        and not event.get("sent_message_id")
        and record.get("dlr_level") in (2, 3)
    )


def _kannel_dlr(
    url: str, event: AnyMessage, record: Mapping[str, Any], channel_id: str
) -> tuple[str, PlainRequest] | None:
    kind = url_templates.dlr_type(event)
    mask = record.get("dlr_mask")
    if kind is None or not isinstance(mask, int) or not kind & mask:
        return None
    values = url_templates.event_values(event, record, channel_id)
    # %b of a report is the SMSC's answer, as Kannel fills it.
    values["content"] = values.get("reason")
    return url_templates.render(url, values), PlainRequest("GET")


def _receipt_state(event: AnyMessage) -> str | None:
    metadata = event.get("transport_metadata") or {}
    state = metadata.get("smpp_delivery_status") if isinstance(metadata, dict) else None
    if not isinstance(state, str):
        return None
    state = "DELIVRD" if state == "DELIVERED" else state
    return state if state in _JASMIN_RECEIPT_STATES else None


def _jasmin_date(timestamp: Any) -> str:
    """A vumi timestamp as a receipt's ``YYMMDDhhmm``."""
    try:
        when = datetime.fromisoformat(str(timestamp))
    except ValueError:
        when = datetime.now(UTC)
    return when.strftime("%y%m%d%H%M")


def _jasmin_dlr(
    url: str, event: AnyMessage, record: Mapping[str, Any], channel_id: str
) -> tuple[str, PlainRequest] | None:
    level = record.get("dlr_level")
    event_type = event.get("event_type")
    fields: dict[str, Any] = {"id": event.get("user_message_id")}
    if event_type in ("ack", "nack"):
        if level not in (1, 3):
            return None
        status = "ESME_ROK"
        if event_type == "nack":
            found = _ESME_STATUS.search(str(event.get("nack_reason") or ""))
            status = found.group(0) if found else "ESME_RSUBMITFAIL"
        fields.update(message_status=status, level=1, connector=channel_id)
    elif event_type == "delivery_report":
        if level not in (2, 3):
            return None
        delivery = str(event.get("delivery_status") or "")
        state = _receipt_state(event) or JASMIN_STATES.get(delivery, "UNKNOWN")
        date = _jasmin_date(event.get("timestamp"))
        fields.update(
            message_status=state,
            level=2,
            connector=channel_id,
            id_smsc=event.get("sent_message_id") or record.get("smsc_id") or "",
            sub="001",
            dlvrd="001" if state == "DELIVRD" else "000",
            subdate=date,
            donedate=date,
            err="000",
            text="",
        )
    else:
        return None
    method = record.get("dlr_method") or "POST"
    return _form_request(url, fields, method)


def _form_request(
    url: str, fields: Mapping[str, Any], method: str
) -> tuple[str, PlainRequest]:
    """Jasmin's form request: the fields in the query (GET) or body (POST)."""
    encoded = urlencode({k: "" if v is None else v for k, v in fields.items()})
    if method == "GET":
        joined = f"{url}{'&' if '?' in url else '?'}{encoded}"
        return joined, PlainRequest("GET", expect=JASMIN_ACK)
    return url, PlainRequest("POST", _FORM, encoded, expect=JASMIN_ACK)


# -- MO messages ----------------------------------------------------------------


def mo_request(
    mo_format: str, url: str, message: AnyMessage, channel_id: str
) -> tuple[str, PlainRequest]:
    """The request delivering one MO message in ``mo_format`` (not junebug)
    to ``url`` (a template, filled here)."""
    filled = url
    if url_templates.has_variables(url):
        filled = url_templates.render(url, url_templates.mo_values(message, channel_id))
    if mo_format == "kannel-get":
        return filled, PlainRequest("GET")
    content = message.get("content") or ""
    if mo_format == "kannel-post":
        epoch = str(url_templates.mo_values(message, channel_id)["timestamp"])
        headers = (
            ("X-Kannel-From", str(message.get("from_addr") or "")),
            ("X-Kannel-To", str(message.get("to_addr") or "")),
            ("X-Kannel-Time", epoch),
            ("X-Kannel-SMSC", channel_id),
            ("X-Kannel-Coding", "0"),
        )
        request = PlainRequest(
            "POST", "text/plain; charset=utf-8", content, headers=headers
        )
        return filled, request
    if mo_format == "jasmin":
        return _jasmin_mo(filled, message, channel_id)
    raise ValueError(f"unknown mo_format {mo_format!r}")


def _jasmin_mo(
    url: str, message: AnyMessage, channel_id: str
) -> tuple[str, PlainRequest]:
    """Jasmin's HTTP connector form: the short message's bytes in
    ``content`` (GSM 03.38 with ``coding=0``, else UTF-16BE with
    ``coding=8``) and their hex in ``binary``."""
    text = message.get("content") or ""
    if is_gsm_encodable(text):
        coding, data = 0, gsm_encode(text)
    else:
        coding, data = 8, text.encode("utf-16-be")
    fields = {
        "id": message.get("message_id"),
        "from": message.get("from_addr") or "",
        "to": message.get("to_addr") or "",
        "origin-connector": channel_id,
        "priority": 0,
        "coding": coding,
        "validity": "",
        "content": data,
        "binary": data.hex(),
    }
    encoded = urlencode(fields)
    return url, PlainRequest("POST", _FORM, encoded, expect=JASMIN_ACK)
