"""Tests of the test server, `realtime_server/`."""
