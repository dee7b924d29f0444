"""The config of the ``dmark`` channel type."""

from __future__ import annotations

import attrs

from junebug.errors import ConfigError
from junebug.transports.httprpc import HttpRpcConfig


@attrs.frozen
class DmarkConfig(HttpRpcConfig):
    """Dmark's USSD gateway calls ``web_path`` on ``web_port``.

    Besides the HTTP options (see :class:`HttpRpcConfig`):

    - ``ussd_session_timeout`` (600 s): how long a USSD session is remembered
      after its last request; a request for a forgotten transaction starts a
      ``new`` session.
    - ``fix_to_addr`` (false): write a service code such as ``123`` as
      ``*123#`` (only when it neither starts with ``*`` nor ends with ``#``).
    - ``timeout_message`` (none): when set, a request that gets no reply in
      ``request_timeout`` seconds is answered ``200`` with this text and
      ``action: end``, so the phone shows it and the session ends.  Without it
      the answer is ``request_timeout_status_code`` / ``request_timeout_body``
      (504 and an empty body), as in vumi.

    vumi's ``redis_manager`` is accepted and ignored: sessions live in
    Junebug's own store.
    """

    ussd_session_timeout: int = 600
    fix_to_addr: bool = False
    timeout_message: str | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.web_path is None:
            raise ConfigError(
                "web_path: required, the path Dmark calls (e.g. '/dmark/ussd')"
            )
        if self.ussd_session_timeout <= 0:
            raise ConfigError("ussd_session_timeout: must be more than 0 seconds")
