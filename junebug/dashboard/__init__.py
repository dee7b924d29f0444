"""The web dashboard: a page and its assets, shipped in ``static/``.

The page is a small script that calls the JSON API the way any client does
(see ``docs/dashboard.rst``); :mod:`junebug.api.dashboard` serves the files
under ``/dashboard/`` when the ``dashboard`` option is on.
"""
