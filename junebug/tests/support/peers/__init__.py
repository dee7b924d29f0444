"""Test SMSC scripts run as subprocesses by :mod:`junebug.tests.support.smsc`."""
