"""Checks a junit.xml written by `cargo xtask stress` with junitparser, the JUnit
reader many CI tools build on: it must parse, and its counts must be as expected."""

import argparse
import sys

from junitparser import Error, Failure, JUnitXml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--expect-pass", action="store_true", help="no failures, no errors")
    parser.add_argument("--expect-failures", type=int, help="exact number of failed testcases")
    parser.add_argument("--expect-errors", type=int, help="exact number of errored testcases")
    parser.add_argument("--suites", nargs="*", default=[], help="testsuites that must be present")
    args = parser.parse_args()

    xml = JUnitXml.fromfile(args.path)
    # A <testsuites> root reads as JUnitXml (iterating gives suites); a bare
    # <testsuite> root reads as a TestSuite (iterating would give testcases).
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    names = [suite.name for suite in suites]
    tests = failures = errors = 0
    for suite in suites:
        for case in suite:
            tests += 1
            for result in case.result:
                if isinstance(result, Failure):
                    failures += 1
                    print(f"  failure: {suite.name} / {case.name}: {result.message}")
                elif isinstance(result, Error):
                    errors += 1
                    print(f"  error:   {suite.name} / {case.name}: {result.message}")
    print(f"{args.path}: {len(suites)} suites {names}, {tests} testcases, {failures} failures, {errors} errors")

    problems = []
    problems += [f"suite {s!r} missing" for s in args.suites if s not in names]
    if tests == 0:
        problems.append("no testcases at all")
    if args.expect_pass and (failures or errors):
        problems.append("expected every testcase to pass")
    if args.expect_failures is not None and failures != args.expect_failures:
        problems.append(f"expected {args.expect_failures} failures")
    if args.expect_errors is not None and errors != args.expect_errors:
        problems.append(f"expected {args.expect_errors} errors")
    for p in problems:
        print(f"junit check: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
