"""Drive a command on a real pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import os
import pty
import select
import termios
import time


def run_on_terminal(argv: list[str], answers: list[tuple], timeout: float = 30) -> tuple[int, bytes]:
    """Run argv on a pty; when the screen shows each prompt, type its answer. Returns (status, screen).

    An answer is (prompt, text) or (prompt, text, echoes). By default it is typed only once the prompt
    is shown AND the terminal's echo is off, as a person would at a no-echo prompt (input that arrives
    earlier is flushed by getpass, and echoed by the terminal); `echoes=True` marks a prompt that
    echoes on purpose (dice rolls), typed as soon as it shows.
    """
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(argv[0], argv)
    screen, pending, deadline = b"", list(answers), time.monotonic() + timeout
    # NOTE: a prompt counts once it shows AFTER the last answer typed: the same prompt asked again
    # ("Retype word 6" three times) must not get its next answer early, which getpass would flush.
    fresh_from = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        if pending and pending[0][0] in screen[fresh_from:]:
            echoes = len(pending[0]) > 2 and pending[0][2]
            if echoes or not termios.tcgetattr(fd)[3] & termios.ECHO:
                os.write(fd, pending.pop(0)[1])
                screen += b"\n<typed>\n"
                fresh_from = len(screen)
    else:
        os.kill(pid, 9)  # the program never finished: fail with what the screen showed
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen
