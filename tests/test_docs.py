"""Every code example in the docs runs, so none can rot."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["tutorial_test", "fixtures_test"])
def test_the_example_test_files_pass(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"docs/examples/{name}.py"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
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
    module = load(name)
    # On fake time, so the timeout example does not really wait.
    trio.run(module.main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert capsys.readouterr().out == expected


def test_every_example_is_used_by_the_docs() -> None:
    docs = "".join(path.read_text() for path in (ROOT / "docs").rglob("*.rst"))
    for example in EXAMPLES.glob("*.py"):
        assert f"examples/{example.name}" in docs, example.name
