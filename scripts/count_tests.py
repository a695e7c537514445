#!/usr/bin/env python3
"""Counts test cases in Bazel's JUnit reports: prints `passed failed skipped`.

  count_tests.py [TESTLOGS]             every test.xml under TESTLOGS
                                        (default bazel-testlogs)
  count_tests.py --bep FILE [--tag T]   only the reports of the `bazel test`
                                        run that wrote FILE
                                        (--build_event_json_file)

With --bep, a test target whose cases all passed but which Bazel still saw fail
(a sanitizer's report at exit, e.g. LeakSanitizer, after the last case) and a
test target that did not build count as one failed case each. --tag labels the
FAILED lines on stderr (e.g. the sanitizer config).
"""
import argparse
import json
import pathlib
import sys
import urllib.parse
import xml.etree.ElementTree as ET

parser = argparse.ArgumentParser()
parser.add_argument("testlogs", nargs="?", default="bazel-testlogs")
parser.add_argument("--bep", help="a --build_event_json_file of one `bazel test` run")
parser.add_argument("--tag", default="", help="a prefix for the FAILED lines")
args = parser.parse_args()
prefix = f"[{args.tag}] " if args.tag else ""

passed = failed = skipped = 0


def fail(what):
    global failed
    failed += 1
    print(f"FAILED: {prefix}{what}", file=sys.stderr)


def count(report, name):
    """Counts one test.xml; returns how many of its cases failed."""
    global passed, skipped
    try:
        tree = ET.parse(report)
    except (ET.ParseError, OSError):
        fail(f"unreadable report: {report}")
        return 1
    cases = list(tree.iter("testcase"))
    if not cases:
        # A test without gtest-style cases: judge by its suite's counts.
        suites = list(tree.iter("testsuite"))
        bad = any(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
        if bad:
            fail(name)
        else:
            passed += 1
        return int(bad)
    bad = 0
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            bad += 1
            fail(f"{'.'.join(filter(None, (case.get('classname'), case.get('name'))))} ({name})")
        elif case.find("skipped") is not None or case.get("result") == "skipped":
            skipped += 1
        else:
            passed += 1
    return bad


if args.bep:
    for line in open(args.bep):
        event = json.loads(line)
        eid = event.get("id", {})
        if "testResult" in eid and "testResult" in event:
            label = eid["testResult"]["label"]
            result = event["testResult"]
            xml = [o["uri"] for o in result.get("testActionOutput", []) if o["name"] == "test.xml"]
            bad = count(urllib.parse.unquote(xml[0][len("file://"):]), label) if xml else None
            if bad is None and result.get("status") == "PASSED":
                continue
            if bad is None:
                fail(f"{label} ({result.get('status')}, no report)")
            elif bad == 0 and result.get("status") not in ("PASSED", "FLAKY"):
                # Every case passed, yet the test did not: a report at exit.
                fail(f"{label} ({result.get('status')} after its cases passed: see its test.log)")
        elif "targetCompleted" in eid:
            aborted = event.get("aborted", {}).get("reason")
            if not event.get("completed", {}).get("success", True) or aborted not in (None, "SKIPPED"):
                fail(f"{eid['targetCompleted']['label']} (did not build)")
else:
    root = pathlib.Path(args.testlogs)
    for report in root.rglob("test.xml"):
        count(report, report.parent.name)
print(passed, failed, skipped)
