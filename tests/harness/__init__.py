"""Helpers that start real services (redis-server, Asterisk, SIPp) for tests and the test PBX.

The map, each layer importing only the ones above it (tests/test_harness_layout.py
checks there is no cycle):

- procs: processes, ports and /proc (start, stop by PID, CPU, memory);
  net: the Blackhole (a server that never answers) and the FastAGI health probe;
  redis_server: a private redis-server or sentinel.
- siptrace: SIP messages parsed from a SIPp trace; sippcmd: the SIPp command line
  (defaults and overrides); sipp: `SippPeer`, the one SIPp wrapper.
- rootfs: the sid root filesystem and callroute's wheels; supervisor: the recorded
  PIDs and state file; seeding: the demo data; pbx: `TestPBX`, the PBX's lifecycle.
- calls (one scripted e2e call) and load (streams of calls) drive the PBX; demo,
  testpbx, faults and soak are the scripts built on them.
- bench (the CLI) over bench_decision (bench_agi, bench_fastagi) and bench_pbx (its
  figures and targets in bench_pbx_report), all on
  bench_common; bench_doc turns a saved run into docs/performance.md.
"""
