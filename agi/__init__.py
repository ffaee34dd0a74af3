"""callroute: Ooma Office-style call forwarding for Asterisk.

Kept empty on purpose: `callroute-agi` starts a new interpreter for every call,
so importing the package must cost nothing beyond the modules a call needs.
"""
