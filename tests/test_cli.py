"""``trio-lifespan check``: in-process for detail, in a subprocess for every status."""

from __future__ import annotations

import io
import json
import math
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_lifespan
from trio_lifespan import _cli
from trio_lifespan._cli import _check
from trio_lifespan._compat import BaseExceptionGroup
from trio_lifespan._demo import _Pool, app
from trio_lifespan._options import parse_seconds
from trio_lifespan._types import Message

from . import cli_apps

ROOT = Path(__file__).resolve().parent.parent


def check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = _cli.main(["check", "--app-dir", str(ROOT), *args], out=out)
    return status, out.getvalue()


def test_the_demo_app_is_the_default_and_asked_for_its_pages() -> None:
    status, out = check()
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == (
        "checking trio_lifespan._demo:app on asyncio "
        "(auto: the app does not use trio, and asyncio is uvicorn's default)"
    )
    assert re.fullmatch(r"startup   ok  +\d+\.\d ms  state: greeting, pool", lines[1])
    assert re.fullmatch(r"GET       200 +\d+\.\d ms  /  ok", lines[2])
    assert re.fullmatch(r"GET       200 +\d+\.\d ms  /health  ok", lines[3])
    assert re.fullmatch(r"shutdown  ok  +\d+\.\d ms", lines[4])
    assert lines[5:] == ["passed"]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_each_backend(backend: str) -> None:
    status, out = check("tests.cli_apps:good", "--backend", backend, "--get", "/")
    assert status == 0
    assert f"on {backend}" in out
    assert "state: db" in out


@pytest.mark.parametrize(
    ("args", "status", "line"),
    [
        (
            ["tests.cli_apps:startup_fails"],
            3,
            r"startup   FAILED  RuntimeError: the database is down",
        ),
        (
            ["tests.cli_apps:shutdown_fails"],
            4,
            r"shutdown  FAILED  LifespanShutdownFailed: the app reported",
        ),
        (
            ["tests.cli_apps:no_lifespan"],
            5,
            r"startup   FAILED  LifespanNotSupported: the app raised ValueError",
        ),
        (
            ["tests.cli_apps:never_starts", "--startup-timeout", "0"],
            6,
            r"startup   FAILED  LifespanTimeout: the app's startup did not complete within startup_timeout=0\.0",
        ),
        (
            ["tests.cli_apps:good", "--get", "/nope"],
            7,
            r"GET       404 +\d+\.\d ms  /nope  FAILED: expected 2xx or 3xx",
        ),
        (
            ["tests.cli_apps:good", "--get", "/", "--expect", "201"],
            7,
            r"GET       200 +\d+\.\d ms  /  FAILED: expected 201",
        ),
        (
            ["tests.cli_apps:good", "--get", "/boom"],
            7,
            r"GET       --- +\d+\.\d ms  /boom  FAILED: ValueError: handler exploded",
        ),
        (
            ["tests.cli_apps:good", "--get", "/silent"],
            7,
            r"GET       --- +\d+\.\d ms  /silent  FAILED: the app returned without sending a response",
        ),
        (
            ["tests.cli_apps:good", "--get", "/slow", "--request-timeout", "0"],
            6,
            r"GET       --- +\d+\.\d ms  /slow  FAILED: no response in time \(see --request-timeout\)",
        ),
        (
            [
                "tests.cli_apps:good",
                "--get",
                "/slow",
                "--request-timeout",
                "0",
                "--backend",
                "asyncio",
            ],
            6,
            r"GET       --- +\d+\.\d ms  /slow  FAILED: no response in time",
        ),
        (
            ["tests.cli_apps:wsgi_app"],
            2,
            r"startup   FAILED  LifespanNotASGIApp: the app could not be run: calling "
            r"it as app\(scope, receive, send\) failed with TypeError: wsgi_app\(\) "
            r"takes 2 positional arguments",
        ),
        (
            ["tests.cli_apps:good", "--get", "/exit"],
            7,
            r"GET       --- +\d+\.\d ms  /exit  FAILED: SystemExit: 0$",
        ),
        (
            ["tests.cli_apps:good", "--get", "/exit", "--backend", "asyncio"],
            7,
            r"GET       --- +\d+\.\d ms  /exit  FAILED: SystemExit: 0$",
        ),
        (
            ["tests.cli_apps:starlette_crashes", "--get", "/wait"],
            9,
            r"running   FAILED  RuntimeError: the cache refresher died$",
        ),
        (
            ["tests.cli_apps:breaks_protocol"],
            8,
            r"startup   FAILED  LifespanProtocolError: the app sent \{'type': 'lifespan\.startup\.ready'\}",
        ),
    ],
)
def test_each_failure_has_its_status_and_line(
    args: list[str], status: int, line: str
) -> None:
    got, out = check(*args)
    assert got == status
    assert any(re.match(line, text) for text in out.splitlines()), out
    assert out.splitlines()[-1] == f"failed (exit status {status})"


def test_state_keys_that_are_not_strings_are_shown_as_text() -> None:
    status, out = check("tests.cli_apps:odd_state_keys")
    assert status == 0, out
    assert re.search(r"state: \('a', 1\), 42, db$", out, re.MULTILINE), out


def test_allow_unsupported_runs_the_requests() -> None:
    status, out = check(
        "tests.cli_apps:no_lifespan", "--allow-unsupported", "--get", "/"
    )
    assert status == 0
    assert "(the app has no lifespan; allowed)" in out


def test_factory_and_dotted_attributes() -> None:
    assert check("tests.cli_apps:make_app", "--factory")[0] == 0
    assert check("tests.cli_apps:Settings.app")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nocolon"],
            "app reference 'nocolon' must look like 'module:attribute', for example 'myproject.main:app'",
        ),
        (
            ["tests.cli_apps:"],
            "app reference 'tests.cli_apps:' must look like 'module:attribute', for example 'myproject.main:app'",
        ),
        (
            ["tests.no_such_module:app"],
            "could not import module 'tests.no_such_module': ModuleNotFoundError: No module named 'tests.no_such_module'",
        ),
        (
            ["tests.cli_apps:missing"],
            "'tests.cli_apps:missing': module 'tests.cli_apps' has no attribute 'missing'",
        ),
        (
            ["tests.cli_apps:not_an_app"],
            "'tests.cli_apps:not_an_app' is an int, not an ASGI app (an async callable taking scope, receive and send)",
        ),
        (
            ["tests.cli_apps:not_an_app", "--factory"],
            "'tests.cli_apps:not_an_app' is an int, not a factory to call",
        ),
        (
            ["tests.cli_apps:broken_factory", "--factory"],
            "calling the factory 'tests.cli_apps:broken_factory' failed: KeyError: 'missing setting'",
        ),
    ],
)
def test_an_unusable_app_is_one_clear_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(*args)[0] == 2
    err = capsys.readouterr().err
    assert err == f"trio-lifespan: error: {message}\n"


def test_traceback_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert check("tests.cli_apps:broken_factory", "--factory", "--traceback")[0] == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert check("tests.cli_apps:startup_fails", "--traceback")[0] == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("RuntimeError: the database is down")


def test_json_is_one_document() -> None:
    status, out = check("tests.cli_apps:good", "--get", "/", "--get", "/nope", "--json")
    assert status == 7
    document = json.loads(out)
    assert document["ok"] is False
    assert document["exit_status"] == 7
    assert document["backend"] == "trio"
    assert document["app"] == "tests.cli_apps:good"
    assert document["startup"]["state_keys"] == ["db"]
    assert [(r["path"], r["status"], r["ok"]) for r in document["requests"]] == [
        ("/", 200, True),
        ("/nope", 404, False),
    ]
    assert document["shutdown"]["ok"] is True
    assert document["error"] is None


def test_json_reports_the_error() -> None:
    status, out = check("tests.cli_apps:startup_fails", "--json")
    assert status == 3
    document = json.loads(out)
    assert document["error"] == {
        "phase": "startup",
        "type": "RuntimeError",
        "message": "the database is down",
    }
    # A failed phase says how long it ran, as a passed one does.
    assert document["startup"] == {
        "ok": False,
        "seconds": document["startup"]["seconds"],
    }
    assert 0 <= document["startup"]["seconds"] < 5
    assert document["shutdown"] is None


def test_a_failed_request_says_why_with_the_start_of_its_body() -> None:
    status, out = check(
        "tests.cli_apps:not_ready", "--get", "/ready", "--get", "/binary", "--json"
    )
    assert status == 7
    ready, binary = json.loads(out)["requests"]
    assert ready["problem"] == "expected 2xx or 3xx; the body: 'migrations pending'"
    assert ready["response"] == {
        "headers": [["content-type", "text/plain"], ["x-reason", "migrations"]],
        "body": "migrations pending\n",
        "body_bytes": 19,
    }
    assert binary["problem"] == "expected 2xx or 3xx; the body: 300 bytes, not text"
    assert binary["response"]["body"] is None
    assert binary["response"]["body_bytes"] == 300
    status, out = check(
        *("tests.cli_apps:not_ready", "--get", "/long", "--get", "/cut"),
        *("--get", "/control", "--get", "/trailers"),
    )
    assert status == 7
    long, cut, control, trailers = [
        line.split("FAILED: ", 1)[1] for line in out.splitlines() if "FAILED" in line
    ]
    assert long == f"expected 2xx or 3xx; the body: '{'x' * 200}...'"
    # (a character cut at the bound is left out, not shown broken)
    assert cut == f"expected 2xx or 3xx; the body: '{'x' * 199}...'"
    assert control == "expected 2xx or 3xx; the body: 3 bytes, not text"
    assert trailers == "expected 2xx or 3xx; the body: 'late'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--app-dir", ".", "--get", "/"],
            "argument --app-dir: given twice: give it once",
        ),
        (
            ["--get", "/", "--header", "x-name: \u2603"],
            "argument --header: 'x-name: \u2603': a header's value is sent as "
            "Latin-1 bytes, and '\u2603' is not Latin-1: percent-encode it, or "
            "leave it out",
        ),
        (
            ["--request", "POST", "/echo", "--data", "a\udcffb"],
            "argument --data: is not UTF-8 text: give the body as text (bytes "
            "that are not UTF-8 cannot be passed this way)",
        ),
    ],
)
def test_bad_input_is_a_usage_error_before_the_app_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check("tests.cli_apps:echo", *args, "--json")
    assert status == 2
    document = json.loads(out)
    assert document["error"] == {
        "phase": "usage",
        "type": "UsageError",
        "message": message,
    }
    assert document["startup"] is None  # the app was not started
    assert capsys.readouterr().err.endswith(f"error: {message}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--startup-timeout", "-1"], "'-1' must be zero or more seconds"),
        (
            ["--shutdown-timeout", "soon"],
            "'soon' is not a number of seconds (or 'none')",
        ),
        (["--expect", "abc"], "'abc' is not an HTTP status (100-599)"),
        (["--backend", "curio"], "invalid choice: 'curio'"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(*args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: trio-lifespan check "), err
    assert message in err


def test_none_means_no_limit() -> None:
    status, _ = check(
        "--startup-timeout",
        "none",
        "--shutdown-timeout",
        "inf",
        "--request-timeout",
        "none",
        "--get",
        "/",
    )
    assert status == 0


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli.main(["check", "--help"])
    out = capsys.readouterr().out
    for status in range(2, 9):
        assert re.search(rf"^  {status}  \S", out, flags=re.MULTILINE), status


# The real command, in a subprocess ---------------------------------------------

STATUSES = {
    0: [],
    2: ["tests.cli_apps:not_an_app"],
    3: ["tests.cli_apps:startup_fails"],
    4: ["tests.cli_apps:shutdown_fails"],
    5: ["tests.cli_apps:no_lifespan"],
    6: ["tests.cli_apps:never_starts", "--startup-timeout", "0"],
    7: ["--get", "/missing"],
    8: ["tests.cli_apps:breaks_protocol"],
    9: ["tests.cli_apps:starlette_crashes", "--get", "/wait"],
    10: ["tests.cli_apps:asyncio_tasks", "--backend", "trio"],
}


@pytest.mark.parametrize("status", list(STATUSES))
def test_the_installed_command_exits_with_each_status(status: int) -> None:
    done = subprocess.run(
        ["trio-lifespan", "check", *STATUSES[status]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode == status, done.stdout + done.stderr
    if status == 2:
        assert done.stdout == ""
        assert done.stderr.startswith("trio-lifespan: error: ")
        assert "Traceback" not in done.stderr
    else:
        last = "passed" if status == 0 else f"failed (exit status {status})"
        assert done.stdout.splitlines()[-1] == last


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_lifespan", "check", "--get", "/health", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["requests"][0]["status"] == 200


def test_streamed_responses_complete() -> None:
    status, out = check("tests.cli_apps:good", "--get", "/stream", "--get", "/?q=1")
    assert status == 0, out


def test_the_console_script_and_dash_m_entry_points(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["trio-lifespan", "check", "--get", "/"])
    with pytest.raises(SystemExit) as caught:
        _cli.console_script()
    assert caught.value.code == 0
    monkeypatch.setattr(
        sys, "argv", ["python -m trio_lifespan", "check", "--get", "/x"]
    )
    # Without pytest's import hook: it rewrites the asserts of packages that
    # have a pytest plugin (ours), and cannot hand runpy a module's code.
    monkeypatch.setattr(
        sys,
        "meta_path",
        [
            finder
            for finder in sys.meta_path
            if "AssertionRewrit" not in type(finder).__name__
        ],
    )
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("trio_lifespan", run_name="__main__")
    assert caught.value.code == 7
    assert capsys.readouterr().out.count("checking trio_lifespan._demo:app") == 2


def test_the_demo_app_directly() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("not called")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        await app({"type": "websocket"}, receive, send)
        assert sent == []
        pool = _Pool()
        pool.close()
        await app(
            {"type": "http", "path": "/health", "state": {"pool": pool}}, receive, send
        )
        assert sent[0]["status"] == 503
        assert sent[1]["body"] == b'{"healthy": false}'

    trio.run(main)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("none", math.inf), ("INF", math.inf), ("0", 0.0), ("1.5", 1.5), (" 2 ", 2.0)],
)
def test_parse_seconds_reads_a_limit(text: str, seconds: float) -> None:
    assert parse_seconds("limit", text) == seconds


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("soon", TypeError, "limit must be a number of seconds or 'none', not 'soon'"),
        (
            " none",
            TypeError,
            "limit must be a number of seconds or 'none', not ' none'",
        ),
        (
            "-1",
            ValueError,
            "limit must be a non-negative number of seconds or 'none', not '-1'",
        ),
        (
            "nan",
            ValueError,
            "limit must be a non-negative number of seconds or 'none', not 'nan'",
        ),
        (
            "-inf",
            ValueError,
            "limit must be a non-negative number of seconds or 'none', not '-inf'",
        ),
    ],
)
def test_parse_seconds_refuses_what_the_options_refuse(
    text: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        parse_seconds("limit", text)


# --json: one document on stdout, whatever happens ------------------------------


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["trio-lifespan", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent)},
    )


def test_json_keeps_what_the_app_prints_off_stdout() -> None:
    done = run_command(
        "check", "tests.cli_apps:noisy_app", "--factory", "--get", "/", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert done.stderr == "making the app\nstarting up\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nocolon"], "app reference 'nocolon' must look like 'module:attribute'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--get", "health"], "argument --get: 'health' must start with /"),
        (["--backend", "curio"], "argument --backend: invalid choice: 'curio'"),
    ],
)
def test_json_usage_errors_are_a_document_too(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check(*args, "--json")
    assert status == 2
    document = json.loads(out)
    assert document["exit_status"] == 2
    assert document["ok"] is False
    assert document["error"]["phase"] == "usage"
    assert document["error"]["message"].startswith(message)
    assert message in capsys.readouterr().err


def test_json_usage_error_before_the_command_is_read() -> None:
    done = run_command("--json")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert (document["app"], document["backend"]) == (None, None)
    assert "required: COMMAND" in document["error"]["message"]


# Hints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "phase", "error"),
    [
        ("asyncio_tasks", "startup", "RuntimeError: no running event loop"),
        ("asyncio_awaits", "startup", "TypeError: trio.run received unrecognized"),
    ],
)
def test_an_asyncio_only_app_forced_on_trio_is_a_wrong_backend(
    app: str, phase: str, error: str
) -> None:
    got, out = check(f"tests.cli_apps:{app}", "--backend", "trio")
    assert got == 10
    assert f"{phase:<9} FAILED  the app needs asyncio, not trio: {error}" in out
    assert "hint      the app seems to need asyncio: try --backend asyncio\n" in out
    assert check(f"tests.cli_apps:{app}", "--backend", "asyncio")[0] == 0
    got, out = check(f"tests.cli_apps:{app}", "--backend", "trio", "--json")
    document = json.loads(out)
    assert document["exit_status"] == 10
    assert document["error"]["type"] == "WrongBackend"
    assert document["error"]["needs"] == "asyncio"
    assert document["error"]["message"].startswith("the app needs asyncio, not trio: ")


def test_a_request_that_needs_asyncio_gets_the_hint_once() -> None:
    status, out = check(
        "tests.cli_apps:asyncio_handler",
        "--backend",
        "trio",
        "--get",
        "/",
        "--get",
        "/",
    )
    assert status == 10
    assert out.count("hint") == 1
    assert "/  FAILED: the app needs asyncio, not trio: " in out
    status, out = check(
        "tests.cli_apps:asyncio_handler",
        "--backend",
        "trio",
        "--get",
        "/",
        "--get",
        "/",
        "--json",
    )
    assert json.loads(out)["hints"] == [
        "the app seems to need asyncio: try --backend asyncio"
    ]


def test_the_hint_looks_through_causes_contexts_and_groups() -> None:
    inner = RuntimeError("no running event loop")
    group = BaseExceptionGroup("several", [ValueError("x"), inner])
    outer = KeyError("wrapped")
    outer.__cause__ = outer.__context__ = group
    checked = _check.Check([], 1, 1, 1, False, False)
    assert _check.hint_for(outer, checked) == (
        "the app seems to need asyncio: try --backend asyncio"
    )
    checked.backend = "asyncio"
    assert _check.hint_for(outer, checked) == ""


def test_a_factory_without_factory_is_told_about_it() -> None:
    status, out = check("tests.cli_apps:make_app")
    assert status == 2
    assert (
        "hint      if the app is made by calling that function, pass --factory" in out
    )


def test_the_not_supported_message_names_the_option() -> None:
    status, out = check("tests.cli_apps:no_lifespan", "--json")
    assert status == 5
    message = json.loads(out)["error"]["message"]
    assert message.endswith("to run it anyway, pass --allow-unsupported.")
    assert "allow_unsupported=True" not in message


@pytest.mark.parametrize(
    ("app_dir", "problem"),
    [("no_such_folder", "does not exist"), ("setup.cfg", "is not a folder")],
)
def test_app_dir_must_be_a_folder(
    app_dir: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(ROOT / app_dir)
    assert _cli.main(["check", "--app-dir", path]) == 2
    assert capsys.readouterr().err == (
        f"trio-lifespan: error: --app-dir {path!r}: {problem}\n"
    )


# Messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "tests.cli_apps:container.nope",
            "'tests.cli_apps:container' (a Container) has no attribute 'nope'",
        ),
        (
            "tests.cli_apps:Settings.nope",
            "'tests.cli_apps:Settings' (a class) has no attribute 'nope'",
        ),
    ],
)
def test_a_missing_attribute_names_the_path_it_is_missing_from(
    reference: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(reference)[0] == 2
    assert capsys.readouterr().err == (
        f"trio-lifespan: error: {reference!r}: {message}\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--get", "health"],
            "argument --get: 'health' must start with /, as in --get /health",
        ),
        (
            ["--get", "http://host/health?full=1"],
            "argument --get: 'http://host/health?full=1' is a URL: give its path, --get /health?full=1",
        ),
        (
            ["--request", "post", "https://host"],
            "argument --request: 'https://host' is a URL: give its path, --request POST /",
        ),
        (
            ["--request", "post", "items"],
            "argument --request: 'items' must start with /, as in --request POST /items",
        ),
        (
            ["--request", "/items", "POST"],
            "argument --request: '/items' is not an HTTP method (GET, POST...)",
        ),
        (
            ["--header", "x-token"],
            "argument --header: 'x-token' is not a header: give NAME:VALUE",
        ),
        (
            ["tests.cli_apps:good", "--expect", "200"],
            "--expect applies to the requests, and none is sent: add --get PATH or --request METHOD PATH",
        ),
        (["tests.cli_apps:good", "--data", "x"], "--data applies to the requests"),
        (
            ["tests.cli_apps:good", "--header", "a:b"],
            "--header applies to the requests",
        ),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_show_the_check_usage_and_the_fix(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(*args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: trio-lifespan check "), err
    assert f"\ntrio-lifespan check: error: {message}" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _cli.main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"trio-lifespan {trio_lifespan.__version__}\n"


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_is_one_line_and_status_130(
    as_json: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "check_on", interrupted)
    status, out = check(
        "--backend", "trio", "--get", "/", *(["--json"] if as_json else [])
    )
    assert status == 130
    assert capsys.readouterr().err == "trio-lifespan: interrupted (Ctrl-C)\n"
    if as_json:
        assert json.loads(out)["error"]["type"] == "KeyboardInterrupt"
    else:
        assert out.splitlines() == ["checking trio_lifespan._demo:app on trio"]


@pytest.mark.integration  # (the installed command, in real time)
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_ctrl_c_in_the_real_command(backend: str) -> None:
    command = subprocess.Popen(
        [
            "trio-lifespan",
            "check",
            "tests.cli_apps:good",
            "--get",
            "/slow",
            "--request-timeout",
            "none",
            "--backend",
            backend,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert command.stdout is not None
    while not command.stdout.readline().startswith("startup"):
        pass  # pragma: no cover - the line after "checking"
    time.sleep(0.2)  # the request is under way
    command.send_signal(signal.SIGINT)
    _, err = command.communicate(timeout=30)
    assert command.returncode == 130
    assert err == "trio-lifespan: interrupted (Ctrl-C)\n"


# --traceback, and requests beyond GET ---------------------------------------------


def test_traceback_of_a_request_that_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert check("tests.cli_apps:good", "--get", "/boom", "--traceback")[0] == 7
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("ValueError: handler exploded")


def test_requests_with_methods_headers_and_data() -> None:
    cli_apps.echoed.clear()
    status, out = check(
        "tests.cli_apps:echo",
        "--header",
        "Content-Type: application/json",
        "--header",
        "host:example.com",
        "--data",
        '{"name": "é"}',
        "--request",
        "post",
        "/items",
        "--get",
        "/items?page=2",
    )
    assert status == 0, out
    assert re.search(r"^POST      201 +\d+\.\d ms  /items  ok$", out, re.MULTILINE)
    assert re.search(r"^GET       200 +\d+\.\d ms  /items\?page=2  ok$", out, re.M)
    body = '{"name": "é"}'.encode()
    headers = [
        (b"user-agent", b"trio-lifespan"),
        (b"content-type", b"application/json"),
        (b"host", b"example.com"),
        (b"content-length", str(len(body)).encode()),
    ]
    assert cli_apps.echoed == [
        {"method": "POST", "path": "/items", "headers": headers, "body": body},
        {"method": "GET", "path": "/items", "headers": headers, "body": body},
    ]


def test_a_given_content_length_is_kept_and_statuses_apply() -> None:
    cli_apps.echoed.clear()
    status, out = check(
        "tests.cli_apps:echo",
        "--data",
        "abc",
        "--header",
        "Content-Length: 3",
        "--expect",
        "200",
        "--request",
        "PUT",
        "/x",
        "--request",
        "POST",
        "/x",
        "--json",
    )
    assert status == 7
    document = json.loads(out)
    assert [(r["method"], r["status"], r["ok"]) for r in document["requests"]] == [
        ("PUT", 200, True),
        ("POST", 201, False),
    ]
    assert cli_apps.echoed[0]["headers"][-1] == (b"content-length", b"3")


# Every message of the issue, from the installed command ------------------------------

MESSAGES = [
    pytest.param(
        ["check", "tests.cli_apps:asyncio_tasks", "--backend", "trio"],
        10,
        "hint      the app seems to need asyncio: try --backend asyncio",
        id="asyncio-only app on trio",
    ),
    pytest.param(
        ["check", "tests.cli_apps:no_lifespan"],
        5,
        "to run it anyway, pass --allow-unsupported.",
        id="not supported names the option",
    ),
    pytest.param(
        ["check", "tests.cli_apps:make_app"],
        2,
        "--factory",
        id="a factory without --factory",
    ),
    pytest.param(
        ["check", "--app-dir", "/nonexistent", "tests.cli_apps:good"],
        2,
        "does not exist",
        id="a missing --app-dir",
    ),
    pytest.param(
        ["check", "tests.cli_apps:container.nope"],
        2,
        "has no attribute 'nope'",
        id="a missing attribute on a container",
    ),
    pytest.param(
        ["check", "tests.cli_apps:not_an_app"],
        2,
        "is an int, not an ASGI app",
        id="not an app: a/an",
    ),
    pytest.param(
        ["check", "--get", "health"],
        2,
        "'health' must start with /, as in --get /health",
        id="a path without its slash",
    ),
    pytest.param(
        ["check", "--get", "http://host/health"],
        2,
        "is a URL: give its path, --get /health",
        id="a URL instead of a path",
    ),
    pytest.param(
        ["check", "tests.cli_apps:good", "--expect", "200"],
        2,
        "--expect",
        id="--expect without a request",
    ),
    pytest.param(
        ["check", "--bogus"],
        2,
        "usage: trio-lifespan check",
        id="an unknown option shows check's usage",
    ),
    pytest.param(
        ["check", "tests.cli_apps:good", "--get", "/boom", "--traceback"],
        7,
        "ValueError: handler exploded",
        id="--traceback shows a request's traceback",
    ),
    pytest.param(
        [
            "check",
            "tests.cli_apps:echo",
            "--request",
            "POST",
            "/echo",
            "--header",
            "x-token: 1",
            "--data",
            "hello",
        ],
        0,
        "POST",
        id="--request with --header and --data",
    ),
    pytest.param(["--version"], 0, "trio-lifespan ", id="--version"),
    pytest.param(
        ["check", "tests.cli_apps:good", "--app-dir", ".", "--app-dir", "tests"],
        2,
        "argument --app-dir: given twice: give it once",
        id="an option that takes one value, given twice",
    ),
    pytest.param(
        [
            "check",
            "tests.cli_apps:good",
            "--get",
            "/",
            "--expect",
            "200",
            "--expect",
            "201",
        ],
        2,
        "argument --expect: given twice for --get /: give it once",
        id="--expect given twice",
    ),
    pytest.param(
        ["check", "tests.cli_apps:echo", "--get", "/", "--header", "x-name: \u2603"],
        2,
        "is not Latin-1: percent-encode it, or leave it out",
        id="a header value that cannot be sent",
    ),
    pytest.param(
        # (bytes that are not UTF-8 reach Python as surrogates, as here)
        [
            "check",
            "tests.cli_apps:echo",
            "--request",
            "POST",
            "/echo",
            "--data",
            "a\udcffb",
        ],
        2,
        "argument --data: is not UTF-8 text",
        id="a body that is not UTF-8",
    ),
]


@pytest.mark.parametrize(("args", "status", "shown"), MESSAGES)
def test_each_message_from_the_installed_command(
    args: list[str], status: int, shown: str
) -> None:
    done = run_command(*args)
    assert done.returncode == status, done.stdout + done.stderr
    assert shown in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr or "--traceback" in args


@pytest.mark.parametrize(
    ("given", "scope"),
    [
        ("/caf%C3%A9", ("/café", b"/caf%C3%A9", b"")),
        # typed as text: sent percent-encoded, as a client sends it
        ("/café?q=é", ("/café", b"/caf%C3%A9", b"q=%C3%A9")),
        ("/items/a%20b?x=1", ("/items/a b", b"/items/a%20b", b"x=1")),
    ],
)
def test_a_requests_path_is_decoded_as_a_server_decodes_it(
    given: str, scope: tuple[str, bytes, bytes]
) -> None:
    # (tests/test_servers.py checks these rules against uvicorn and hypercorn)
    status, out = check("tests.cli_apps:scope_echo", "--get", given, "--json")
    assert status == 0
    assert json.loads(out)["requests"][0]["response"]["body"] == json.dumps(
        {
            "path": scope[0],
            "raw_path": scope[1].decode(),
            "query_string": scope[2].decode(),
        }
    )


def documented_json() -> dict[str, Any]:
    """The example document of docs/howto/cli.rst."""
    text = (ROOT / "docs" / "howto" / "cli.rst").read_text()
    block = text.split("checks a real document against this one, key\nby key)::\n")[1]
    lines: list[str] = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    parsed: dict[str, Any] = json.loads("\n".join(lines))
    return parsed


def same_shape(ours: Any, documented: Any, where: str = "") -> None:
    """``ours`` has the keys, nesting and types of ``documented``."""
    kind = type(documented)  # pyright: ignore[reportUnknownVariableType]  # (compared, not narrowed)
    if documented is None:
        return
    assert type(ours) is kind, where
    if kind is dict:
        assert sorted(ours) == sorted(documented), where
        for key in documented:
            same_shape(ours[key], documented[key], f"{where}.{key}")
    elif kind is list and documented:
        assert ours, where
        for each in ours:
            same_shape(each, documented[0], f"{where}[]")


def test_the_json_document_is_the_documented_one() -> None:
    status, out = check("tests.cli_apps:not_ready", "--get", "/ready", "--json")
    assert status == 7
    document = json.loads(out)
    documented = documented_json()
    assert document["version"] == documented["version"] == 1
    same_shape(document, documented)
