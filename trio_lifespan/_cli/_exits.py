"""The exit statuses of ``trio-lifespan check``, and their help text."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
EXIT_SHUTDOWN_FAILED = 4
EXIT_NOT_SUPPORTED = 5
EXIT_TIMEOUT = 6
EXIT_BAD_STATUS = 7
EXIT_PROTOCOL = 8
EXIT_CRASHED = 9
EXIT_WRONG_BACKEND = 10
#: A check stopped by Ctrl-C: 128 + SIGINT, as shells say it.
EXIT_INTERRUPTED = 130

EXIT_STATUSES = f"""\
exit statuses:
  {EXIT_OK}  the app started, answered as expected, and shut down cleanly
  {EXIT_USAGE}  bad usage: wrong options, or the app could not be imported or called
  {EXIT_STARTUP_FAILED}  the app's startup failed
  {EXIT_SHUTDOWN_FAILED}  the app's shutdown failed
  {EXIT_NOT_SUPPORTED}  the app does not support the lifespan protocol
     (see --allow-unsupported)
  {EXIT_TIMEOUT}  the startup, the shutdown or a request took too long
  {EXIT_BAD_STATUS}  a request got an unexpected status, or raised
  {EXIT_PROTOCOL}  the app broke the ASGI lifespan protocol
  {EXIT_CRASHED}  the app's lifespan crashed while it was running (after its startup)
  {EXIT_WRONG_BACKEND}  the app needs the other event loop library (see --backend)
  {EXIT_INTERRUPTED}  stopped by Ctrl-C
"""
