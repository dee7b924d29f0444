"""``/cgi-bin/sendsms`` (Kannel) and ``/send`` (Jasmin) on the API's app.

Each request is answered in its dialect, whatever goes wrong: a refusal
with the dialect's status and text, a Junebug error (an unknown channel,
the broker away) mapped to the dialect's nearest answer, anything else
logged and answered as the dialect's internal error.  A message is
accepted only once Junebug's API would have accepted it (recorded, then
published and confirmed; see :mod:`junebug.channels.sending`), so nothing
accepted is lost and nothing refused is half stored.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.web.http import parse_qs
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.channels.properties import has_destination
from junebug.dialects import jasmin, kannel
from junebug.dialects.accounts import SendAccounts, SendUser, send_users
from junebug.errors import JunebugError

log = Logger()

#: X-Kannel headers of a text/plain sendsms POST, and the argument each is.
_KANNEL_HEADERS = {
    b"x-kannel-username": b"username",
    b"x-kannel-password": b"password",
    b"x-kannel-from": b"from",
    b"x-kannel-to": b"to",
    b"x-kannel-coding": b"coding",
    b"x-kannel-mclass": b"mclass",
    b"x-kannel-validity": b"validity",
    b"x-kannel-dlr-mask": b"dlr-mask",
    b"x-kannel-dlr-url": b"dlr-url",
    b"x-kannel-priority": b"priority",
    b"x-kannel-udh": b"udh",
}
_FORM = b"application/x-www-form-urlencoded"
_PLAIN_TYPES = (b"text/plain", b"application/octet-stream")


class _NotRoutable(Exception):
    """The user's channel or destination cannot take messages."""


async def _submit(
    deps: ApiDependencies,
    user: SendUser,
    body: dict[str, Any],
    extras: dict[str, Any],
) -> dict[str, Any]:
    """Send one message as the Junebug API would, through the user's channel
    or destination; raise _NotRoutable or the sender's JunebugError."""
    try:
        if user.channel_id is not None:
            properties = await deps.channels.get_properties(user.channel_id)
            if not has_destination(properties):
                # Its events would have nowhere to go: Junebug's API refuses too.
                raise _NotRoutable()
            return await deps.sender.send(
                user.channel_id, properties, body, record_extras=extras
            )
        if deps.routers is None or user.router_id is None:
            raise _NotRoutable()
        assert user.destination_id is not None
        return await deps.routers.send(
            user.router_id, user.destination_id, body, record_extras=extras
        )
    except JunebugError as exc:
        if exc.code == 404:
            raise _NotRoutable() from exc
        raise


def _answer(request: IRequest, code: int, text: str, content_type: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    return text.encode("utf-8")


def _body(request: IRequest) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read()
    return data


def form_args(request: IRequest) -> dict[bytes, list[bytes]]:
    """The query's arguments and, after them, a form body's."""
    args: dict[bytes, list[bytes]] = {
        k: list(v) for k, v in (request.args or {}).items()
    }
    media = (request.getHeader(b"content-type") or b"").split(b";")[0]
    if request.method != b"POST" or media.strip().lower() != _FORM:
        return args
    for key, values in parse_qs(_body(request), keep_blank_values=True).items():
        args.setdefault(key, []).extend(values)
    return args


def kannel_args(request: IRequest) -> kannel.Args:
    """A sendsms request's arguments: query and form, or X-Kannel headers
    and the body of a text/plain POST (raises KannelRefusal)."""
    args: dict[bytes, list[bytes]] = dict(request.args or {})
    if request.method != b"POST":
        return args
    content_type = request.getHeader(b"content-type") or b""
    media, _, params = content_type.partition(b";")
    media = media.strip().lower()
    if media == _FORM:
        return form_args(request)
    if media not in _PLAIN_TYPES:
        raise kannel.KannelRefusal(400, "Invalid content-type")
    for header, name in _KANNEL_HEADERS.items():
        value = request.getHeader(header)
        if value is not None:
            args[name] = [value]
    args[b"text"] = [_body(request)]
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"charset" and value:
            args[b"charset"] = [value.strip(b'"')]
    return args


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the dialects' send routes to ``app``."""
    accounts = SendAccounts(send_users(deps.config.send_users))

    @app.route("/cgi-bin/sendsms", methods=["GET", "POST"], endpoint="dialects.kannel")
    async def sendsms(request: IRequest) -> bytes:
        code, text = await _kannel(request)
        return _answer(request, code, text, b"text/html; charset=utf-8")

    async def _kannel(request: IRequest) -> tuple[int, str]:
        try:
            args = kannel_args(request)
            username, password = kannel.credentials(args)
            user = accounts.authenticate(username, password, kannel.DIALECT)
            if user is None:
                return kannel.AUTH_FAILED
            checked = kannel.parse_sendsms(args)
            for body in checked.bodies:
                await _submit(deps, user, body, checked.extras)
        except kannel.KannelRefusal as exc:
            return exc.code, exc.text
        except _NotRoutable:
            return kannel.NOT_ROUTABLE
        except JunebugError as exc:
            if exc.code == 400:
                return 400, f"{exc}, rejected"
            return kannel.TEMPORARY
        except Exception:
            log.failure("Unexpected error in /cgi-bin/sendsms")
            return 500, "Sending failed."
        return kannel.ACCEPTED

    @app.route("/send", methods=["GET", "POST"], endpoint="dialects.jasmin")
    async def send(request: IRequest) -> bytes:
        code, text = await _jasmin(request)
        return _answer(request, code, text, b"text/plain; charset=utf-8")

    async def _jasmin(request: IRequest) -> tuple[int, str]:
        try:
            content_type = request.getHeader(b"content-type")
            found = jasmin.arguments(form_args(request), content_type, _body(request))
            jasmin.check(found)
            username, password = jasmin.credentials(found)
            user = accounts.authenticate(username, password, jasmin.DIALECT)
            if user is None:
                name = (username or b"").decode("utf-8", "replace")
                return 403, f'Error "Authentication failure for username:{name}"'
            checked = jasmin.parse_send(found)
            view = await _submit(deps, user, checked.body, checked.extras)
        except jasmin.JasminRefusal as exc:
            return exc.code, f'Error "{exc.text}"'
        except _NotRoutable:
            return jasmin.NO_ROUTE[0], f'Error "{jasmin.NO_ROUTE[1]}"'
        except JunebugError as exc:
            if exc.code == 400:
                return 400, f'Error "{exc}"'
            return jasmin.SUBMIT_FAILED[0], f'Error "{jasmin.SUBMIT_FAILED[1]}"'
        except Exception as exc:
            log.failure("Unexpected error in /send")
            return 500, f'Error "Unknown error: {type(exc).__name__}"'
        return 200, f'Success "{view["message_id"]}"'
