"""Test SMSC scripts run as subprocesses by :mod:`junebug.testing.smsc`."""
