"""Text we did not write (a remote gateway's error, a model's reply) reaches the terminal
without control characters, and an error is always one line."""

from __future__ import annotations

import pytest

from openclaw_multi.cli.main import EXIT_FAILURE, fail
from openclaw_multi.cli.output import terminal_safe


def test_controls_are_shown_not_obeyed() -> None:
    # OSC 52 (clipboard), CSI (clear screen), CR (overwrite the line), C1 CSI, DEL.
    text = "a\x1b]52;c;eA==\x07b\x1b[2Jc\rd\x9be\x7f"
    assert terminal_safe(text) == "a\ufffd]52;c;eA==\ufffdb\ufffd[2Jc\ufffdd\ufffde\ufffd"
    assert terminal_safe("line 1\n\tline 2") == "line 1\n\tline 2"
    assert terminal_safe("line 1\n\tline 2", one_line=True) == "line 1  line 2"
    assert terminal_safe("naïve ✓ 日本") == "naïve ✓ 日本"


def test_an_error_is_one_clean_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        fail("gateway said: no\x1b[2J\nerror: fake second line", EXIT_FAILURE)
    assert exited.value.code == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err == "error: gateway said: no\ufffd[2J error: fake second line\n"
