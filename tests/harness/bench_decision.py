"""The decision level of `scripts/bench`: no Asterisk, fake AGI peers drive the real
protocol. The floors (`python -c pass`, one redis-py HGETALL), process AGI and FastAGI,
each as a ratio to its floor measured in the same run."""

from __future__ import annotations

import time
from dataclasses import asdict

from tests.harness.bench_agi import import_breakdown, import_tree, process_agi
from tests.harness.bench_common import EXT, BenchError, Context, SectionReport, Stats, Target, log
from tests.harness.bench_fastagi import FastAgiServer, fastagi_sequential, fastagi_throughput


def hgetall_floor(ctx: Context) -> Stats:
    """One HGETALL on a persistent redis-py connection: what a decision can't beat."""
    import redis

    client = redis.Redis.from_url(ctx.redis_url, decode_responses=True)
    key = f"callroute:ext:{EXT}"
    try:
        if not client.hgetall(key):
            raise BenchError(f"{key} is empty: seeding failed")
        for _ in range(50):  # warm the connection and both caches
            client.hgetall(key)
        samples = []
        for _ in range(ctx.plan.hgetall_runs):
            started = time.perf_counter()
            client.hgetall(key)
            samples.append(time.perf_counter() - started)
    finally:
        client.close()
    return Stats.of(samples)


def decision_level(ctx: Context) -> SectionReport:
    """Floors, process AGI and FastAGI, driven by fake AGI peers (no Asterisk)."""
    plan = ctx.plan
    log(f"HGETALL floor ({plan.hgetall_runs} round trips)")
    hgetall = hgetall_floor(ctx)
    log(f"process AGI ({plan.agi_runs} calls) and python -c pass ({plan.floor_runs} runs)")
    floor, agi, agi_first20 = process_agi(ctx)
    log(f"import profile of a call (-X importtime, {plan.importtime_runs} runs)")
    imports, import_total = import_breakdown(ctx)
    server = FastAgiServer(ctx)
    try:
        log("FastAGI server up; sequential requests")
        server.start()
        memory_idle = server.memory_kib()
        sequential, first_command = fastagi_sequential(server.address, plan.fastagi_runs)
        log(f"FastAGI throughput: {plan.clients} client processes for {plan.load_seconds:g}s")
        load = fastagi_throughput(server, plan.clients, plan.load_seconds)
    finally:
        server.stop()
    load_ms = load["latency_ms"]
    agi_ratio = agi.p50 / floor.p50
    fast_ratio = sequential.p50 / hgetall.p50

    def row(name: str, stats: Stats, ratio: str = "") -> tuple[str, ...]:
        return (name, str(stats.n), f"{stats.p50:.3f}", f"{stats.p99:.3f}", ratio)

    rows = [
        ("measure", "n", "p50 ms", "p99 ms", "ratio to floor"),
        row("floor: python -c pass (bench venv)", floor),
        row("floor: redis-py HGETALL round trip", hgetall),
        row("process AGI call (callroute-agi)", agi, f"{agi_ratio:.1f}x python -c pass"),
        row("FastAGI request, sequential", sequential, f"{fast_ratio:.1f}x HGETALL"),
        row("  of which: until the first command", first_command,
            f"{first_command.p50 / hgetall.p50:.1f}x HGETALL"),
        ("FastAGI request, under load", str(load["decisions"]), f"{load_ms['p50']:.3f}",
         f"{load_ms['p99']:.3f}", f"{load['decisions_per_s']:.0f} decisions/s"),
    ]
    mem = load["server_memory_kib"]
    extra = [
        f"process AGI: median of the first 20 calls {agi_first20:.1f} ms; the call path "
        f"imports {len(imports)} modules beyond a bare interpreter, {import_total:.1f} ms "
        "of import time (self):",
        "    (top-level import of the call, then its direct imports over 0.5 ms; "
        "cumulative times)",
        *import_tree(imports, 0.5),
        f"FastAGI under load: {load['clients']} client processes, {load['seconds']:.1f} s; "
        f"server CPU {load['server_cpu_s']:.2f} s ({load['server_cpu_pct']:.0f}% of one "
        f"core, {load['server_cpu_us_per_decision']:.0f} us/decision); RSS "
        f"{mem.get('VmRSS', 0) / 1024:.1f} MiB (peak {mem.get('VmHWM', 0) / 1024:.1f} MiB, "
        f"idle {memory_idle.get('VmRSS', 0) / 1024:.1f} MiB)",
    ]
    targets = [
        Target("FastAGI p50 <= 5 x HGETALL p50", fast_ratio, 5.0, "x"),
        Target("FastAGI p99 <= 5 ms (sequential)", sequential.p99, 5.0, "ms"),
        Target("FastAGI p99 <= 5 ms (under load)", load_ms["p99"], 5.0, "ms"),
        Target(">= 1000 decisions/s concurrent", load["decisions_per_s"], 1000.0, "/s",
               higher_is_better=True),
        Target("process AGI p50 <= 6 x python -c pass", agi_ratio, 6.0, "x"),
        # Issue 13: process AGI stays as fast as before the FastAGI rework.
        Target("process AGI p50 <= 4.5 x python -c pass", agi_ratio, 4.5, "x"),
    ]
    results = {
        "floors": {"python_c_pass_ms": asdict(floor), "hgetall_ms": asdict(hgetall)},
        "process_agi": {"call_ms": asdict(agi), "first20_median_ms": agi_first20,
                        "ratio_p50_to_python_c_pass": agi_ratio,
                        "imports": {"total_self_ms": import_total, "modules": [
                            {"module": name, "level": level, "self_ms": own,
                             "cumulative_ms": cum}
                            for name, level, own, cum in imports]}},
        "fastagi": {"sequential_ms": asdict(sequential),
                    "first_command_ms": asdict(first_command), "ratio_p50_to_hgetall": fast_ratio,
                    "load": load, "idle_memory_kib": memory_idle},
    }
    return SectionReport("decision", "Decision level (fake AGI peer, no Asterisk)", results,
                         rows, extra, targets)
