"""A tiny Functions app for the local host's tests (tests/local/test_host.py); not part of the product."""
