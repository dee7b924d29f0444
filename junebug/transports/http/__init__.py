"""The ``http`` channel type: a generic HTTP/JSON SMS aggregator."""
