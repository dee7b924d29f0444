"""Kannel's and Jasmin's message priorities as Junebug's.

Both dialects take ``priority`` 0 (the default, lowest) to 3 (highest);
Junebug's priorities are 1 (the default, bulk) to 5 (highest).  0 is bulk
and each step above it keeps its rank, leaving 2 unused so that a dialect's
first step up (RapidPro's "high priority" is ``1``) already passes ordinary
API traffic sent at 2.
"""

from __future__ import annotations

from typing import Final

#: Dialect priority -> Junebug priority.
JUNEBUG_PRIORITY: Final = {0: 1, 1: 3, 2: 4, 3: 5}
