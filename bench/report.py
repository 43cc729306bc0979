#!/usr/bin/env python3
"""Summarises a bench/compare.sh output directory (python3 standard library only).

    python3 bench/report.py OUT          writes OUT/RESULTS.md (a Markdown fragment: one table
                                         per scenario, medians over each server's runs, the
                                         ratio herald/peer) and OUT/latency.svg
    python3 bench/report.py --line FILE  one line about one herald-bench JSON (compare.sh prints
                                         it after every run: the headline figures and the
                                         generator's CPU per unit next to the server's)

Runs are read from OUT/<scenario>/<server>-run<N>.json; OUT/runs.tsv (written by compare.sh)
says which runs failed. Only runs with status "ok" enter the medians.
"""

import glob
import html
import json
import math
import os
import re
import statistics
import sys

SCENARIOS = ["idle", "fanout1k", "fanout10k", "ceiling", "channels", "presence", "chat", "storm", "api"]
SERVER_ORDER = ["herald", "sockudo", "soketi"]

TITLES = {
    "idle": "Idle connections (RSS per connection, connect rate)",
    "fanout1k": "Fan-out: 1 channel, 1,000 subscribers",
    "fanout10k": "Fan-out: 1 channel, 10,000 subscribers",
    "ceiling": "Ceiling: 1 channel, 1,000 subscribers, rate raised until delivery falls behind",
    "channels": "Many channels: 10,000 channels × 1 subscriber, events through batch_events",
    "presence": "Presence: members join one presence channel, then leave",
    "chat": "Chat: private rooms, client events between members",
    "storm": "Reconnect storm: every socket dropped at once, all reconnect",
    "api": "HTTP API: signed POST /apps/{id}/events, closed loop",
}


# --- reading ---------------------------------------------------------------------------------

def get(d, *path):
    """d[path[0]][path[1]]..., None when any step is missing or null."""
    for key in path:
        if isinstance(d, dict):
            d = d.get(key)
        elif isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d):
            d = d[key]
        else:
            return None
        if d is None:
            return None
    return d


def per_unit(seconds, units):
    """CPU seconds spread over units, in µs per unit."""
    if seconds is None or not units:
        return None
    return seconds * 1e6 / units


def ms(us):
    return None if us is None else us / 1000.0


def ceiling_step(d):
    """The step whose received rate is the sustained figure (the fastest that kept up)."""
    kept = [s for s in d.get("steps") or [] if s.get("kept_up")]
    return max(kept, key=lambda s: s.get("received_per_second") or 0, default=None)


# Figure: (label, unit, better, extractor, format). better: "higher", "lower" or None (no
# ratio: informational). Values are medians over the ok runs.
def figures(scenario):
    lat = lambda key: (lambda d: ms(get(d, "latency_us", key)))
    if scenario == "idle":
        return [
            ("server RSS per connection", "KiB", "lower", lambda d: kib(get(d, "server", "rss_per_connection_bytes")), "{:.2f}"),
            ("server RSS idle (after connect + settle)", "MiB", "lower", lambda d: mib(get(d, "server", "rss_idle_bytes")), "{:.1f}"),
            ("connect rate", "conn/s", "higher", lambda d: get(d, "connect", "per_second"), "{:,.0f}"),
            ("connections opened", "", None, lambda d: get(d, "connect", "opened"), "{:,.0f}"),
            ("server CPU per connection (connect + subscribe)", "µs", "lower",
             lambda d: per_unit(get(d, "server", "cpu_connect_seconds"), get(d, "connect", "opened")), "{:.1f}"),
            ("generator CPU per connection", "µs", None,
             lambda d: per_unit(get(d, "generator", "cpu_connect_seconds"), get(d, "connect", "opened")), "{:.1f}"),
        ]
    if scenario in ("fanout1k", "fanout10k", "channels"):
        rows = [
            ("deliveries/s", "/s", "higher", lambda d: get(d, "delivery", "per_second"), "{:,.0f}"),
            ("offered deliveries/s", "/s", None, lambda d: get(d, "delivery", "offered_per_second"), "{:,.0f}"),
            ("latency p50", "ms", "lower", lat("p50"), "{:.1f}"),
            ("latency p99", "ms", "lower", lat("p99"), "{:.1f}"),
            ("latency p99.9", "ms", "lower", lat("p99_9"), "{:.1f}"),
            ("server CPU per delivery", "µs", "lower", lambda d: get(d, "server", "cpu_us_per_delivery"), "{:.2f}"),
            ("generator CPU per delivery", "µs", None, lambda d: get(d, "generator", "cpu_us_per_delivery"), "{:.2f}"),
            ("deliveries lost", "", "lower", lambda d: get(d, "delivery", "lost"), "{:,.0f}"),
        ]
        if scenario == "channels":
            rows = [r for r in rows if r[0] not in ("latency p50", "latency p99.9")]
        return rows
    if scenario == "ceiling":
        return [
            ("highest sustained deliveries/s", "/s", "higher", lambda d: d.get("sustained_deliveries_per_second"), "{:,.0f}"),
            ("… at events/s", "/s", None, lambda d: d.get("sustained_events_per_second"), "{:,.1f}"),
            ("server CPU per delivery at that step", "µs", "lower",
             lambda d: get(ceiling_step(d), "server_cpu_us_per_delivery"), "{:.2f}"),
            ("generator CPU per delivery at that step", "µs", None,
             lambda d: get(ceiling_step(d), "generator_cpu_us_per_delivery"), "{:.2f}"),
            ("p99 at that step", "ms", "lower", lambda d: ms(get(ceiling_step(d), "latency_us", "p99")), "{:.1f}"),
        ]
    if scenario == "presence":
        return [
            ("members joined", "", None, lambda d: get(d, "join", "members"), "{:,.0f}"),
            ("join time (until the last member_added)", "s", "lower", lambda d: get(d, "join", "seconds"), "{:.2f}"),
            ("leave time (until the last member_removed)", "s", "lower", lambda d: get(d, "leave", "seconds"), "{:.2f}"),
            ("member events received", "", None, member_events("received"), "{:,.0f}"),
            ("member events expected", "", None, member_events("expected"), "{:,.0f}"),
            ("server CPU per member event", "µs", "lower", lambda d: d.get("server_cpu_us_per_member_event"), "{:.2f}"),
            ("generator CPU per member event", "µs", None, lambda d: d.get("generator_cpu_us_per_member_event"), "{:.2f}"),
            ("server peak RSS", "MiB", "lower", lambda d: mib(get(d, "server", "rss_peak_bytes")), "{:.1f}"),
        ]
    if scenario == "chat":
        return [
            ("deliveries received", "", "higher", lambda d: get(d, "delivery", "received"), "{:,.0f}"),
            ("deliveries expected", "", None, lambda d: get(d, "delivery", "expected"), "{:,.0f}"),
            ("pusher:error frames", "", "lower", lambda d: d.get("server_errors"), "{:,.0f}"),
            ("latency p50", "ms", "lower", lat("p50"), "{:.2f}"),
            ("latency p99", "ms", "lower", lat("p99"), "{:.2f}"),
            ("server CPU per delivery", "µs", "lower", lambda d: d.get("server_cpu_us_per_delivery"), "{:.2f}"),
            ("generator CPU per delivery", "µs", None, lambda d: d.get("generator_cpu_us_per_delivery"), "{:.2f}"),
        ]
    if scenario == "storm":
        return [
            ("drop → all resubscribed", "s", "lower", lambda d: d.get("storm_seconds"), "{:.2f}"),
            ("reconnect rate", "conn/s", "higher", lambda d: get(d, "reconnect", "per_second"), "{:,.0f}"),
            ("reconnects failed", "", "lower", lambda d: get(d, "reconnect", "failed"), "{:,.0f}"),
            ("server RSS before", "MiB", "lower", lambda d: mib(d.get("server_rss_before_bytes")), "{:.1f}"),
            ("server peak RSS", "MiB", "lower", lambda d: mib(d.get("server_rss_peak_bytes")), "{:.1f}"),
            ("server CPU per reconnect", "µs", "lower", lambda d: d.get("server_cpu_us_per_reconnect"), "{:.1f}"),
            ("generator CPU per reconnect", "µs", None,
             lambda d: per_unit(get(d, "generator", "cpu_seconds"), get(d, "reconnect", "opened")), "{:.1f}"),
        ]
    if scenario == "api":
        return [
            ("requests/s", "/s", "higher", lambda d: d.get("requests_per_second"), "{:,.0f}"),
            ("request latency p50", "ms", "lower", lambda d: ms(get(d, "request_latency_us", "p50")), "{:.3f}"),
            ("request latency p99", "ms", "lower", lambda d: ms(get(d, "request_latency_us", "p99")), "{:.3f}"),
            ("non-2xx answers + errors", "", "lower", api_errors, "{:,.0f}"),
            ("server CPU per request", "µs", "lower", lambda d: d.get("server_cpu_us_per_request"), "{:.2f}"),
            ("generator CPU per request", "µs", None, lambda d: d.get("generator_cpu_us_per_request"), "{:.2f}"),
        ]
    return []


def kib(b):
    return None if b is None else b / 1024.0


def mib(b):
    return None if b is None else b / 1048576.0


def member_events(which):
    key = "member_events_" + which
    def f(d):
        a, b = get(d, "join", key), get(d, "leave", key)
        return None if a is None or b is None else a + b
    return f


def api_errors(d):
    s = d.get("status") or {}
    vals = [s.get(k) for k in ("client_4xx", "server_5xx", "other", "errors")]
    return None if any(v is None for v in vals) else sum(vals)


# --- one line per run ------------------------------------------------------------------------

def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def line(d):
    """Headline figures of one run; the generator's CPU per unit next to the server's."""
    sc = d.get("scenario")
    lat = d.get("latency_us") or {}
    if sc == "fanout":
        if (get(d, "params", "events") or 0) == 0:
            return (f"idle: {fmt(get(d, 'connect', 'opened'), '{:,}')} connections at "
                    f"{fmt(get(d, 'connect', 'per_second'), '{:,.0f}')}/s, server RSS/conn "
                    f"{fmt(get(d, 'server', 'rss_per_connection_bytes'), '{:,.0f}')} B, CPU µs/conn server "
                    f"{fmt(per_unit(get(d, 'server', 'cpu_connect_seconds'), get(d, 'connect', 'opened')))} "
                    f"generator {fmt(per_unit(get(d, 'generator', 'cpu_connect_seconds'), get(d, 'connect', 'opened')))}")
        dl = d.get("delivery") or {}
        return (f"fanout: {fmt(dl.get('received'), '{:,}')}/{fmt(dl.get('expected'), '{:,}')} delivered "
                f"(lost {dl.get('lost')}), {fmt(dl.get('per_second'), '{:,.0f}')}/s, p50/p99/p99.9 "
                f"{fmt(ms(lat.get('p50')))}/{fmt(ms(lat.get('p99')))}/{fmt(ms(lat.get('p99_9')))} ms; CPU µs/delivery server "
                f"{fmt(get(d, 'server', 'cpu_us_per_delivery'), '{:.2f}')} generator "
                f"{fmt(get(d, 'generator', 'cpu_us_per_delivery'), '{:.2f}')}")
    if sc == "ceiling":
        st = ceiling_step(d)
        return (f"ceiling: sustained {fmt(d.get('sustained_deliveries_per_second'), '{:,.0f}')} deliveries/s "
                f"({fmt(d.get('sustained_events_per_second'))} ev/s; {d.get('stopped_because')}); CPU µs/delivery there server "
                f"{fmt(get(st, 'server_cpu_us_per_delivery'), '{:.2f}')} generator {fmt(get(st, 'generator_cpu_us_per_delivery'), '{:.2f}')}")
    if sc == "presence":
        return (f"presence: {get(d, 'join', 'members')} joined in {fmt(get(d, 'join', 'seconds'), '{:.2f}')} s, left in "
                f"{fmt(get(d, 'leave', 'seconds'), '{:.2f}')} s, member events {fmt(member_events('received')(d), '{:,}')}/"
                f"{fmt(member_events('expected')(d), '{:,}')}; CPU µs/member event server "
                f"{fmt(d.get('server_cpu_us_per_member_event'), '{:.2f}')} generator {fmt(d.get('generator_cpu_us_per_member_event'), '{:.2f}')}")
    if sc == "chat":
        dl = d.get("delivery") or {}
        return (f"chat: {fmt(dl.get('received'), '{:,}')}/{fmt(dl.get('expected'), '{:,}')} delivered, errors "
                f"{d.get('server_errors')}, p50/p99 {fmt(ms(lat.get('p50')), '{:.2f}')}/{fmt(ms(lat.get('p99')), '{:.2f}')} ms; "
                f"CPU µs/delivery server {fmt(d.get('server_cpu_us_per_delivery'), '{:.2f}')} generator "
                f"{fmt(d.get('generator_cpu_us_per_delivery'), '{:.2f}')}")
    if sc == "storm":
        r = d.get("reconnect") or {}
        return (f"storm: {fmt(r.get('opened'), '{:,}')} resubscribed in {fmt(d.get('storm_seconds'), '{:.2f}')} s "
                f"(failed {r.get('failed')}), server peak RSS {fmt(mib(d.get('server_rss_peak_bytes')))} MiB; CPU µs/reconnect "
                f"server {fmt(d.get('server_cpu_us_per_reconnect'))} generator "
                f"{fmt(per_unit(get(d, 'generator', 'cpu_seconds'), r.get('opened')))}")
    if sc == "api":
        rl = d.get("request_latency_us") or {}
        return (f"api: {fmt(d.get('requests_per_second'), '{:,.0f}')} req/s, errors {api_errors(d)}, p50/p99 "
                f"{fmt(ms(rl.get('p50')), '{:.3f}')}/{fmt(ms(rl.get('p99')), '{:.3f}')} ms; CPU µs/request server "
                f"{fmt(d.get('server_cpu_us_per_request'), '{:.2f}')} generator {fmt(d.get('generator_cpu_us_per_request'), '{:.2f}')}")
    return f"{sc}: (no summary)"


# --- the directory ---------------------------------------------------------------------------

def load_runs(out):
    """{(scenario, server): {"ok": [json...], "total": n, "failed": [(run, status)], "load": [..]}}"""
    status = {}
    order = []
    tsv = os.path.join(out, "runs.tsv")
    if os.path.exists(tsv):
        with open(tsv, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            for row in f:
                cols = dict(zip(header, row.rstrip("\n").split("\t")))
                key = (cols.get("scenario"), cols.get("server"), cols.get("run"))
                status[key] = cols
                if cols.get("server") not in order:
                    order.append(cols.get("server"))
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*", "*-run*.json"))):
        scenario = os.path.basename(os.path.dirname(path))
        m = re.match(r"(.+)-run(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        server, run = m.group(1), m.group(2)
        st = status.get((scenario, server, run), {}).get("status", "ok")
        if st != "ok":
            continue
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError):
            continue
        runs.setdefault((scenario, server), {"ok": [], "failed": []})["ok"].append(d)
        if server not in order:
            order.append(server)
    for (scenario, server, run), cols in status.items():
        entry = runs.setdefault((scenario, server), {"ok": [], "failed": []})
        if cols.get("status") == "ok" and (cols.get("compilers") or "0") not in ("", "0"):
            entry.setdefault("busy", []).append((run, cols.get("compilers")))
        if cols.get("status") != "ok":
            entry["failed"].append((run, cols.get("status"), cols.get("exit")))
    order.sort(key=lambda s: (SERVER_ORDER.index(s) if s in SERVER_ORDER else len(SERVER_ORDER), s))
    return runs, order, status


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def ratio_text(h, p, better):
    if better is None or h is None or p is None:
        return ""
    if p == 0:
        return "—" if h == 0 else "∞"
    r = h / p
    good = (r > 1.0) if better == "higher" else (r < 1.0)
    text = f"{r:.2f}" if r < 100 else f"{r:,.0f}"
    return f"**{text}**" if good and abs(r - 1.0) >= 0.05 else text


def table(scenario, runs, servers):
    lines = [f"### {scenario}: {TITLES.get(scenario, scenario)}", ""]
    peers = [s for s in servers if s != "herald"]
    has_herald = "herald" in servers
    head = ["figure", "better"] + servers + ([f"herald/{p}" for p in peers] if has_herald else [])
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))

    def cell_runs(s):
        e = runs.get((scenario, s))
        if not e:
            return "–"
        n_ok, n = len(e["ok"]), len(e["ok"]) + len(e["failed"])
        return f"{n_ok} of {n}"

    def row(cells):
        cells = list(cells) + [""] * (len(head) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")

    row(["runs ok (medians over these)", ""] + [cell_runs(s) for s in servers])

    def loads(s):
        e = runs.get((scenario, s))
        vals = [d.get("load_average") for d in (e["ok"] if e else [])]
        vals = [f"{v:.2f}" for v in vals if v is not None]
        return " / ".join(vals) if vals else "–"

    row(["load average at start", ""] + [loads(s) for s in servers])

    for label, unit, better, fn, spec in figures(scenario):
        meds = {}
        for s in servers:
            e = runs.get((scenario, s))
            vals = []
            for d in (e["ok"] if e else []):
                try:
                    vals.append(fn(d))
                except (TypeError, KeyError, ValueError, ZeroDivisionError):
                    vals.append(None)
            meds[s] = median(vals)
        name = f"{label} ({unit})" if unit else label
        direction = {"higher": "higher", "lower": "lower", None: ""}[better]
        cells = [name, direction] + [fmt(meds[s], spec) if meds[s] is not None else "–" for s in servers]
        if has_herald:
            cells += [ratio_text(meds["herald"], meds[p], better) for p in peers]
        row(cells)

    notes = []
    for s in servers:
        e = runs.get((scenario, s))
        for run, st, rc in (e["failed"] if e else []):
            notes.append(f"{s} run {run}: {st} (exit {rc}), see `{scenario}/{s}-run{run}.log`")
        for d in (e["ok"] if e else []):
            notes.extend(f"{s}: {n}" for n in run_problems(scenario, d))
        for run, n in (e.get("busy", []) if e else []):
            notes.append(f"{s} run {run}: {n} compiler process(es) were running when it started (noisy)")
    if scenario == "ceiling":
        for s in servers:
            e = runs.get((scenario, s))
            why = sorted({d.get("stopped_because") for d in (e["ok"] if e else []) if d.get("stopped_because")})
            if why:
                notes.append(f"{s} stopped because: " + "; ".join(why))
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in dict.fromkeys(notes))
    lines.append("")
    return lines


def run_problems(scenario, d):
    """Anything in a successful run's JSON that makes its figures suspect."""
    out = []
    c = d.get("connect") or {}
    if c.get("failed"):
        out.append(f"{c['failed']} connection(s) failed: {c.get('first_error')}")
    dl = d.get("delivery") or {}
    if dl.get("lost") or dl.get("duplicates"):
        out.append(f"{dl.get('lost')} deliveries lost, {dl.get('duplicates')} duplicated")
    drops = dl.get("dropped_connections") or dl.get("dropped_members") or d.get("dropped_connections") or d.get("dropped_members")
    if drops:
        why = dl.get("first_drop_error") or d.get("first_drop_error")
        out.append(f"{drops} connection(s) dropped during the run: {why}")
    tr = d.get("trigger") or {}
    if tr.get("requests_failed"):
        out.append(f"{tr['requests_failed']} trigger request(s) failed: {tr.get('first_error')}")
    if scenario == "presence":
        for phase in ("join", "leave"):
            p = d.get(phase) or {}
            if p.get("failed"):
                out.append(f"{phase}: {p['failed']} failed: {p.get('first_error')}")
            if p.get("member_events_received") != p.get("member_events_expected"):
                out.append(f"{phase}: {p.get('member_events_received')} of {p.get('member_events_expected')} member events")
        if d.get("leave_order_timeouts"):
            out.append(f"{d['leave_order_timeouts']} leave-order timeout(s)")
    if scenario == "chat" and d.get("server_errors"):
        out.append(f"{d['server_errors']} pusher:error frame(s): {d.get('first_server_error')}")
    if scenario == "storm":
        r = d.get("reconnect") or {}
        if r.get("failed"):
            out.append(f"{r['failed']} reconnect(s) failed: {r.get('first_error')}")
    if scenario == "api":
        n = api_errors(d)
        if n:
            out.append(f"{n} non-2xx answers or errors: {d.get('first_error')}")
    return out


def generator_check(runs, servers):
    """Where the generator spent as much CPU per unit as the server (it may bound the figures)."""
    out = []
    pairs = {
        "fanout1k": ("server", "cpu_us_per_delivery"), "fanout10k": ("server", "cpu_us_per_delivery"),
        "channels": ("server", "cpu_us_per_delivery"),
    }
    for scenario in SCENARIOS:
        for s in servers:
            e = runs.get((scenario, s))
            if not e or not e["ok"]:
                continue
            if scenario in pairs:
                sv = median(get(d, "server", "cpu_us_per_delivery") for d in e["ok"])
                gv = median(get(d, "generator", "cpu_us_per_delivery") for d in e["ok"])
            elif scenario == "chat":
                sv = median(d.get("server_cpu_us_per_delivery") for d in e["ok"])
                gv = median(d.get("generator_cpu_us_per_delivery") for d in e["ok"])
            elif scenario == "presence":
                sv = median(d.get("server_cpu_us_per_member_event") for d in e["ok"])
                gv = median(d.get("generator_cpu_us_per_member_event") for d in e["ok"])
            elif scenario == "api":
                sv = median(d.get("server_cpu_us_per_request") for d in e["ok"])
                gv = median(d.get("generator_cpu_us_per_request") for d in e["ok"])
            else:
                continue
            if sv is not None and gv is not None and gv > 0 and gv >= sv:
                out.append(f"{scenario} / {s}: generator {gv:.2f} µs per unit ≥ server {sv:.2f} µs")
    return out


def machine_summary(out):
    path = os.path.join(out, "machine.txt")
    if not os.path.exists(path):
        return []
    keep = ("date", "scale", "cpu model", "nproc", "memory", "kernel", "load average", "compilers", "open files",
            "herald git", "herald tree", "sockudo", "soketi")
    lines = []
    with open(path, encoding="utf-8") as f:
        for row in f:
            if row.startswith("## "):
                break
            key = row.split(":", 1)[0].strip()
            if key in keep:
                lines.append("    " + row.rstrip("\n"))
    return lines


def write_results(out):
    runs, servers, status = load_runs(out)
    if not servers:
        sys.exit(f"report: no runs under {out}")
    scenarios = [s for s in SCENARIOS if any((s, v) in runs for v in servers)]
    scenarios += sorted({s for s, _ in runs} - set(scenarios))
    peers = [s for s in servers if s != "herald"]
    total = len(status) or sum(len(e["ok"]) for e in runs.values())
    failed = sum(1 for c in status.values() if c.get("status") != "ok")
    secs = sum(int(c.get("seconds") or 0) for c in status.values())

    md = ["## Side-by-side: " + ", ".join(servers), ""]
    md.append(f"Written by `bench/report.py` from `{os.path.basename(os.path.normpath(out))}/` "
              f"({total} run(s), {failed} failed, {secs // 60} min {secs % 60} s of runs). "
              "Every figure is the median over the server's successful runs (count in the first row). "
              "Each run had a fresh server pinned to core 0 and `herald-bench` pinned to core 1. "
              "Machine and exact versions (from `machine.txt`):")
    md.append("")
    md.extend(machine_summary(out))
    md.append("")
    if peers and "herald" in servers:
        md.append("**herald/peer** is herald's figure divided by the peer's. The `better` column says "
                  "which direction is better for the figure: for *higher* a ratio above 1 favours herald, "
                  "for *lower* a ratio below 1 does; ratios that favour herald by 5 % or more are in bold. "
                  "Rows without a direction (offered load, the generator's own CPU) carry no ratio.")
        md.append("")
    for scenario in scenarios:
        md.extend(table(scenario, runs, servers))
    gen = generator_check(runs, servers)
    md.append("### Generator self-check")
    md.append("")
    md.append("Every table shows the generator's CPU per unit of work next to the server's. "
              "Where the generator spent at least as much CPU per unit as the server, its own core "
              "may bound the figure (throughput and latency then say less about the server):")
    md.append("")
    md.extend(f"- {g}" for g in gen) if gen else md.append("- none: the server spent more CPU per unit than the generator everywhere.")
    md.append("")
    if any((s, v) in runs for s in ("fanout1k", "fanout10k") for v in servers):
        md.append("![Fan-out latency percentiles per server (log scale)](latency.svg)")
        md.append("")
    with open(os.path.join(out, "RESULTS.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    svg = latency_svg(runs, servers)
    with open(os.path.join(out, "latency.svg"), "w", encoding="utf-8") as f:
        f.write(svg)
    print(f"report: wrote {os.path.join(out, 'RESULTS.md')} and latency.svg")


# --- the SVG ---------------------------------------------------------------------------------

COLORS = {"herald": "#2b6cb0", "sockudo": "#dd6b20", "soketi": "#38a169"}
EXTRA_COLORS = ["#805ad5", "#d53f8c", "#718096"]
PERCENTILES = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max")]


def latency_svg(runs, servers):
    panels = [s for s in ("fanout1k", "fanout10k") if any((s, v) in runs for v in servers)]
    # Which percentiles the JSON has (no p90 today): the ones present in any run.
    present = [(k, name) for k, name in PERCENTILES
               if any(get(d, "latency_us", k) is not None for e in runs.values() for d in e["ok"])]
    data = {}
    for p in panels:
        for s in servers:
            e = runs.get((p, s))
            for k, _ in present:
                data[(p, s, k)] = median(ms(get(d, "latency_us", k)) for d in (e["ok"] if e else []))
    vals = [v for v in data.values() if v is not None and v > 0]
    lo = 10 ** math.floor(math.log10(min(vals))) if vals else 0.1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 1000
    if hi <= lo:
        hi = lo * 10

    bar_w, gap_bar, gap_group = 16, 2, 22
    group_w = len(servers) * (bar_w + gap_bar) - gap_bar
    panel_w = max(260, len(present) * (group_w + gap_group) + gap_group)
    left, top, plot_h, bottom = 70, 60, 300, 70
    width = left + len(panels) * (panel_w + 30) + 10
    height = top + plot_h + bottom
    color = {s: COLORS.get(s, EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, s in enumerate(servers)}

    def y(v):
        v = min(max(v, lo), hi)
        return top + plot_h - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_h

    e = html.escape
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="15" font-weight="bold">Fan-out delivery latency '
         f'(median of runs, ms, log scale; lower is better)</text>']
    # Legend.
    lx = left
    for s in servers:
        o.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{color[s]}"/>')
        o.append(f'<text x="{lx + 16}" y="42">{e(s)}</text>')
        lx += 30 + 8 * len(s)
    for i, p in enumerate(panels):
        x0 = left + i * (panel_w + 30)
        # Grid and y axis (decades).
        dec = math.log10(lo)
        while dec <= math.log10(hi) + 1e-9:
            v = 10 ** dec
            yy = y(v)
            o.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + panel_w}" y2="{yy:.1f}" stroke="#ddd"/>')
            label = f"{v:g}"
            o.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#444">{label}</text>')
            for m in (2, 5):
                if v * m < hi:
                    ym = y(v * m)
                    o.append(f'<line x1="{x0}" y1="{ym:.1f}" x2="{x0 + panel_w}" y2="{ym:.1f}" stroke="#f0f0f0"/>')
                    o.append(f'<text x="{x0 - 6}" y="{ym + 3:.1f}" text-anchor="end" font-size="9" fill="#999">{v * m:g}</text>')
            dec += 1
        o.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + plot_h}" stroke="#444"/>')
        o.append(f'<line x1="{x0}" y1="{top + plot_h}" x2="{x0 + panel_w}" y2="{top + plot_h}" stroke="#444"/>')
        title = {"fanout1k": "1 channel × 1,000 subscribers", "fanout10k": "1 channel × 10,000 subscribers"}[p]
        conns = next((get(d, "params", "connections") for v in servers for d in runs.get((p, v), {"ok": []})["ok"]), None)
        if conns is not None:
            title = f"{p}: 1 channel × {conns:,} subscribers"
        o.append(f'<text x="{x0 + panel_w / 2}" y="{top + plot_h + 50}" text-anchor="middle" font-weight="bold">{e(title)}</text>')
        for j, (k, name) in enumerate(present):
            gx = x0 + gap_group + j * (group_w + gap_group)
            o.append(f'<text x="{gx + group_w / 2}" y="{top + plot_h + 18}" text-anchor="middle">{e(name)}</text>')
            for n, s in enumerate(servers):
                v = data.get((p, s, k))
                bx = gx + n * (bar_w + gap_bar)
                if v is None or v <= 0:
                    o.append(f'<text x="{bx + bar_w / 2}" y="{top + plot_h - 4}" text-anchor="middle" font-size="9" fill="#999">–</text>')
                    continue
                by = y(v)
                o.append(f'<rect x="{bx}" y="{by:.1f}" width="{bar_w}" height="{top + plot_h - by:.1f}" fill="{color[s]}">'
                         f'<title>{e(s)} {e(p)} {e(name)}: {v:.2f} ms</title></rect>')
                lbl = f"{v:.0f}" if v >= 10 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"
                o.append(f'<text x="{bx + bar_w / 2}" y="{by - 3:.1f}" text-anchor="middle" font-size="8" fill="#333">{lbl}</text>')
    o.append(f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" text-anchor="middle" fill="#444">latency (ms)</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main(argv):
    if len(argv) == 3 and argv[1] == "--line":
        with open(argv[2], encoding="utf-8") as f:
            print(line(json.load(f)))
        return
    if len(argv) != 2 or argv[1].startswith("-"):
        sys.exit(__doc__)
    write_results(argv[1])


if __name__ == "__main__":
    main(sys.argv)
