"""Other gateways' HTTP interfaces on Junebug's core: Kannel and Jasmin.

A client written for Kannel's ``/cgi-bin/sendsms`` or Jasmin's ``/send``
(RapidPro's KN and JS channels among them) sends through Junebug unchanged:
:mod:`.accounts` holds the send users, :mod:`.kannel` and :mod:`.jasmin`
read each dialect's requests and write its answers, :mod:`.callbacks` makes
its delivery reports and MO requests, :mod:`.routes` serves it all.
"""

from __future__ import annotations

from typing import Final

#: The dialects' paths: not behind the API's credentials (each request
#: carries its send user's ``username`` and ``password``).
PATHS: Final = frozenset({b"/cgi-bin/sendsms", b"/send"})
