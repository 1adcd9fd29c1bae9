#!/usr/bin/env python3
"""Turns the benches' raw results into docs/benchmarks.md's tables and plots.

    python3 benches/report.py RESULTS.json FTP.json OUT.md PLOT_DIR

RESULTS.json is the chat bench's (benches/chat), FTP.json benches/ftp.sh's.
OUT.md is rewritten between the lines `<!-- results:begin -->` and
`<!-- results:end -->` only, so the hand-written method and reading of the
results around them stay; a file without them is written whole. Each cell
is the median of the rounds that succeeded; each ratio table divides by
the best server of its row (1.00x is the best; 2.00x: half as good).

The plots are PNGs made with matplotlib (benches/run installs it with pip):
well known, on PyPI for every platform with its own fonts bundled, so a
fresh clone draws the same plots without system fonts, and the script that
already reads the JSON draws them in a few lines. Without matplotlib the
tables are still written, and the plots are skipped with a warning.
"""

import json
import os
import statistics
import sys

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# Rows of the chat tables: (section, label, workload, metric, better).
# better: "higher", "lower", or None (a count: no ratio).
ROUND_TRIP_CS = None  # filled from the results: the C values that ran


def rows_of(results):
    cs = sorted({int(w["id"].split("_c")[1]) for w in results["workloads"] if w["id"].startswith("roundtrips_c")})
    idle = next((w["held"] for w in results["workloads"] if w["id"] == "idle"), 0)
    burst = next((w["held"] for w in results["workloads"] if w["id"] == "burst"), 0)
    down = next((w["held"] for w in results["workloads"] if w["id"] == "shutdown_idle"), 0)
    sections = []
    for metric, title, better in [
        ("per_s", "Round trips per second", "higher"),
        ("p50_us", "Round-trip latency, p50, µs", "lower"),
        ("p99_us", "Round-trip latency, p99, µs", "lower"),
        ("cpu_us", "Server CPU µs per round trip", "lower"),
        ("switches", "Server context switches per round trip", "lower"),
    ]:
        sections.append((title, [(f"C = {c:,}", f"roundtrips_c{c}", metric, better) for c in cs]))
    sections.append(("Connection rate (connect, greeting, q, close)", [
        ("connections/s", "connect", "per_s", "higher"),
        ("server CPU µs per connection", "connect", "cpu_us", "lower"),
        ("… of which user space", "connect", "user_us", "lower"),
    ]))
    sections.append((f"{idle:,} idle connections", [
        ("greeted", "idle", "greeted", "higher"),
        ("still answering afterwards", "idle", "answered", "higher"),
        ("server memory (PSS) per connection, KiB", "idle", "kib_per_conn", "lower"),
        ("server memory (PSS) in all, MiB", "idle", "total_mib", "lower"),
    ]))
    sections.append((f"A burst of {burst:,} clients", [
        ("greeted", "burst", "greeted", "higher"),
        ("time to the last greeting, ms", "burst", "last_greeting_ms", "lower"),
    ]))
    busy = next((w["held"] for w in results["workloads"] if w["id"] == "shutdown_busy"), 0)
    sections.append((f"Shutdown (SIGTERM): {down:,} idle connections, or {busy:,} mid-conversation", [
        ("idle: the port refuses after, ms", "shutdown_idle", "refused_ms", "lower"),
        ("idle: exit after, ms (ours: --drain-timeout 0)", "shutdown_idle", "exit_ms", "lower"),
        ("mid-conversation: exit after, ms", "shutdown_busy", "exit_ms", None),
        ("mid-conversation: conversations ended whole", "shutdown_busy", "completed", None),
        ("mid-conversation: conversations cut", "shutdown_busy", "cut", None),
    ]))
    return sections


def medians(results):
    """(workload, server, metric) -> median over the rounds that succeeded."""
    values = {}
    for run in results["runs"]:
        if run["error"] is not None:
            continue
        for metric, value in run["metrics"].items():
            if value is not None:
                values.setdefault((run["workload"], run["server"], metric), []).append(value)
    return {key: statistics.median(v) for key, v in values.items()}


def number(v):
    if v is None:
        return "—"
    if float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(header, lines, numbers=True):
    """A Markdown table; its columns after the first right-aligned when they hold numbers."""
    rest = "---:|" if numbers else "---|"
    out = ["| " + " | ".join(header) + " |", "|---|" + rest * (len(header) - 1)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def chat_section(results, plot_dir, md_dir):
    servers = results["servers"]
    runs_of = {s["id"]: set(s["workloads"]) for s in servers}
    med = medians(results)
    header = ["", *[s["label"] for s in servers]]
    out = []
    for title, rows in rows_of(results):
        absolute, ratios = [], []
        for label, workload, metric, better in rows:
            cells, values = [label], []
            for s in servers:
                v = med.get((workload, s["id"], metric))
                values.append(v)
                cells.append(number(v) if workload in runs_of[s["id"]] else "n/a")
            absolute.append(cells)
            present = [v for v in values if v is not None and v > 0]
            if better and present:
                best = max(present) if better == "higher" else min(present)
                ratio = [label]
                for s, v in zip(servers, values):
                    if workload not in runs_of[s["id"]]:
                        ratio.append("n/a")
                    elif v is None or v <= 0:
                        ratio.append("—")
                    else:
                        r = best / v if better == "higher" else v / best
                        ratio.append(f"**{r:.2f}×**" if r == 1 else f"{r:.2f}×")
                ratios.append(ratio)
        out.append(f"#### {title}\n\n" + table(header, absolute))
        if ratios:
            out.append("Against the best server of each row (1.00× is the best; 2.00×: half as good):\n\n"
                       + table(header, ratios))
    failures = [r for r in results["runs"] if r["error"] is not None]
    if failures:
        out.append("Runs that failed (left out of the medians):\n\n" + "\n".join(
            f"* round {r['round']}, {r['workload']}, {r['server']}: {r['error']}" for r in failures))
    plots = chat_plots(results, med, plot_dir, md_dir)
    return out, plots


def ftp_section(ftp):
    if not ftp or not ftp.get("rows"):
        return ["No FTP results (benches/ftp.sh did not run)."]
    med = {r["id"]: statistics.median(r["mb_per_s"]) for r in ftp["rows"] if r["mb_per_s"]}
    # Ours against the best peer (pyftpdlib, vsftpd) moving the same way.
    peers = {way: max((med[p] for p in (f"pyftpdlib_{way}", f"vsftpd_{way}") if p in med), default=None)
             for way in ("retr", "stor")}
    lines = []
    for r in ftp["rows"]:
        m, top = med.get(r["id"]), max(r["mb_per_s"], default=None)
        vs = lambda limit: f"{100 * m / med[limit]:.0f}%" if m and med.get(limit) else "—"
        way = "retr" if "_retr" in r["id"] else "stor" if "_stor" in r["id"] else None
        peer = "—"
        if r["id"].startswith("ours_") and m and way and peers[way]:
            peer = f"{m / peers[way]:.2f}×"
        # The event model's rows against the same transfer in the threading model.
        threading = "—"
        if r["id"].startswith("ours_event_") and m and med.get("ours_" + r["id"][len("ours_event_"):]):
            threading = f"{m / med['ours_' + r['id'][len('ours_event_'):]]:.2f}×"
        lines.append([r["label"], f"{number(m)} ({number(top)})", vs("md5sum"), vs("raw"), peer, threading])
    size = ftp["size_bytes"] / (1 << 20)
    return [f"{size:,.0f} MiB file on tmpfs, {ftp['rounds']} rounds, curl over loopback; MB/s = 10^6 bytes/s. "
            "\"vs the best peer\": ours against the faster of pyftpdlib and vsftpd moving the same way "
            "(above 1.00×, ours is faster); \"vs threading\": an event-model row against the same transfer "
            "in the threading model (serve's default), the rows above it.\n\n"
            + table(["transfer", "MB/s, median (best)", "vs md5sum", "vs raw copy", "vs the best peer",
                     "vs threading"], lines)]


def chat_plots(results, med, plot_dir, md_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib is not installed: no plots (pip install matplotlib)", file=sys.stderr)
        return []
    os.makedirs(plot_dir, exist_ok=True)
    servers = results["servers"]
    cs = sorted({int(w["id"].split("_c")[1]) for w in results["workloads"] if w["id"].startswith("roundtrips_c")})
    made = []

    def save(fig, name, alt):
        path = os.path.join(plot_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(f"![{alt}]({os.path.relpath(path, md_dir)})")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in servers:
        points = [(c, med.get((f"roundtrips_c{c}", s["id"], "per_s"))) for c in cs]
        points = [(c, v) for c, v in points if v is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=s["label"])
    ax.set_xscale("log")
    ax.set_xlabel("connections (C)")
    ax.set_ylabel("round trips/s")
    ax.set_title("Round trips per second against connections (server on one CPU)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "round_trips.png", "round trips per second against connections")

    for workload, metric, title, unit, name in [
        ("idle", "kib_per_conn", "Server memory per idle connection", "KiB (PSS)", "idle_memory.png"),
        ("connect", "per_s", "Connections per second (connect, greeting, q, close)", "connections/s",
         "connections.png"),
    ]:
        bars = [(s["label"], med.get((workload, s["id"], metric))) for s in servers]
        bars = [(label, v) for label, v in bars if v is not None]
        if bars:
            fig, ax = plt.subplots(figsize=(8, 4))
            ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1])
            ax.set_xlabel(unit)
            ax.set_title(title)
            ax.grid(axis="x", alpha=0.3)
            save(fig, name, title.lower())
    return made


def ftp_plot(ftp, plot_dir, md_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    if not ftp or not ftp.get("rows"):
        return []
    bars = [(r["label"], statistics.median(r["mb_per_s"])) for r in ftp["rows"] if r["mb_per_s"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1])
    ax.set_xlabel("MB/s (median)")
    ax.set_title("FTP transfers over loopback, and the limits")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(plot_dir, "ftp.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [f"![FTP MB/s per server]({os.path.relpath(path, md_dir)})"]


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    results_path, ftp_path, out_path, plot_dir = sys.argv[1:]
    with open(results_path) as f:
        results = json.load(f)
    ftp = None
    if os.path.exists(ftp_path):
        with open(ftp_path) as f:
            ftp = json.load(f)
    md_dir = os.path.dirname(os.path.abspath(out_path))
    m = results["machine"]
    parts = [
        f"### Results of {results['date']}, commit {results['commit']}"
        + (" (SMOKE RUN: tiny counts, figures meaningless)" if results["smoke"] else ""),
        "Generated by `bash benches/run` from "
        f"`{os.path.relpath(results_path, md_dir)}` and `{os.path.relpath(ftp_path, md_dir)}` "
        "(the raw figures of every round); edit the text around this section, not the section.",
        "**Machine:** "
        + f"{m.get('nproc')} CPUs (`nproc`), {m.get('cpu')}, {m.get('memory')} RAM; {m.get('kernel')}; "
        + f"{m.get('rustc')}; {m.get('python')}; load average at start {m.get('load_average_at_start')}; "
        + ("server pinned to CPU 0, clients to CPU 1." if m.get("pinned") else "NOT pinned (taskset missing)."),
        f"**Rounds:** {results['rounds']}; each cell is the median of its rounds.",
        "**Servers** (each started fresh for each workload; the command as for the largest C):\n\n"
        + table(["server", "command"], [[s["label"], f"`{s['command']}`" if s["command"] else "—"]
                                        for s in results["servers"]], numbers=False),
        "`n/a`: the workload does not make sense for that model (docs/benchmarks.md says why); "
        "`—`: every round of it failed (listed under the tables).",
    ]
    chat, plots = chat_section(results, plot_dir, md_dir)
    parts += plots + chat
    parts.append("#### FTP")
    parts += ftp_section(ftp) + ftp_plot(ftp, plot_dir, md_dir)
    generated = "\n\n".join(parts)
    text = open(out_path).read() if os.path.exists(out_path) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = f"{head}{BEGIN}\n\n{generated}\n\n{END}{tail}"
    else:
        text = f"# Benchmarks\n\n{BEGIN}\n\n{generated}\n\n{END}\n"
    with open(out_path, "w") as f:
        f.write(text)
    print(f"report: {out_path} written")


if __name__ == "__main__":
    main()
