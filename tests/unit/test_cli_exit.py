"""The console script's fast exit: it must keep everything an ordinary exit guarantees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)


def test_exit_code_buffered_output_and_atexit_handlers_all_survive(tmp_path: Path) -> None:
    marker = tmp_path / "atexit-ran"
    proc = _run(tmp_path, f"""
        import atexit, logging, sys
        from pathlib import Path
        from photonic.cli import exit_now
        atexit.register(lambda: Path({str(marker)!r}).write_text("yes"))
        logging.basicConfig(stream=sys.stderr)
        sys.stdout.write("unflushed line on stdout")
        logging.getLogger("t").warning("a log line at exit")
        exit_now(3)
    """)
    assert proc.returncode == 3
    assert proc.stdout == "unflushed line on stdout"
    assert "a log line at exit" in proc.stderr
    assert marker.read_text() == "yes"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    done = tmp_path / "thread-finished"
    proc = _run(tmp_path, f"""
        import threading, time
        from pathlib import Path
        from photonic.cli import exit_now
        def work():
            time.sleep(0.3)
            Path({str(done)!r}).write_text("finished")
        threading.Thread(target=work).start()
        exit_now(0)
    """)
    assert proc.returncode == 0, proc.stderr
    assert done.read_text() == "finished"


def test_the_installed_console_script_uses_the_fast_exit() -> None:
    script = Path(sys.executable).with_name("photonic")
    assert "from photonic.cli import run" in script.read_text()
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("photonic ")
