#!/usr/bin/env python3
"""Compares an Autobahn|Testsuite report with the committed expectation.

    check.py REPORT_DIR [--mode full|quick]     exit 1 on any regression
    check.py REPORT_DIR --write                 rewrite expected.json from the report

A regression is a case that is FAILED, missing from the report, or worse than
expected (OK > NON-STRICT > INFORMATIONAL > UNIMPLEMENTED > anything else).
A case better than expected is reported as an improvement; refresh the
expectation with --write after checking it. Standard library only.
"""
import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

RANK = {"OK": 4, "NON-STRICT": 3, "INFORMATIONAL": 2, "UNIMPLEMENTED": 1}
QUICK_EXCLUDED_GROUPS = {"9", "12", "13"}
EXPECTED = Path(__file__).with_name("expected.json")


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def load_report(report_dir):
    index = json.loads((Path(report_dir) / "index.json").read_text())
    if len(index) != 1:
        sys.exit(f"check: expected one agent in {report_dir}/index.json, found {sorted(index)}")
    (cases,) = index.values()
    return {case: result["behavior"] for case, result in cases.items()}


def summary(results):
    groups = defaultdict(Counter)
    for case, behavior in results.items():
        groups[case.split(".")[0]][behavior] += 1
    for group in sorted(groups, key=int):
        counts = " ".join(f"{b}={n}" for b, n in sorted(groups[group].items()))
        print(f"check: {group + '.*':<6} {sum(groups[group].values()):>4} cases: {counts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report_dir")
    parser.add_argument("--mode", choices=["full", "quick"], default="full")
    parser.add_argument("--write", action="store_true", help="rewrite expected.json from this report")
    args = parser.parse_args()

    results = load_report(args.report_dir)
    summary(results)
    if args.write:
        ordered = {case: results[case] for case in sorted(results, key=case_key)}
        EXPECTED.write_text(json.dumps(ordered, indent=1) + "\n")
        print(f"check: wrote {len(ordered)} expectations to {EXPECTED}")
        return 0

    expected = json.loads(EXPECTED.read_text())
    if not expected:
        print("check: expected.json is empty; generate it with --write from a full report")
        return 1
    if args.mode == "quick":
        expected = {c: b for c, b in expected.items() if c.split(".")[0] not in QUICK_EXCLUDED_GROUPS}

    regressions, improvements = [], []
    for case in sorted(expected, key=case_key):
        want, got = expected[case], results.get(case)
        if got is None:
            regressions.append(f"{case}: missing from the report (expected {want})")
        elif RANK.get(got, 0) < RANK.get(want, 0) or got not in RANK:
            regressions.append(f"{case}: {got} (expected {want})")
        elif RANK[got] > RANK.get(want, 0):
            improvements.append(f"{case}: {got} (expected {want})")
    unexpected = sorted(set(results) - set(expected), key=case_key)
    for line in improvements:
        print(f"check: improvement {line}; refresh with: tests/autobahn/check.py {args.report_dir} --write")
    if unexpected:
        print(f"check: {len(unexpected)} cases have no expectation: {' '.join(unexpected[:10])}")
    for line in regressions:
        print(f"check: REGRESSION {line}")
    checked = len(expected)
    print(f"autobahn: {checked - len(regressions)} passed, {len(regressions)} failed")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
