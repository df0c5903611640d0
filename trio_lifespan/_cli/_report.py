"""Reporting: what the check saw, a line per step as it happens, or JSON at the end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .._errors import LifespanNotSupported
from ._exits import EXIT_OK

if TYPE_CHECKING:
    from ._check import Request, Response

#: The version of the ``--json`` document (docs/howto/cli.rst shows it).
JSON_VERSION = 1


@dataclass
class Report:
    """What the check saw, printed as it happens (or as JSON at the end).

    Attributes:
        app: The app's reference, as the command line named it (``""``
            until the command line is read).
        backend: The library the app runs on (``""`` until then).
        backend_reason: Why ``--backend auto`` chose it; ``""`` if the
            command line named it.
        as_json: Whether to print one JSON document at the end instead of lines.
        out: Where to print.
        phases: ``startup`` and ``shutdown``: how each went.
        requests: Each request: its path, status, duration and any problem.
        error: The failure that ended the check, if one did.
        hints: What to try, for the failures seen (each once, in order).
    """

    app: str
    backend: str
    as_json: bool
    out: TextIO
    backend_reason: str = ""
    phases: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    error: dict[str, Any] | None = None
    hints: list[str] = field(default_factory=list[str])

    def say(self, line: str) -> None:
        """Print ``line`` now, unless the report is JSON."""
        if not self.as_json:
            print(line, file=self.out, flush=True)

    def phase(self, name: str, seconds: float, **details: Any) -> None:
        """Record that the phase ``name`` went well, in ``seconds``.

        Args:
            name: ``startup`` or ``shutdown``.
            seconds: How long it took.
            **details: More to record: ``state_keys``, the names the startup
                set, and ``lifespan=False`` for an app allowed to lack one.
        """
        self.phases[name] = {"ok": True, "seconds": seconds, **details}
        extra = ""
        if "state_keys" in details:
            keys = details["state_keys"]
            extra = "  state: " + (", ".join(keys) if keys else "(empty)")
        if details.get("lifespan") is False:
            extra = "  (the app has no lifespan; allowed)"
        self.say(f"{name:<9} ok  {_ms(seconds)}{extra}")

    def request(
        self,
        request: Request,
        *,
        status: int | None,
        ok: bool,
        seconds: float,
        problem: str,
        response: Response | None = None,
    ) -> None:
        """Record one request.

        Args:
            request: The request, with what was expected of it.
            status: The status the app sent, or ``None`` if it sent none.
            ok: Whether the request went as expected.
            seconds: How long it took.
            problem: What went wrong, or ``""``.
            response: What came back, if a response started.
        """
        method, path = request.method, request.path
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "expect": request.expected(),
            "status": status,
            "ok": ok,
            "seconds": seconds,
            "problem": problem or None,
        }
        if response is not None and status is not None:
            entry["response"] = {
                "headers": [list(pair) for pair in response.headers],
                # (its first characters, or None for a body that is not text)
                "body": response.text() if response.length else "",
                "body_bytes": response.length,
            }
        self.requests.append(entry)
        shown = "---" if status is None else str(status)
        verdict = "ok" if ok else f"FAILED: {problem}"
        self.say(f"{method:<9} {shown:<4}{_ms(seconds)}  {path}  {verdict}")

    def failure(self, phase: str, exc: BaseException, seconds: float) -> None:
        """Record the failure that ended the check, in ``phase``, ``seconds``
        after the phase began."""
        message = str(exc)
        if isinstance(exc, LifespanNotSupported):  # say it as the option
            message = message.replace("allow_unsupported=True", "--allow-unsupported")
        text = f"{type(exc).__name__}: {message}"
        self.error = {"phase": phase, "type": type(exc).__name__, "message": message}
        self.phases.setdefault(phase, {"ok": False, "seconds": seconds})
        self.say(f"{phase:<9} FAILED  {text}")

    def wrong_backend(
        self, phase: str, said: BaseException, seconds: float, needs: str
    ) -> str:
        """Record that the app needs ``needs``, not the backend it ran on, as
        ``said`` says: what ended the check in ``phase``, or (``"requests"``)
        what a request found. Returns the words for it."""
        text = f"the app needs {needs}, not {self.backend}: "
        text += f"{type(said).__name__}: {said}"
        self.error = {
            "phase": phase,
            "type": "WrongBackend",
            "message": text,
            "needs": needs,
        }
        if phase != "requests":  # (a request's line says it)
            self.phases.setdefault(phase, {"ok": False, "seconds": seconds})
            self.say(f"{phase:<9} FAILED  {text}")
        return text

    def hint(self, text: str) -> None:
        """Record and say what to try, ``text``, unless empty or said already."""
        if text and text not in self.hints:
            self.hints.append(text)
            self.say(f"{'hint':<9} {text}")

    def usage_error(self, message: str, hint: str) -> None:
        """Record that the command line or the app could not be used, and
        what to try."""
        self.error = {"phase": "usage", "type": "UsageError", "message": message}
        self.hint(hint)

    def interrupted(self) -> None:
        """Record that Ctrl-C stopped the check."""
        self.error = {
            "phase": "interrupted",
            "type": "KeyboardInterrupt",
            "message": "stopped by Ctrl-C",
        }

    def finish(self, status: int) -> None:
        """Say how the check ended: its verdict line, or the whole JSON document."""
        if self.as_json:
            document = {
                "version": JSON_VERSION,
                "app": self.app or None,
                "backend": self.backend or None,
                "backend_auto": self.backend_reason or None,
                "ok": status == EXIT_OK,
                "exit_status": status,
                "startup": self.phases.get("startup"),
                "requests": self.requests,
                "shutdown": self.phases.get("shutdown"),
                "error": self.error,
                "hints": self.hints,
            }
            json.dump(document, self.out, indent=2)
            print(file=self.out)
        else:
            self.say(
                "passed" if status == EXIT_OK else f"failed (exit status {status})"
            )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"
