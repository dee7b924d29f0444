"""Tests of the SMPP protocol foundation."""
