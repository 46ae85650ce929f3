#!/usr/bin/env python3
"""Compares an Autobahn|Testsuite report with the committed expectation.

    check.py REPORT_DIR [--mode full|quick]     exit 1 on any regression
    check.py REPORT_DIR --write [--force]       rewrite expected.json from the report

REPORT_DIR is the directory run.py wrote (it holds index.json: agent -> case
id -> {"behavior": ..., "behaviorClose": ..., ...}).

A regression is a case that is FAILED (or any behaviour other than OK,
NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, e.g. WRONG CODE or UNCLEAN), missing
from the report, or worse than expected, in the order
OK > NON-STRICT > INFORMATIONAL > UNIMPLEMENTED > FAILED.
A case better than expected is reported as an improvement; refresh the
expectation with --write after checking it. `--mode quick` only checks the
cases of a `run.py --quick` run (no 9.*, 12.*, 13.*).

Exit status: 0 as expected, 1 regression, 2 unusable report or arguments.
Standard library only.
"""
import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

RANK = {"OK": 4, "NON-STRICT": 3, "INFORMATIONAL": 2, "UNIMPLEMENTED": 1, "FAILED": 0}
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
QUICK_EXCLUDED_GROUPS = {"9", "12", "13"}
DEFAULT_EXPECTED = Path(__file__).with_name("expected.json")


def die(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def rank(behavior):
    """Anything the ranking does not know counts as FAILED, as in the HTML report."""
    return RANK.get(behavior, 0)


def case_key(case_id):
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def group_of(case_id):
    return case_id.split(".")[0]


def load_report(report_dir, agent):
    path = Path(report_dir) / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        die(f"check: cannot read {path}: {err}")
    if agent is None:
        if len(index) != 1:
            die(f"check: {path} has agents {sorted(index)}; choose one with --agent")
        (agent,) = index
    if agent not in index:
        die(f"check: agent {agent!r} not in {path} (have {sorted(index)})")
    return {case: result.get("behavior", "MISSING") for case, result in index[agent].items()}


def print_summary(results):
    groups = defaultdict(Counter)
    for case, behavior in results.items():
        column = behavior if behavior in RANK else "FAILED"
        groups[group_of(case)][column] += 1
    print(f"check: {'group':<6} {'cases':>5}  " + "  ".join(f"{c:>4}" for c in COLUMNS))
    total = Counter()
    for group in sorted(groups, key=lambda g: case_key(g)):
        counts = groups[group]
        total.update(counts)
        cells = "  ".join(f"{counts[c]:>{max(len(c), 4)}}" for c in COLUMNS)
        print(f"check: {group + '.*':<6} {sum(counts.values()):>5}  {cells}")
    cells = "  ".join(f"{total[c]:>{max(len(c), 4)}}" for c in COLUMNS)
    print(f"check: {'total':<6} {sum(total.values()):>5}  {cells}")


def write_expected(results, expected_path, force):
    bad = sorted((c for c, b in results.items() if rank(b) == 0), key=case_key)
    if bad and not force:
        print(f"check: refusing to write: {len(bad)} cases are not passing: {' '.join(bad[:20])}")
        print("check: an expectation records a passing server; use --force to write it anyway")
        return 2
    if expected_path.exists():
        old = json.loads(expected_path.read_text(encoding="utf-8"))
        dropped = sorted(set(old) - set(results), key=case_key)
        if dropped and not force:
            print(f"check: refusing to write: the report lacks {len(dropped)} expected cases "
                  f"(a quick run?): {' '.join(dropped[:20])}; use --force to drop them")
            return 2
    ordered = {case: results[case] for case in sorted(results, key=case_key)}
    expected_path.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")
    print(f"check: wrote {len(ordered)} expectations to {expected_path}")
    return 0


def compare(results, expected, report_dir):
    regressions, improvements = [], []
    for case in sorted(set(expected) | {c for c, b in results.items() if rank(b) == 0}, key=case_key):
        want, got = expected.get(case), results.get(case)
        if got is None:
            regressions.append(f"{case:<9} missing from the report (expected {want})")
        elif rank(got) == 0:
            regressions.append(f"{case:<9} {got} (expected {want or 'no expectation'})")
        elif want is not None and rank(got) < rank(want):
            regressions.append(f"{case:<9} {got} (expected {want})")
        elif want is not None and rank(got) > rank(want):
            improvements.append(f"{case:<9} {got} (expected {want})")
    unexpected = sorted((c for c in set(results) - set(expected) if rank(results[c]) > 0), key=case_key)

    for line in improvements:
        print(f"check: improvement {line}")
    if improvements:
        print(f"check: {len(improvements)} improvements; after checking them, refresh the expectation:")
        print(f"check:     tests/autobahn/check.py {report_dir} --write")
    if unexpected:
        shown = " ".join(unexpected[:20]) + (" ..." if len(unexpected) > 20 else "")
        print(f"check: {len(unexpected)} cases have no expectation (not checked): {shown}")
    missing = [line for line in regressions if "missing from the report" in line]
    for line in regressions:
        if line in missing[20:]:
            continue
        print(f"check: REGRESSION {line}")
    if len(missing) > 20:
        print(f"check: REGRESSION ... and {len(missing) - 20} more cases missing from the report")
    checked = len(expected)
    print(f"check: {checked} expected cases, {len(regressions)} regressions, {len(improvements)} improvements")
    return 1 if regressions else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report_dir")
    parser.add_argument("--mode", choices=["full", "quick"], default="full",
                        help="quick: only the cases of a run.py --quick run are expected")
    parser.add_argument("--agent", help="agent name in index.json (default: the only one)")
    parser.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED,
                        help="expectation file (default: expected.json beside this script)")
    parser.add_argument("--write", action="store_true", help="rewrite the expectation from this report")
    parser.add_argument("--force", action="store_true", help="with --write: write even failing or partial reports")
    args = parser.parse_args()

    results = load_report(args.report_dir, args.agent)
    if not results:
        print(f"check: no cases in {args.report_dir}/index.json")
        return 2
    print_summary(results)
    if args.write:
        return write_expected(results, args.expected, args.force)

    try:
        expected = json.loads(args.expected.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"check: cannot read {args.expected}: {err}")
        return 2
    if not expected:
        print(f"check: {args.expected} is empty; generate it from a full report of a passing run:")
        print(f"check:     tests/autobahn/check.py {args.report_dir} --write")
        return 1
    if args.mode == "quick":
        expected = {c: b for c, b in expected.items() if group_of(c) not in QUICK_EXCLUDED_GROUPS}
    return compare(results, expected, args.report_dir)


if __name__ == "__main__":
    sys.exit(main())
