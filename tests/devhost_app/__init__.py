"""A tiny Functions app for the local host's tests (tests/test_devhost.py); not part of the product."""
