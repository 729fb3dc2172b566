"""Summarises mcp-guard probe JSON reports for tests/probe/run.sh.

Usage: python3 summary.py OUT_DIR HEADER_FILE REPORT=EXIT... > summary.md

Each REPORT is a file in OUT_DIR (NAME.json from --format json, NAME.sarif
from --format sarif) with the probe's exit code. Exit 2 (or a timeout, or no
parseable report) is a problem anywhere; JSON reports of names ending in
"-guarded" are judged too: any critical, high or medium finding there is a
problem. Prints the markdown summary (findings from the JSON reports); exits
1 when there is a problem.
"""

import json
import sys

ORDER = ["critical", "high", "medium", "low", "info"]


def main() -> int:
    out_dir, header, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    problems = []
    sections = []
    rows = []
    for run in runs:
        file, code = run.rsplit("=", 1)
        name, kind = file.rsplit(".", 1)
        code = int(code)
        try:
            with open(f"{out_dir}/{file}", encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            report = None
            if code != 2:
                problems.append(f"{file}: no report ({e}), exit {code}")
        if code == 2:
            problems.append(f"{file}: the target could not be probed (exit 2; see {name}.log)")
        elif code not in (0, 1):
            problems.append(f"{file}: the probe exited {code} (see {name}.log)")
        if kind != "json":
            continue
        findings = sorted((report or {}).get("findings", []), key=lambda f: (ORDER.index(f["severity"]), f["id"]))
        counts = [sum(1 for f in findings if f["severity"] == s) for s in ORDER]
        verdict = (report or {}).get("verdict", "-")
        requests = (report or {}).get("requests", "-")
        rows.append(f"| {name} | {code} | {verdict} | {requests} | " + " | ".join(map(str, counts)) + " |")
        if name.endswith("-guarded"):
            for f in findings:
                if ORDER.index(f["severity"]) <= ORDER.index("medium"):
                    problems.append(f"{name}: {f['severity']} {f['id']} behind mcp-guard")
        lines = [f"## {name}", ""]
        if report is None:
            lines.append("no report")
        elif not findings:
            lines.append("no findings")
        else:
            lines += ["| severity | id | evidence |", "|---|---|---|"]
            for f in findings:
                evidence = " ".join(str(f.get("evidence", "")).split()).replace("|", "\\|")
                lines.append(f"| {f['severity']} | `{f['id']}` | {evidence[:300]} |")
        not_run = [c for c in (report or {}).get("checks", []) if c.get("status") in ("skipped", "error")]
        if not_run:
            lines += ["", "Checks not run to the end: " + "; ".join(
                f"{c['id']} {c['status']} ({' '.join(str(c.get('detail', '')).split())[:160]})" for c in not_run)]
        sections.append("\n".join(lines))

    with open(header, encoding="utf-8") as f:
        print(f.read().rstrip())
    print()
    print("| run | exit | verdict | requests | critical | high | medium | low | info |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("\n\n".join(sections))
    print()
    print("## Verdict: " + ("FAIL" if problems else "PASS"))
    for p in problems:
        print(f"- {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
