"""Runs a test module's unittest cases and writes a JUnit report for Bazel.

Bazel reads $XML_OUTPUT_FILE when a test writes it; scripts/count_tests.py
then counts each Python test case as gtest cases are counted (without it, a
whole sh_test counts as one case). Use instead of unittest.main():

    if __name__ == "__main__":
        unittest_junit.main()
"""

import os
import sys
import time
import traceback
import unittest
from xml.etree import ElementTree as ET


class _Result(unittest.TextTestResult):
    """Records each test's outcome (subtest failures count for their test)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = {}  # id -> [classname, name, seconds, outcome, text]
        self._started = {}

    def _case(self, test):
        test_id = test.id()
        if test_id not in self.cases:
            classname, _, name = test_id.rpartition(".")
            self.cases[test_id] = [classname or test_id, name, 0.0, None, ""]
        return self.cases[test_id]

    def _set(self, test, outcome, err=None):
        case = self._case(test)
        if case[3] in ("failure", "error") and outcome == "passed":
            return  # a subtest already failed
        case[3] = outcome
        if err is not None:
            case[4] += "".join(traceback.format_exception(*err))

    def startTest(self, test):
        self._started[test.id()] = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        if test.id() in self._started:
            self._case(test)[2] = time.monotonic() - self._started.pop(test.id())
        super().stopTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "failure", err)

    def addError(self, test, err):  # also setUpClass errors (an _ErrorHolder)
        super().addError(test, err)
        self._set(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skipped")
        self._case(test)[4] = reason

    def addExpectedFailure(self, test, err):  # a known gap: reported as skipped
        super().addExpectedFailure(test, err)
        self._set(test, "skipped")
        self._case(test)[4] = "known gap (expected failure): " + str(err[1])[:500]

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "failure")
        self._case(test)[4] = "unexpected success: the known gap closed; remove @expectedFailure"

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._set(test, "failure" if failed else "error", err)


def write_report(result, path, suite_name):
    cases = list(result.cases.values())
    count = lambda outcome: sum(c[3] == outcome for c in cases)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(cases)),
                          failures=str(count("failure")), errors=str(count("error")),
                          skipped=str(count("skipped")))
    for classname, name, seconds, outcome, text in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name,
                             time=f"{seconds:.3f}")
        if outcome in ("failure", "error", "skipped"):
            ET.SubElement(case, outcome, message=text.strip().splitlines()[-1][:200]
                          if text.strip() else outcome).text = text
    ET.ElementTree(suites).write(path, encoding="UTF-8", xml_declaration=True)


def main(module="__main__"):
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module])
    result = unittest.TextTestRunner(verbosity=2, resultclass=_Result).run(suite)
    path = os.environ.get("XML_OUTPUT_FILE")
    if path:
        write_report(result, path, os.environ.get("TEST_TARGET", module))
    sys.exit(0 if result.wasSuccessful() else 1)
