"""``jb message-api``: Junebug's HTTP message API over one AMQP connector.

The Python 3 counterpart of vumi2's Junebug message API, for RapidPro's Junebug
("JN") channel type: MT messages are POSTed to ``{base_url_path}/messages`` and
published to ``<connector_name>.outbound``; inbound messages and events consumed
from ``<connector_name>.inbound`` and ``.event`` are POSTed to
``mo_message_url`` and to each message's ``event_url``.
"""

__all__ = ["config", "service", "state_cache"]
