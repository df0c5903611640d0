"""Reporting: what the check saw, a line per step as it happens, or JSON at the end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._check import EXIT_OK


@dataclass
class Report:
    """What the check saw, printed as it happens (or as JSON at the end).

    Attributes:
        app: The app's reference, as the command line named it.
        backend: The library the app runs on.
        as_json: Whether to print one JSON document at the end instead of lines.
        out: Where to print.
        phases: ``startup`` and ``shutdown``: how each went.
        requests: Each request: its path, status, duration and any problem.
        error: The failure that ended the check, if one did.
    """

    app: str
    backend: str
    as_json: bool
    out: TextIO
    phases: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    error: dict[str, Any] | None = None

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
        self, path: str, status: int | None, ok: bool, seconds: float, problem: str
    ) -> None:
        """Record one ``GET path``.

        Args:
            path: The path asked for.
            status: The status the app sent, or ``None`` if it sent none.
            ok: Whether the request went as expected.
            seconds: How long it took.
            problem: What went wrong, or ``""``.
        """
        self.requests.append(
            {
                "method": "GET",
                "path": path,
                "status": status,
                "ok": ok,
                "seconds": seconds,
                "problem": problem or None,
            }
        )
        shown = "---" if status is None else str(status)
        verdict = "ok" if ok else f"FAILED: {problem}"
        self.say(f"{'GET':<9} {shown:<4}{_ms(seconds)}  {path}  {verdict}")

    def failure(self, phase: str, exc: BaseException) -> None:
        """Record the failure that ended the check, in ``phase``."""
        text = f"{type(exc).__name__}: {exc}"
        self.error = {"phase": phase, "type": type(exc).__name__, "message": str(exc)}
        self.phases.setdefault(phase, {"ok": False})
        self.say(f"{phase:<9} FAILED  {text}")

    def finish(self, status: int) -> None:
        """Say how the check ended: its verdict line, or the whole JSON document."""
        if self.as_json:
            document = {
                "app": self.app,
                "backend": self.backend,
                "ok": status == EXIT_OK,
                "exit_status": status,
                "startup": self.phases.get("startup"),
                "requests": self.requests,
                "shutdown": self.phases.get("shutdown"),
                "error": self.error,
            }
            json.dump(document, self.out, indent=2)
            print(file=self.out)
        else:
            self.say(
                "passed" if status == EXIT_OK else f"failed (exit status {status})"
            )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"
