"""Helpers that start real services (redis-server, Asterisk, SIPp) for tests and the test PBX."""
