"""What the test suite runs besides Junebug: installers and runners of real
peers (Prosody, nginx, SMSCs, a private Redis) and of ``jb`` processes.

Kept in the test tree, not in the shipped :mod:`junebug.testing` (the doubles
and fixtures plugins and applications may use too).
"""
