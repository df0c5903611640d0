"""``trio-lifespan check`` in a deploy pipeline: the backend it picks, each
request's own expectations, and what a failure says (issue 22).

The installed command runs in a subprocess against a FastAPI app that needs
asyncio, a quart-trio app, a Starlette app that awaits trio and a Starlette
app whose readiness route fails (tests/deploy_asyncio.py, deploy_trio.py).
"""

from __future__ import annotations

import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from trio_lifespan import _cli
from trio_lifespan._cli import _auto, _check
from trio_lifespan._cli._check import Response

from . import cli_apps
from .test_cli import check, run_command

#: The tests that run the installed command in a subprocess: whole processes,
#: run with the integration tier (the rest run the check in-process).
whole_process = pytest.mark.integration

ASYNCIO_AUTO = "auto: the app does not use trio, and asyncio is uvicorn's default"


def document(*args: str, status: int) -> dict[str, Any]:
    """The ``--json`` document of the installed command, which exits ``status``."""
    done = run_command("check", *args, "--json")
    assert done.returncode == status, done.stdout + done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


# --backend auto ------------------------------------------------------------------


@whole_process
def test_an_asyncio_fastapi_app_passes_with_no_flag() -> None:
    done = run_command("check", "tests.deploy_asyncio:app", "--get", "/health")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"checking tests.deploy_asyncio:app on asyncio ({ASYNCIO_AUTO})"
    assert lines[-1] == "passed"
    got = document("tests.deploy_asyncio:app", "--get", "/health", status=0)
    assert (got["backend"], got["backend_auto"]) == ("asyncio", ASYNCIO_AUTO[6:])


@pytest.mark.parametrize(
    ("app", "path"),
    [
        ("tests.deploy_trio:app", "/health"),
        ("tests.deploy_trio:starlette_app", "/ping"),
    ],
    ids=["quart-trio", "starlette awaiting trio"],
)
@whole_process
def test_a_trio_app_passes_with_no_flag(app: str, path: str) -> None:
    done = run_command("check", app, "--get", path)
    assert done.returncode == 0, done.stdout + done.stderr
    first = f"checking {app} on trio (auto: tests.deploy_trio uses trio)"
    assert done.stdout.splitlines()[0] == first
    got = document(app, "--get", path, status=0)
    assert got["backend_auto"] == "tests.deploy_trio uses trio"
    assert got["backend"] == "trio"


def test_a_named_backend_is_not_auto() -> None:
    got = document("tests.deploy_trio:app", "--backend", "trio", status=0)
    assert (got["backend"], got["backend_auto"]) == ("trio", None)


WRONG = [
    pytest.param(
        "tests.deploy_asyncio:app",
        "trio",
        "asyncio",
        "RuntimeError: no running event loop",
        id="fastapi on trio",
    ),
    pytest.param(
        "tests.deploy_trio:app",
        "asyncio",
        "trio",
        "AttributeError: 'RunContext' object has no attribute 'runner'",
        id="quart-trio on asyncio",
    ),
    pytest.param(
        "tests.deploy_trio:starlette_app",
        "asyncio",
        "trio",
        "AttributeError: 'RunContext' object has no attribute 'runner'",
        id="starlette awaiting trio on asyncio",
    ),
]


@whole_process
@pytest.mark.parametrize(("app", "forced", "needs", "said"), WRONG)
def test_a_forced_wrong_backend_is_reported_as_that(
    app: str, forced: str, needs: str, said: str
) -> None:
    done = run_command("check", app, "--backend", forced)
    assert done.returncode == 10, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"startup   FAILED  the app needs {needs}, not {forced}: {said}",
        f"hint      the app seems to need {needs}: try --backend {needs}",
        "failed (exit status 10)",
    ]
    got = document(app, "--backend", forced, status=10)
    assert got["error"] == {
        "phase": "startup",
        "type": "WrongBackend",
        "message": f"the app needs {needs}, not {forced}: {said}",
        "needs": needs,
    }
    assert got["startup"]["ok"] is False
    assert got["hints"] == [f"the app seems to need {needs}: try --backend {needs}"]


def test_a_request_that_needs_trio_is_a_wrong_backend_too() -> None:
    # The app starts on asyncio (its lifespan is plain), its handler needs trio.
    status, out = check(
        "tests.cli_apps:trio_handler", "--backend", "asyncio", "--get", "/"
    )
    assert status == 10, out
    assert "/  FAILED: the app needs trio, not asyncio: " in out
    assert "hint      the app seems to need trio: try --backend trio" in out


class _TrioThing:
    pass


_TrioThing.__module__ = "trio._core"


@pytest.mark.parametrize(
    ("loaded", "names", "app_module", "chosen"),
    [
        ({"trio", "httpcore"}, {}, "m", None),
        ({"m.helpers"}, {}, "m", ("trio", "m.helpers uses trio")),
        (set[str](), {"trio": types.ModuleType("trio")}, "m", ("trio", "m uses trio")),
        (set[str](), {"x": _TrioThing}, "m", ("trio", "m uses trio")),
        (set[str](), {}, "quart_trio.app", ("trio", "quart_trio.app uses trio")),
        (set[str](), {"asyncio": types.ModuleType("asyncio")}, "m", None),
    ],
    ids=[
        "trio loaded by a library",
        "a module of the app's package",
        "imports trio",
        "binds trio's",
        "quart-trio class",
        "asyncio",
    ],
)
def test_auto_chooses_by_what_the_app_uses(
    loaded: set[str],
    names: dict[str, object],
    app_module: str,
    chosen: tuple[str, str] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("m")
    vars(module).update(names)
    monkeypatch.setitem(sys.modules, "m", module)
    helpers = types.ModuleType("m.helpers")
    helpers.trio = types.ModuleType("trio")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "m.helpers", helpers)
    app_class = type("App", (), {"__module__": app_module})
    expected = chosen or ("asyncio", ASYNCIO_AUTO[6:])
    assert _auto.choose("m:app", app_class(), loaded) == expected


def test_auto_ignores_a_module_it_cannot_find() -> None:
    app = type("App", (), {"__module__": "not.imported.anywhere"})()
    assert _auto.choose("nowhere:app", app, set())[0] == "asyncio"


# Each request its own expectations -------------------------------------------------


def test_each_request_with_its_own_expectations_in_one_run() -> None:
    args = [
        "tests.deploy_asyncio:app",
        "--header",
        "accept: application/json",
        "--get",
        "/health",
        "--expect-body",
        '"ok"',
        "--request",
        "POST /items",
        "--expect",
        "401",
        "--request",
        "POST",
        "/items",
        "--header",
        "authorization: Bearer x",
        "--expect",
        "201",
        "--expect-header",
        "content-type:application/json",
        "--get",
        "/items",
        "--expect-header",
        "content-length",
    ]
    got = document(*args, status=0)
    assert [(r["method"], r["status"], r["ok"]) for r in got["requests"]] == [
        ("GET", 200, True),
        ("POST", 401, True),
        ("POST", 201, True),
        ("GET", 200, True),
    ]
    assert [r["expect"] for r in got["requests"]] == [
        {"status": None, "headers": [], "body": '"ok"'},
        {"status": 401, "headers": [], "body": None},
        {
            "status": 201,
            "headers": [["content-type", "application/json"]],
            "body": None,
        },
        {"status": None, "headers": [["content-length", None]], "body": None},
    ]


def test_each_unmet_expectation_says_why() -> None:
    args = [
        "tests.deploy_asyncio:app",
        "--get",
        "/health",
        "--expect-header",
        "content-type:text/plain",
        "--expect-header",
        "x-ready",
        "--expect-header",
        "x-version:2",
        "--expect-body",
        "ready",
        "--request",
        "POST /items",
        "--get",
        "/items",
        "--expect",
        "404",
        "--get",
        "/items",
    ]
    status, out = check(*args)
    assert status == 7
    lines = out.splitlines()
    assert lines[2].endswith(
        "/health  FAILED: expected content-type: text/plain; got 'application/json'; "
        "expected a x-ready header; none came; expected x-version: 2; none came; "
        "expected the body to contain 'ready'; the body: '{\"status\":\"ok\"}'"
    )
    assert lines[3].endswith(
        "/items  FAILED: expected 2xx or 3xx; the body: "
        '\'{"detail":"not authenticated"}\''
    )
    assert lines[4].endswith("/items  FAILED: expected 404; the body: '[{\"id\":1}]'")
    assert lines[5].endswith("/items  ok")
    got = document(*args, status=7)
    assert [r["ok"] for r in got["requests"]] == [False, False, False, True]


def test_the_app_may_follow_a_request_in_process() -> None:
    status, out = check("--request", "GET", "/", "tests.cli_apps:good")
    assert status == 0, out
    assert out.startswith("checking tests.cli_apps:good on trio (auto: ")


@whole_process
def test_a_readiness_route_says_why_it_failed() -> None:
    args = ["tests.deploy_asyncio:not_ready", "--get", "/health", "--get", "/ready"]
    done = run_command("check", *args)
    assert done.returncode == 7
    assert done.stdout.splitlines()[3].endswith(
        "/ready  FAILED: expected 2xx or 3xx; the body: 'migrations pending'"
    )
    got = document(*args, status=7)
    ready = got["requests"][1]
    assert (ready["status"], ready["ok"]) == (503, False)
    assert ready["response"]["body"] == "migrations pending"
    assert ["content-type", "text/plain; charset=utf-8"] in ready["response"]["headers"]
    assert got["requests"][0]["ok"] is True
    assert got["shutdown"]["ok"] is True


def test_options_before_the_first_request_are_for_every_request() -> None:
    status, out = check(
        "tests.cli_apps:echo",
        "--expect",
        "200",
        "--header",
        "x-a: 1",
        "--header",
        "x-b: 2",
        "--data",
        "every",
        "--expect-header",
        "x-seen",
        "--get",
        "/one",
        "--request",
        "POST",
        "/two",
        "--header",
        "x-b: own",
        "--data",
        "own",
        "--expect",
        "201",
        "--expect-header",
        "x-seen:yes",
        "--json",
    )
    assert status == 0, out
    requests = json.loads(out)["requests"]
    assert [r["expect"] for r in requests] == [
        {"status": 200, "headers": [["x-seen", None]], "body": None},
        {"status": 201, "headers": [["x-seen", "yes"]], "body": None},
    ]
    sent = cli_apps.echoed[-2:]
    assert [e["body"] for e in sent] == [b"every", b"own"]
    assert [[(n, v) for n, v in e["headers"] if n.startswith(b"x-")] for e in sent] == [
        [(b"x-a", b"1"), (b"x-b", b"2")],
        [(b"x-a", b"1"), (b"x-b", b"own")],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--get", "/", "--expect", "200", "--expect", "201"],
            "argument --expect: given twice for --get /: give it once",
        ),
        (
            ["--data", "a", "--data", "b", "--get", "/"],
            "argument --data: given twice before any request: give it once",
        ),
        (
            ["--request", "POST /x", "--expect-body", "a", "--expect-body", "b"],
            "argument --expect-body: given twice for --request POST /x: give it once",
        ),
        (
            ["--request", "POST"],
            "argument --request: 'POST': give one METHOD and one PATH, as in "
            "--request POST /items or --request 'POST /items'",
        ),
        (
            ["--request", "GET /a b"],
            "argument --request: 'GET /a b': give one METHOD and one PATH, as in "
            "--request POST /items or --request 'POST /items'",
        ),
        (
            ["--get", "/caf\udcc3"],
            "argument --get: '/caf\\udcc3' is not UTF-8 text: give it as text",
        ),
        (
            ["--get", "/", "--expect-body", "\udcff"],
            "argument --expect-body: '\\udcff' is not UTF-8 text: give it as text",
        ),
        (
            ["--get", "/", "--jso"],
            "unrecognized arguments: --jso",
        ),
        (["--request", "POST", "/x", "/y"], "unrecognized arguments: /y"),
        (
            ["--request", "P0ST /x"],
            "argument --request: 'P0ST' is not an HTTP method (GET, POST...)",
        ),
        (
            ["--get", "/", "--expect-header", "a b"],
            "argument --expect-header: 'a b' is not a header to expect: give NAME "
            "(any value) or NAME:VALUE, as in --expect-header 'content-type: "
            "application/json'",
        ),
        (
            ["--expect-body", "x"],
            "--expect-body applies to the requests, and none is sent: add --get "
            "PATH or --request METHOD PATH",
        ),
    ],
)
def test_request_options_misused_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check("tests.cli_apps:echo", *args)
    assert status == 2
    assert out == ""
    assert capsys.readouterr().err.endswith(f"error: {message}\n")


@whole_process
def test_the_app_may_follow_a_request() -> None:
    done = run_command("check", "--request", "GET", "/", "tests.cli_apps:good")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("checking tests.cli_apps:good on trio")
    done = run_command("check", "--request", "GET /", "tests.cli_apps:good")
    assert done.returncode == 0, done.stdout + done.stderr


def test_options_for_every_request_reach_the_demo_pages() -> None:
    got = document("--expect", "200", "--expect-body", "{", status=0)
    assert [r["expect"]["status"] for r in got["requests"]] == [200, 200]
    got = document("--expect", "404", status=7)
    assert [r["ok"] for r in got["requests"]] == [False, False]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("at", [0, 5, 9, 13])
def test_the_expected_body_is_found_across_chunks(size: int, at: int) -> None:
    body = b"x" * at + b"needle" + b"y" * 5
    response = Response(needle=b"needle")
    for start in range(0, len(body), size):
        response.add(body[start : start + size])
    assert response.found
    missing = Response(needle=b"needle")
    for start in range(0, len(body), size):
        missing.add(body[start : start + size].replace(b"d", b"D"))
    assert not missing.found
    assert missing.length == len(body)


# Usage errors: the JSON has a hint ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--expect", "999"], "'trio-lifespan check --help' lists the options"),
        (["no_such_module_here:app"], "--traceback shows where it failed"),
        (
            ["tests.cli_apps:missing"],
            "name the app as uvicorn does, module:attribute, with --app-dir DIR "
            "for the folder to import it from (and --factory for a function that "
            "makes it)",
        ),
    ],
)
def test_a_usage_error_document_has_a_hint(args: list[str], hint: str) -> None:
    got = document(*args, status=2)
    assert got["error"]["phase"] == "usage"
    assert got["hints"] == [hint]
    assert got["startup"] is None


def test_expected_headers_match_as_a_person_reads_them() -> None:
    status, out = check(
        "tests.cli_apps:typed",
        "--get",
        "/",
        "--expect-header",
        "Content-Type: text/plain",
        "--expect-header",
        "content-type:TEXT/PLAIN; CHARSET=UTF-8",
        "--expect-header",
        "x-odd: sp aced",
        "--expect-header",
        "x-odd:",
        "--expect-body",
        "",
        "--json",
    )
    assert status == 0, out
    assert json.loads(out)["requests"][0]["expect"]["headers"] == [
        ["content-type", "text/plain"],
        ["content-type", "TEXT/PLAIN; CHARSET=UTF-8"],
        ["x-odd", "sp aced"],
        ["x-odd", None],
    ]
    status, out = check(
        "tests.cli_apps:typed", "--get", "/", "--expect-header", "content-type:text"
    )
    assert status == 7
    assert "expected content-type: text; got 'text/plain; charset=utf-8'" in out


def test_what_a_library_says_of_an_asyncio_object_on_trio() -> None:
    error = AttributeError("'NoneType' object has no attribute 'create_future'")
    assert _check.needs_other(error, "trio") == "asyncio"
    assert _check.needs_other(error, "asyncio") is None


def test_a_wrong_backend_in_a_request_wins_and_is_the_error() -> None:
    status, out = check(
        "tests.cli_apps:asyncio_handler",
        "--backend",
        "trio",
        "--get",
        "/missing",
        "--get",
        "/",
        "--json",
    )
    assert status == 10
    got = json.loads(out)
    assert [r["ok"] for r in got["requests"]] == [False, False]
    assert got["error"]["phase"] == "requests"
    assert got["error"]["type"] == "WrongBackend"
    assert got["error"]["needs"] == "asyncio"
    assert got["startup"]["ok"] is True
    assert got["shutdown"]["ok"] is True


def test_sys_exit_at_import_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(3)\n")
    got = json_of("--app-dir", str(tmp_path), "exits_at_import:app")
    assert got["exit_status"] == 2
    assert got["error"]["message"] == (
        "could not import module 'exits_at_import': SystemExit: 3"
    )
    assert got["hints"] == ["--traceback shows where it failed"]


def test_sys_exit_in_the_startup_is_the_startup_failing() -> None:
    status, out = check("tests.cli_apps:exits_in_startup")
    assert status == 3
    assert "startup   FAILED  SystemExit: 4" in out


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_lifespan_that_dies_under_the_requests_crashed_while_running(
    backend: str,
) -> None:
    status, out = check(
        "tests.cli_apps:dies_under_requests",
        "--backend",
        backend,
        "--get",
        "/",
        "--get",
        "/",
    )
    assert status == 9, out
    assert "running   FAILED  KeyError: 'pool'" in out


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ["tests.cli_apps:good", "--factory"],
            "if the reference names the app itself, not a function that makes it, "
            "leave out --factory",
        ),
    ],
)
def test_usage_hints_name_the_fix(args: list[str], hint: str) -> None:
    status, out = check(*args, "--json")
    assert status == 2
    assert json.loads(out)["hints"] == [hint]


def test_a_missing_app_dir_is_named_in_the_hint() -> None:
    got = json_of("--app-dir", "/nonexistent/folder", "tests.cli_apps:good")
    assert got["exit_status"] == 2
    assert got["hints"] == [
        "give --app-dir a folder that exists (the default is the current one)"
    ]


def json_of(*args: str) -> dict[str, Any]:
    """The ``--json`` document of ``check`` run in-process, without the
    ``--app-dir`` that :func:`check` gives."""
    out = io.StringIO()
    _cli.main(["check", *args, "--json"], out=out)
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


@whole_process
def test_json_stdout_is_one_document_whatever_the_app_writes_to_fd_1() -> None:
    done = run_command("check", "tests.cli_apps:writes_to_fd1", "--get", "/", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert "migrating...\n" in done.stderr
    done = run_command("check", "tests.cli_apps:writes_to_fd1", "--get", "/")
    assert done.stdout.splitlines()[1] == "migrating..."


def test_json_goes_to_the_real_stdout_and_fd_1_to_stderr(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(1, "w", closefd=False) as fd_1:  # (pytest's sys.stdout is not fd 1)
        monkeypatch.setattr(sys, "stdout", fd_1)
        status = _cli.main(
            ["check", "--app-dir", ".", "tests.cli_apps:writes_to_fd1", "--json"]
        )
        fd_1.flush()
    out, err = capfd.readouterr()
    assert status == 0
    assert json.loads(out)["ok"] is True
    assert "migrating...\n" in err
    os.write(1, b"fd 1 is stdout again\n")
    assert capfd.readouterr().out == "fd 1 is stdout again\n"


def test_json_into_a_stream_of_no_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    assert _cli.main(["check", "--json"]) == 0
    assert json.loads(stream.getvalue())["ok"] is True


def test_json_into_a_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "out.json").open("w+") as stream:
        monkeypatch.setattr(sys, "stdout", stream)
        assert _cli.main(["check", "--json"]) == 0
        stream.seek(0)
        assert json.load(stream)["ok"] is True
