"""Every code example in the docs runs, so none can rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from .apps import EXAMPLES, ROOT, load_example

# The examples' pytest sessions, in subprocesses: run once in CI, not per
# Python version (setup.cfg).
pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "name",
    [
        "tutorial_test",
        "tutorial_client_test",
        "websocket_test",
        "streaming_test",
        pytest.param(
            "mcp_test",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11), reason="mcp 2.3 and httpx2 need 3.11"
            ),
        ),
        "fixtures_test",
        "migrate_testclient_test",
        "migrate_asgi_lifespan_test",
    ],
)
def test_the_example_test_files_pass(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"docs/examples/{name}.py"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=user_terminal(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\d+ passed", done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "many_apps",
            "users billing\nserving users\n['billing started', 'billing stopped', "
            "'users started', 'users started', 'users stopped', 'users stopped']\n",
        ),
        (
            "unsupported_and_timeouts",
            "not supported, as expected\nsupported: False\n"
            "timed out in startup after 0.1 s\n",
        ),
    ],
)
def test_the_example_scripts_print_what_the_docs_say(
    name: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_example(name)
    # On fake time, so the timeout example does not really wait.
    trio.run(module.main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert capsys.readouterr().out == expected


def test_every_example_is_used_by_the_docs() -> None:
    docs = "".join(path.read_text() for path in (ROOT / "docs").rglob("*.rst"))
    for example in EXAMPLES.glob("*.py"):
        assert f"examples/{example.name}" in docs, example.name


# The plugin how-to (docs/howto/plugin.rst): real sessions in a fresh folder,
# configured by pytest.ini alone, with every async plugin installed (and so
# loaded by pytest), as in a project that has them all.

PLUGINS: dict[str, list[str]] = {
    "trio": ["trio_mode = true"],
    "asyncio": ["asyncio_mode = auto", "asyncio_default_fixture_loop_scope = function"],
    "asyncio-module": [
        "asyncio_mode = auto",
        "asyncio_default_fixture_loop_scope = function",
        "lifespan_scope = module",
        "asyncio_default_test_loop_scope = module",
    ],
    "anyio": [],
}
ANYIO_HEADER = (EXAMPLES / "plugin_anyio_test.py").read_text().split("\n\n\nasync")[0]


def plugin_session(tmp_path: Path, plugin: str, test_file: str) -> list[str]:
    """Run ``test_file`` (an example) beside crashing_app.py; the output lines."""
    ini = PLUGINS[plugin]
    source = (EXAMPLES / test_file).read_text()
    if plugin == "anyio" and test_file != "plugin_anyio_test.py":
        source = ANYIO_HEADER + "\n\n" + source.split('"""', 2)[2]
    (tmp_path / "crashing_app.py").write_text(
        (EXAMPLES / "crashing_app.py").read_text()
    )
    (tmp_path / "test_it.py").write_text(source)
    app = ["asgi_app = crashing_app:app"]
    if test_file == "plugin_fixture_test.py":  # the app from conftest.py
        app = []
        saved = {"plugin_conftest": "conftest", "settings_app": "settings_app"}
        for name, saved_as in saved.items():
            (tmp_path / f"{saved_as}.py").write_text(
                (EXAMPLES / f"{name}.py").read_text()
            )
    (tmp_path / "pytest.ini").write_text("\n".join(["[pytest]", *app, *ini, ""]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:looptime_plugin",
            "-p",
            "no:looptime",
            "-W",
            "error",
            # pytest-asyncio's own warning, in every session it is loaded in
            # whose ini does not set this (the trio and anyio examples').
            "-W",
            'ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset',
            "-o",
            "timeout=30",
            "test_it.py",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=user_terminal(),
    )
    return done.stdout.splitlines()


# pytest does not shorten the summary's lines on CI (it looks for these
# variables), colours its output when asked to, and reads more options from
# PYTEST_ADDOPTS: none of that is what the docs show.
NOT_A_USER_TERMINAL = (
    "CI",
    "BUILD_NUMBER",
    "PY_COLORS",
    "FORCE_COLOR",
    "PYTEST_ADDOPTS",
)


def user_terminal() -> dict[str, str]:
    """The environment of a user's 80-column terminal, as the docs show runs."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_USER_TERMINAL}
    return {**env, "COLUMNS": "80"}


@pytest.mark.parametrize(
    ("plugin", "test_file", "summary"),
    [
        ("trio", "plugin_test.py", "3 passed"),
        ("asyncio", "plugin_test.py", "3 passed"),
        ("asyncio-module", "plugin_test.py", "3 passed"),
        ("anyio", "plugin_anyio_test.py", "2 passed"),
        ("trio", "plugin_fixture_test.py", "2 passed"),
        ("asyncio", "plugin_fixture_test.py", "2 passed"),
        ("anyio", "plugin_fixture_test.py", "4 passed"),
    ],
)
def test_the_plugin_examples_pass(
    tmp_path: Path, plugin: str, test_file: str, summary: str
) -> None:
    lines = plugin_session(tmp_path, plugin, test_file)
    assert re.fullmatch(rf"=+ {summary} in [\d.]+s =+", lines[-1]), "\n".join(lines)


@pytest.mark.parametrize(
    ("plugin", "failed", "summary"),
    [
        (
            "trio",
            [
                "FAILED test_it.py::test_the_crash - RuntimeError('db pool died') [single exce..."
            ],
            "1 failed, 2 passed",
        ),
        (
            "asyncio",
            ["FAILED test_it.py::test_the_crash - RuntimeError: db pool died"],
            "1 failed, 2 passed",
        ),
        (
            "asyncio-module",
            [
                "FAILED test_it.py::test_the_crash - RuntimeError: db pool died",
                "FAILED test_it.py::test_after_the_crash - trio_lifespan.LifespanUnavailable: ...",
            ],
            "2 failed, 1 passed",
        ),
        (
            "anyio",
            [
                "FAILED test_it.py::test_the_crash[trio] - RuntimeError: db pool died",
                "FAILED test_it.py::test_the_crash[asyncio] - RuntimeError: db pool died",
            ],
            "2 failed, 4 passed",
        ),
    ],
)
def test_the_plugin_crash_example_fails_as_the_docs_say(
    tmp_path: Path, plugin: str, failed: list[str], summary: str
) -> None:
    lines = plugin_session(tmp_path, plugin, "plugin_crash_test.py")
    output = "\n".join(lines)
    assert [line for line in lines if line.startswith(("FAILED", "ERROR"))] == failed, (
        output
    )
    assert re.fullmatch(rf"=+ {summary} in [\d.]+s =+", lines[-1]), output
    docs = (ROOT / "docs" / "howto" / "plugin.rst").read_text()
    for line in failed:
        assert line.replace("test_it.py", "test_crash.py") in docs
