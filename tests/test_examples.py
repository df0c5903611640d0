"""The examples in README.md and docs/examples run, and say what they should."""

from __future__ import annotations

import re

from .apps import ROOT, run_python


def test_the_starlette_example_runs_end_to_end() -> None:
    out = run_python("docs/examples/starlette_trio.py")
    assert out.splitlines() == [
        "app: startup, opening the pretend database",
        "started; lifespan state keys: ['db']",
        "GET /users -> 200 {'users': 3}",
        "app: shutdown, closing the pretend database",
        "stopped cleanly",
    ]


def test_the_readme_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    example = next(block for block in blocks if "trio.run(main)" in block)
    assert len([line for line in example.splitlines() if line]) <= 20
    assert run_python("-c", example) == "{'users': 3}\n"


def test_the_readme_commands_are_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(python3 -m venv .*?)\n```", readme)
    assert len(commands) == 2
    assert commands[0].endswith("pip install -e . && trio-lifespan check")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_the_readme_test_snippet_passes() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    snippet = next(block for block in blocks if "open_client" in block)
    program = (
        "import sys, trio, trio_lifespan\n"
        "sys.path.insert(0, 'docs/examples')\n"
        "from crashing_app import app\n"
        f"{snippet}\n"
        "trio.run(test_users)\n"
        "print('passed')\n"
    )
    assert run_python("-c", program) == "passed\n"
