"""asgi-lifespan 2.1's own test suite, run against our ``LifespanManager``.

Run by ``tox -e incumbent`` (a step of .ci/run), in an environment with the
versions that suite was written for (tox.ini). It takes the tests from
asgi-lifespan's sdist on PyPI, changes one line (the import of
``LifespanManager`` and ``LifespanNotSupported`` comes from trio_lifespan;
the suite's helpers still come from asgi-lifespan), runs them with pytest and
compares the outcome with ``DIFFERENCES``: the tests that fail because we do
on purpose what asgi-lifespan does not (docs/howto/migrating.rst). Every
other test must pass, and each of those must fail the way it says; a new
failure, or a difference that went away, fails this check.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

VERSION = "2.1.0"
IMPORT = "from asgi_lifespan import LifespanManager, LifespanNotSupported"
OURS = "from trio_lifespan import LifespanManager, LifespanNotSupported"

SHUTDOWN_SENT = (
    "we send lifespan.shutdown when the body raises (its test asserts it is not)",
    "'lifespan.shutdown'",
)
BODY_KEPT = (
    "the body's exception comes out, with the shutdown's failure as a note"
    " (its test wants the shutdown's, or a group on trio)",
    "lifespan failed too, after this exception: ShutdownFailed",
)
DIFFERENCES: dict[str, tuple[str, str]] = {
    # test id: (why it fails, a text its failure shows)
    "test_lifespan_manager[asyncio-None-BodyFailed-None]": SHUTDOWN_SENT,
    "test_lifespan_manager[trio-None-BodyFailed-None]": SHUTDOWN_SENT,
    "test_lifespan_manager[asyncio-ShutdownFailed-BodyFailed-None]": BODY_KEPT,
    "test_lifespan_manager[trio-ShutdownFailed-BodyFailed-None]": BODY_KEPT,
    # Our manager raises the app's AssertionError bare, as the xfail wants;
    # pytest-trio wraps a test's error in a group, so the xfail does not
    # match on trio. asgi-lifespan 2.1 fails this test the same way.
    "test_lifespan_not_supported[trio-http_no_assert_before_receive_request]": (
        "pytest-trio groups the test's AssertionError (asgi-lifespan fails it too)",
        "'lifespan.startup' == 'http.request'",
    ),
}


def fetch_tests(folder: Path) -> Path:
    """Download asgi-lifespan's sdist and unpack its tests, with our import."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"asgi-lifespan=={VERSION}",
            "-d",
            str(folder),
        ],
        check=True,
    )
    (sdist,) = folder.glob("asgi*lifespan-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(folder, filter="data")
    root = folder / f"asgi-lifespan-{VERSION}"
    manager_tests = root / "tests" / "test_manager.py"
    text = manager_tests.read_text()
    if text.count(IMPORT) != 1:
        sys.exit(f"asgi-lifespan {VERSION}'s tests no longer import {IMPORT!r}")
    manager_tests.write_text(text.replace(IMPORT, OURS))
    return root


def outcomes(report: Path) -> dict[str, str]:
    """Each test's outcome in a junit report: passed, skipped or the failure."""
    found: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            found[case.attrib["name"]] = (
                f"{failure.attrib.get('message', '')}\n{failure.text or ''}"
            )
        elif case.find("skipped") is not None:
            found[case.attrib["name"]] = "skipped"
        else:
            found[case.attrib["name"]] = "passed"
    return found


def main() -> int:
    """Run the suite and say how it compares with ``DIFFERENCES``."""
    with tempfile.TemporaryDirectory() as name:
        root = fetch_tests(Path(name))
        report = Path(name) / "report.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
                "-o",
                "asyncio_mode=strict",
                f"--junitxml={report}",
            ],
            cwd=root,
            check=False,
        )
        found = outcomes(report)
    wrong: list[str] = []
    for test, outcome in sorted(found.items()):
        if test in DIFFERENCES:
            why, shows = DIFFERENCES[test]
            if outcome in {"passed", "skipped"} or shows not in outcome:
                wrong.append(f"{test}: should fail ({why}), but:\n{outcome}")
            else:
                print(f"different on purpose: {test}: {why}")
        elif outcome not in {"passed", "skipped"}:
            wrong.append(f"{test}: failed\n{outcome}")
    wrong += [f"{test}: did not run" for test in DIFFERENCES if test not in found]
    passed = sum(outcome in {"passed", "skipped"} for outcome in found.values())
    print(f"asgi-lifespan {VERSION}'s suite on our LifespanManager: {passed} passed")
    print(f"or xfailed, {len(DIFFERENCES)} different on purpose, of {len(found)}")
    for line in wrong:
        print(f"!! {line}", file=sys.stderr)
    return 1 if wrong or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
