#!/usr/bin/env python3
"""Aggregate bench/run.sh results into <date>-<host>.{json,md,svg}.

usage: report.py RESULTS.jsonl META.json OUT_DIR

Medians over rounds per (workload, contender) for every numeric metric;
ratios vs `direct` and vs `nginx`; the issue's targets marked met / missed
(n/a when the metric was not measured). Standard library only.
"""
import json, os, statistics, sys
from collections import defaultdict

res_path, meta_path, out_dir = sys.argv[1:4]
meta = json.load(open(meta_path))
rows = [json.loads(l) for l in open(res_path) if l.strip()]

runs = defaultdict(list)
order_w, order_c = [], defaultdict(list)
for r in rows:
    w, c = r["workload"], r["contender"]
    if w not in order_w:
        order_w.append(w)
    if c not in order_c[w]:
        order_c[w].append(c)
    runs[(w, c)].append(r["metrics"])

agg = {}
for (w, c), ms in runs.items():
    keys = {k for m in ms for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    med = {k: statistics.median([m[k] for m in ms if isinstance(m.get(k), (int, float))]) for k in keys}
    errs = [m["error"] for m in ms if "error" in m]
    agg.setdefault(w, {})[c] = {"median": med, "rounds": len(ms), "ok_rounds": len(ms) - len(errs),
                                "errors": errs, "per_round": ms}


def get(w, c, k):
    return agg.get(w, {}).get(c, {}).get("median", {}).get(k)


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, nd=0):
    if v is None:
        return "n/a"
    if isinstance(v, float) and nd:
        return f"{v:,.{nd}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def fx(v):
    return "n/a" if v is None else f"{v:.2f}×"


# ------------------------------------------------------------------ targets --
T = []
def target(name, value, ok, how):
    T.append({"target": name, "value": value, "status": "n/a" if ok is None else ("met" if ok else "missed"), "how": how})

full, mn = "mcp-guard-full", "mcp-guard-min"
r = ratio(get("w1", full, "requests_per_sec"), get("w1", "direct", "requests_per_sec"))
target("full stack ≥ 0.8× direct throughput (W1)", fx(r), None if r is None else r >= 0.8, "W1 req/s mcp-guard-full / direct")
r2 = ratio(get("w2", full, "requests_per_sec"), get("w2", "direct", "requests_per_sec"))
target("full stack ≥ 0.8× direct throughput (W2, SSE)", fx(r2), None if r2 is None else r2 >= 0.8, "W2 req/s mcp-guard-full / direct")
r = ratio(get("w1", full, "requests_per_sec"), get("w1", "nginx", "requests_per_sec"))
target("full stack ≥ 1.0× nginx throughput (W1)", fx(r), None if r is None else r >= 1.0, "W1 req/s mcp-guard-full / nginx")
a, b = get("latency", full, "p50_us"), get("latency", "direct", "p50_us")
d = None if a is None or b is None else a - b
target("added p50 latency over direct ≤ 50 µs", "n/a" if d is None else f"{d:.0f} µs", None if d is None else d <= 50,
       "latency workload (1 connection) p50 mcp-guard-full − direct")
r = ratio(get("w1", full, "requests_per_sec"), get("w1", "python-stack", "requests_per_sec"))
target("≥ 20× the Python stack (W1)", fx(r), None if r is None else r >= 20, "W1 req/s mcp-guard-full / python-stack")
r = ratio(get("w3", "mcp-guard-stdio", "requests_per_sec"), get("w3", "supergateway", "requests_per_sec"))
target("stdio ≥ 5× supergateway (W3)", fx(r), None if r is None else r >= 5, "W3 req/s mcp-guard-stdio / supergateway")
r = ratio(get("w3", "mcp-guard-stdio", "requests_per_sec"), get("w3", "mcp-proxy", "requests_per_sec"))
target("stdio ≥ 10× mcp-proxy (W3)", fx(r), None if r is None else r >= 10, "W3 req/s mcp-guard-stdio / mcp-proxy")
s, m = get("w4", mn, "open_streams"), get("w4", mn, "rss_mb")
ok = None if s is None or m is None else (s >= 10000 and m < 150)
target("10,000 SSE streams under 150 MB RSS (W4)", "n/a" if s is None else f"{fmt(s)} streams, {fmt(m, 1)} MB", ok,
       "W4 mcp-guard-min open_streams and VmRSS after the hold")
idle = [get(w, mn, "idle_rss_mb") for w in order_w if get(w, mn, "idle_rss_mb") is not None]
v = statistics.median(idle) if idle else None
target("idle RSS under 15 MB (mcp-guard-min)", "n/a" if v is None else f"{v:.1f} MB", None if v is None else v < 15,
       "VmRSS 0.5 s after ready, median over every start")
idlef = [get(w, full, "idle_rss_mb") for w in order_w if get(w, full, "idle_rss_mb") is not None]
vf = statistics.median(idlef) if idlef else None
target("idle RSS under 15 MB (mcp-guard-full)", "n/a" if vf is None else f"{vf:.1f} MB", None if vf is None else vf < 15,
       "as above, full configuration")
for c in (mn, full):
    v = get("w5", c, "cold_start_ms")
    target(f"cold start under 50 ms ({c})", "n/a" if v is None else f"{v:.1f} ms", None if v is None else v < 50,
           "W5: spawn to first answered tools/call, median")

# ------------------------------------------------------------------- output --
os.makedirs(out_dir, exist_ok=True)
# A --quick smoke run never overwrites the day's full results.
base = os.path.join(out_dir, f"{meta['date']}-{meta['host']}{'-quick' if meta.get('quick') else ''}")
json.dump({"meta": meta, "results": agg, "targets": T}, open(base + ".json", "w"), indent=1)

WNAMES = {"w1": "W1 tools/call, JSON, 64 conns", "w2": "W2 tools/call, SSE, 64 conns",
          "latency": "latency, 1 conn", "w3": "W3 stdio bridge", "w4": "W4 open SSE streams",
          "w5": "W5 cold start"}

md = [f"# mcp-guard benchmark — {meta['date']} on {meta['host']}", ""]
if meta.get("quick"):
    md += ["**Quick run (`--quick`): one round of 3 s; indicative only.**", ""]
p = meta["pinning"]
md += ["## Machine", "",
       f"- CPU: {meta['cpu_model']} — {meta['cores']} cores (as seen by the run), kernel {meta['kernel']}",
       f"- Pinning (taskset): server under test on CPU {p['server_cpus']}, upstream on CPU {p['upstream_cpus']}, "
       f"load generator (wrk, {p['load_threads']} thread(s)) on CPU {p['load_cpus']}.",
       f"  With 2 cores the upstream shares the server core: a gateway's throughput is what core "
       f"{p['server_cpus']} does with the upstream's work plus its own, `direct` gets the core alone.",
       f"- Rounds: {meta['rounds']} × {meta['duration_s']} s per measurement (+1 s warm-up), contenders interleaved "
       f"per round (A B C A B C …); medians over rounds. W4/W5 once per run (W5: median of {meta['w5_runs']} spawns).",
       f"- Upstream: {meta['upstream']}.",
       f"- Load average (1/5/15 min) at start: {meta.get('loadavg', {}).get('start', 'n/a')}, at end: "
       f"{' '.join(meta.get('loadavg', {}).get('end', [])) or 'n/a'} (anything else running skews the numbers).", ""]

md += ["## Headline", "",
       "| workload | contender | req/s | p50 µs | p99 µs | errors | idle RSS MB | × direct | × nginx | rounds ok |",
       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for w in order_w:
    if w in ("w4", "w5"):
        continue
    for c in order_c[w]:
        a = agg[w][c]
        rps = get(w, c, "requests_per_sec")
        md.append(f"| {WNAMES.get(w, w)} | {c} | {fmt(rps)} | {fmt(get(w, c, 'p50_us'))} | {fmt(get(w, c, 'p99_us'))} | "
                  f"{fmt(get(w, c, 'errors'))} | {fmt(get(w, c, 'idle_rss_mb'), 1)} | "
                  f"{fx(ratio(rps, get(w, 'direct', 'requests_per_sec')))} | {fx(ratio(rps, get(w, 'nginx', 'requests_per_sec')))} | "
                  f"{a['ok_rounds']}/{a['rounds']} |")
md.append("")
if "latency" in agg and "direct" in agg["latency"]:
    md += ["Added latency at low load (1 connection), over direct:", "",
           "| contender | p50 µs | added p50 µs | p99 µs | added p99 µs |", "|---|---:|---:|---:|---:|"]
    for c in order_c["latency"]:
        a50, a99 = get("latency", c, "p50_us"), get("latency", c, "p99_us")
        d50, d99 = get("latency", "direct", "p50_us"), get("latency", "direct", "p99_us")
        md.append(f"| {c} | {fmt(a50)} | {fmt(None if a50 is None else a50 - d50)} | {fmt(a99)} | {fmt(None if a99 is None else a99 - d99)} |")
    md.append("")
if "w5" in agg:
    md += ["Cold start (W5, spawn → first answered tools/call):", "", "| contender | median ms | min ms | samples ms |", "|---|---:|---:|---|"]
    for c in order_c["w5"]:
        s = agg["w5"][c]["per_round"][0].get("cold_start_samples_ms", [])
        md.append(f"| {c} | {fmt(get('w5', c, 'cold_start_ms'), 1)} | {fmt(get('w5', c, 'cold_start_min_ms'), 1)} | {', '.join(map(str, s)) or 'n/a'} |")
    md.append("")
if "w4" in agg:
    md += ["Open SSE streams (W4):", "", "| contender | open streams | RSS MB | peak RSS MB |", "|---|---:|---:|---:|"]
    for c in order_c["w4"]:
        md.append(f"| {c} | {fmt(get('w4', c, 'open_streams'))} | {fmt(get('w4', c, 'rss_mb'), 1)} | {fmt(get('w4', c, 'peak_rss_mb'), 1)} |")
    md.append("")

md += ["## Targets (issue 8)", "", "| target | measured | status | how |", "|---|---|---|---|"]
md += [f"| {t['target']} | {t['value']} | {t['status']} | {t['how']} |" for t in T]
md += ["", "## Versions", ""]
md += [f"- {c}: {v}" for c, v in sorted(meta["versions"].items())]
md += [f"- {k}: {v}" for k, v in meta["tools"].items()]
if meta.get("skipped"):
    md += ["", "## Skipped", ""] + [f"- {k}: {v}" for k, v in sorted(meta["skipped"].items())]
errs = [(w, c, e) for w in order_w for c in order_c[w] for e in agg[w][c]["errors"]]
if errs:
    md += ["", "## Failed measurements", ""] + [f"- {w} / {c}: {e}" for w, c, e in errs]
md += ["", f"Raw per-round numbers: `{os.path.basename(base)}.json`. Chart: `{os.path.basename(base)}.svg`.", ""]
md.insert(2, f"![throughput and latency]({os.path.basename(base)}.svg)\n")
open(base + ".md", "w").write("\n".join(md))

# -------------------------------------------------------------------- chart --
COL = {"direct": "#7f7f7f", "mcp-guard-full": "#1f77b4", "mcp-guard-min": "#6baed6", "nginx": "#2ca02c",
       "python-stack": "#d62728", "supergateway": "#9467bd", "mcp-proxy": "#8c564b", "mcp-guard-stdio": "#17becf"}
esc = lambda s: str(s).replace("&", "&amp;").replace("<", "&lt;")
W, LBL, BAR, GAP = 900, 150, 16, 4
svg, y = [], 30
svg.append(f'<text x="10" y="20" font-size="15" font-weight="bold">mcp-guard benchmark {esc(meta["date"])} {esc(meta["host"])}'
           f'{" (quick)" if meta.get("quick") else ""}</text>')
panels = [(w, "requests_per_sec", "req/s") for w in order_w if any(get(w, c, "requests_per_sec") for c in order_c[w])]
panels += [(w, ("p50_us", "p99_us"), "latency µs (p50 solid, p99 light)") for w in order_w if any(get(w, c, "p50_us") for c in order_c[w])]
panels += [(w, "cold_start_ms", "ms") for w in order_w if any(get(w, c, "cold_start_ms") for c in order_c[w])]
for w, key, unit in panels:
    cs = order_c[w]
    keys = key if isinstance(key, tuple) else (key,)
    vmax = max([get(w, c, k) or 0 for c in cs for k in keys] + [1e-9])
    svg.append(f'<text x="10" y="{y + 14}" font-size="13" font-weight="bold">{esc(WNAMES.get(w, w))} — {esc(unit)}</text>')
    y += 22
    for c in cs:
        svg.append(f'<text x="{LBL - 6}" y="{y + BAR - 4}" font-size="11" text-anchor="end">{esc(c)}</text>')
        for i, k in enumerate(reversed(keys)):
            v = get(w, c, k)
            if v is None:
                continue
            wd = (W - LBL - 120) * v / vmax
            op = "0.45" if len(keys) > 1 and i == 0 else "1"
            svg.append(f'<rect x="{LBL}" y="{y}" width="{wd:.1f}" height="{BAR}" fill="{COL.get(c, "#444")}" fill-opacity="{op}"/>')
        label = " / ".join(fmt(get(w, c, k), 1 if unit == "ms" else 0) for k in keys)
        far = max(get(w, c, k) or 0 for k in keys)
        svg.append(f'<text x="{LBL + (W - LBL - 120) * far / vmax + 4:.1f}" y="{y + BAR - 4}" font-size="11">{esc(label)}</text>')
        y += BAR + GAP
    y += 14
svg.insert(0, f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y + 10}" font-family="sans-serif">'
              f'<rect width="100%" height="100%" fill="white"/>')
svg.append("</svg>")
open(base + ".svg", "w").write("\n".join(svg) + "\n")
print(f"wrote {base}.md, {base}.json, {base}.svg")
print("\n".join(md))
