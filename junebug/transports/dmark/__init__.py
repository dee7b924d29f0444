"""The ``dmark`` channel type: Dmark's USSD over HTTP."""
