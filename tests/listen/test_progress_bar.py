"""listen's progress bar: drawn while more than 50 messages go out to a terminal, never into a pipe
and never in JSON mode. The terminal is a real pseudo-terminal that
claims colour support, so rich draws the bar as it would for a person."""

from __future__ import annotations

from tests.helpers import run_serbero, run_serbero_tty

COLOUR_TERMINAL = {"TERM": "xterm-256color"}
BAR = "sending "


def open_disputes(mostro, count: int) -> None:
    for _ in range(count):
        mostro.open_dispute()


def test_more_than_fifty_messages_to_a_terminal_draw_the_bar_then_the_table(
    make_config, mostro, solvers
):
    open_disputes(mostro, 26)  # 52 messages: one per dispute for each of the two solvers
    code, out, err = run_serbero_tty(make_config(), "listen", env=COLOUR_TERMINAL)
    assert code == 0, err
    assert BAR in out and "100%" in out
    # The bar is transient: the table that follows it is the run's last word.
    assert out.rindex(BAR) < out.index("sent 52")
    assert all(len(s.inbox()) == 26 for s in solvers)


def test_fifty_messages_or_fewer_draw_no_bar(make_config, mostro):
    open_disputes(mostro, 25)  # exactly 50 messages
    code, out, err = run_serbero_tty(make_config(), "listen", env=COLOUR_TERMINAL)
    assert code == 0, err
    assert BAR not in out and "sent 50" in out


def test_a_pipe_or_json_gets_no_bar_whatever_the_count(make_config, mostro):
    cfg = make_config()
    open_disputes(mostro, 26)
    proc = run_serbero(cfg, "listen")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("listen: ") and len(proc.stdout.splitlines()) == 1
    assert "sent=52" in proc.stdout and BAR not in proc.stdout + proc.stderr
    open_disputes(mostro, 26)
    code, out, err = run_serbero_tty(cfg, "listen", "--json", env=COLOUR_TERMINAL)
    assert code == 0 and BAR not in out and out.lstrip().startswith('{"report": "listen/v1"'), err
