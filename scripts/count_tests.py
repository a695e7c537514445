#!/usr/bin/env python3
"""Counts test cases in Bazel's JUnit reports: prints `passed failed skipped`."""
import pathlib
import sys
import xml.etree.ElementTree as ET

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bazel-testlogs")
passed = failed = skipped = 0
for report in root.rglob("test.xml"):
    try:
        tree = ET.parse(report)
    except ET.ParseError:
        failed += 1
        print(f"unreadable report: {report}", file=sys.stderr)
        continue
    cases = list(tree.iter("testcase"))
    if not cases:
        # A test without gtest-style cases: judge by its suite's counts.
        suites = list(tree.iter("testsuite"))
        bad = any(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
        failed += bad
        passed += not bad
        continue
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            print(f"FAILED: {case.get('classname')}.{case.get('name')} ({report.parent.name})",
                  file=sys.stderr)
        elif case.find("skipped") is not None or case.get("result") == "skipped":
            skipped += 1
        else:
            passed += 1
print(passed, failed, skipped)
