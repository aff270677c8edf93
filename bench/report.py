"""The benchmark's output: the table of phases, the targets each met or missed, JSON.

Targets (issue "Recording near the floor"; recording on, one worker, ratios within one run):
CPU per call at most 1.4× the floor's (the bare passthrough, `bench/passthrough.py`) for the
non-streaming call and 1.5× for the 20-chunk stream; req/s at 64 connections at least 0.7× the
floor's; added latency at 8 connections over calling the fake directly p50 ≤ 1 ms and
p99 ≤ 4 ms; recording on vs off at most 1.2× the CPU; the relay's cost per SSE event (the paced
stream's CPU minus the non-streaming call's, over its events) at most 8 µs.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from phase import SCENARIOS, Row

FLOOR_CPU_RATIO = {"non-stream": 1.4, "stream-20": 1.5}
FLOOR_RPS_RATIO = 0.7
ADDED_P50_MS, ADDED_P99_MS = 1.0, 4.0
RECORDING_RATIO = 1.2
SSE_EVENTS = {"paced-20x2ms": 24}  # role, 20 content chunks, finish, usage, [DONE]
EVENT_COST_US = 8.0


@dataclass(frozen=True, slots=True)
class Verdict:
    section: str
    target: str
    measured: str
    met: bool
    gap: str

    def as_dict(self) -> dict:
        return {
            "section": self.section,
            "target": self.target,
            "measured": self.measured,
            "met": self.met,
            "gap": self.gap,
        }


def _find(rows: list[Row], section: str, scenario: str, connections: int, tracking: str):
    for row in rows:
        if (row.section, row.scenario, row.connections, row.tracking) == (
            section,
            scenario,
            connections,
            tracking,
        ):
            return row
    return None


def _at_most(section: str, target: str, value: float, limit: float, unit: str) -> Verdict:
    digits = 0 if unit == "µs" else 2
    met = value <= limit
    gap = "" if met else f"+{value - limit:,.{digits}f} {unit} ({value / limit - 1:+.0%})"
    return Verdict(section, target, f"{value:,.{digits}f} {unit}", met, gap)


def _ratio(section: str, target: str, value: float, base: float, limit: float, most: bool,
           detail: str) -> Verdict:  # fmt: skip
    ratio = value / base
    met = ratio <= limit if most else ratio >= limit
    gap = "" if met else f"{ratio / limit - 1:+.0%} off"
    return Verdict(section, target, f"{ratio:.2f}x ({detail})", met, gap)


def verdicts(rows: list[Row], section: str) -> list[Verdict]:
    """Each target against the rows of one proxy section (e.g. "sqlite" or "postgres")."""
    out: list[Verdict] = []
    for scenario in (s.name for s in SCENARIOS):
        on = _find(rows, section, scenario, 64, "on")
        floor = _find(rows, "floor", scenario, 64, "-")
        if on is not None and floor is not None and scenario in FLOOR_CPU_RATIO:
            limit = FLOOR_CPU_RATIO[scenario]
            detail = f"{on.cpu_us:,.0f} vs {floor.cpu_us:,.0f} µs"
            target = f"{scenario} CPU <= {limit}x floor"
            out.append(_ratio(section, target, on.cpu_us, floor.cpu_us, limit, True, detail))
            detail = f"{on.load.rps:,.0f} vs {floor.load.rps:,.0f} req/s"
            target = f"{scenario} req/s >= {FLOOR_RPS_RATIO}x floor"
            out.append(
                _ratio(section, target, on.load.rps, floor.load.rps, FLOOR_RPS_RATIO, False, detail)
            )
        out += _latency_verdicts(rows, section, scenario)
        off = _find(rows, section, scenario, 64, "off")
        if on is not None and off is not None and off.cpu_us:
            detail = f"{on.cpu_us:,.0f} vs {off.cpu_us:,.0f} µs"
            target = f"{scenario} recording on/off CPU <= {RECORDING_RATIO}x"
            ratio = _ratio(section, target, on.cpu_us, off.cpu_us, RECORDING_RATIO, True, detail)
            out.append(ratio)
    out += _event_cost(rows, section)
    return out


def _event_cost(rows: list[Row], section: str) -> list[Verdict]:
    plain = _find(rows, section, "non-stream", 64, "on")
    out = []
    for scenario, events in SSE_EVENTS.items():
        paced = _find(rows, section, scenario, 64, "on")
        if plain is not None and paced is not None:
            cost = (paced.cpu_us - plain.cpu_us) / events
            target = f"relay CPU per SSE event <= {EVENT_COST_US:.0f} µs ({scenario})"
            out.append(_at_most(section, target, cost, EVENT_COST_US, "µs"))
    return out


def _latency_verdicts(rows: list[Row], section: str, scenario: str) -> list[Verdict]:
    proxy = _find(rows, section, scenario, 8, "on")
    direct = _find(rows, "direct", scenario, 8, "-")
    if proxy is None or direct is None:
        return []
    out = []
    for label, limit in (("p50", ADDED_P50_MS), ("p99", ADDED_P99_MS)):
        added = getattr(proxy.load, f"{label}_ms") - getattr(direct.load, f"{label}_ms")
        target = f"{scenario} added {label} <= {limit} ms (8 conns)"
        out.append(_at_most(section, target, added, limit, "ms"))
    return out


def format_rows(rows: list[Row]) -> str:
    header = (
        "section",
        "target",
        "scenario",
        "conns",
        "track",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "fake µs/req",
        "load µs/req",
        "records",
    )
    table = [header]
    for row in rows:
        load = row.load
        table.append(
            (
                row.section,
                row.target,
                row.scenario,
                str(row.connections),
                row.tracking,
                f"{load.rps:,.0f}",
                f"{load.p50_ms:.2f}",
                f"{load.p99_ms:.2f}",
                f"{row.cpu_us:,.0f}",
                "" if row.upstream_cpu_us is None else f"{row.upstream_cpu_us:,.0f}",
                f"{load.cpu_seconds / max(1, load.ok) * 1e6:,.0f}",
                _records(row),
            )
        )
    return _grid(table)


def _records(row: Row) -> str:
    check = row.records
    if check is None:
        return ""
    mark = "ok" if check.ok else "MISMATCH"
    other = "".join(f" +{n} {status}" for status, n in sorted(check.other.items()))
    return f"{mark} {check.completed}/{check.expected}{other}"


def format_medians(rows: list[Row]) -> str:
    """Rounds of the same thing ("uvicorn#1", "uvicorn#2", …) folded into medians; the first
    label is the reference the others are compared with."""
    groups: dict[tuple[str, str, int, str], list[Row]] = {}
    labels: list[str] = []
    for row in rows:
        if "#" not in row.section:
            continue
        label = row.section.split("#")[0]
        if label not in labels:
            labels.append(label)
        key = (label, row.scenario, row.connections, row.tracking)
        groups.setdefault(key, []).append(row)
    order = [s.name for s in SCENARIOS]

    def position(key: tuple[str, str, int, str]) -> tuple:
        label, scenario, connections, tracking = key
        return (order.index(scenario), -connections, tracking, labels.index(label))

    reference = labels[0] if labels else "-"
    header = ("label", "scenario", "conns", "track", "rounds", "req/s", "p50 ms", "p99 ms")
    table = [(*header, "CPU µs/req", f"CPU vs {reference}")]
    for key in sorted(groups, key=position):
        group = groups[key]
        cpu = median(r.cpu_us for r in group)
        base = groups.get((reference, *key[1:]))
        ratio = cpu / median(r.cpu_us for r in base) if base else 0.0
        table.append(
            (
                key[0],
                key[1],
                str(key[2]),
                key[3],
                str(len(group)),
                f"{median(r.load.rps for r in group):,.0f}",
                f"{median(r.load.p50_ms for r in group):.2f}",
                f"{median(r.load.p99_ms for r in group):.2f}",
                f"{cpu:,.0f}",
                f"{ratio:.2f}x",
            )
        )
    return _grid(table)


def markdown(rows: list[Row], verdict_list: list[Verdict]) -> str:
    """The same figures as Markdown tables, for docs/performance.md."""
    lines = [
        "| section | scenario | conns | recording | req/s | p50 ms | p99 ms | CPU µs/req "
        "| fake µs/req | RSS MB | records |",
        "|---|---|--:|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        load = row.load
        fake = "" if row.upstream_cpu_us is None else f"{row.upstream_cpu_us:,.0f}"
        lines.append(
            f"| {row.section} | {row.scenario} | {row.connections} | {row.tracking} "
            f"| {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | {row.cpu_us:,.0f} "
            f"| {fake} | {row.rss_mb:.0f} | {_records(row)} |"
        )
    if verdict_list:
        lines += ["", "| db | target | measured | met | gap |", "|---|---|--:|---|---|"]
        for v in verdict_list:
            met = "PASS" if v.met else "**FAIL**"
            lines.append(f"| {v.section} | {v.target} | {v.measured} | {met} | {v.gap} |")
    return "\n".join(lines) + "\n"


def format_verdicts(items: list[Verdict]) -> str:
    table = [("", "db", "target", "measured", "gap")]
    for v in items:
        table.append(("PASS" if v.met else "FAIL", v.section, v.target, v.measured, v.gap))
    passed = sum(v.met for v in items)
    return _grid(table) + f"\n\ntargets: {passed}/{len(items)} PASS"


def _grid(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
