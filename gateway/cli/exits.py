"""The exit codes of every `warden` command: the one place they are defined.

    0    ok
    1    a check failed (policy tests failed, audit verification failed)
    2    usage error (bad arguments, unreadable input, unreachable database, bad settings)
    3    policy files do not compile
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_COMPILE_ERROR = 3
EXIT_INTERRUPTED = 130
