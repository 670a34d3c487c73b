"""Helpers shared by the CLI end-to-end scripts: a pass/fail ledger, running the binary, and the
kill -9 driver that interrupts a long job at chosen moments."""
import signal
import subprocess
import time


class Ledger:
    def __init__(self):
        self.failures = []

    def check(self, label, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + str(detail) if detail else ''}")
        if not ok:
            self.failures.append(label)
        return ok

    def finish(self, what):
        print(f"{len(self.failures)} failed: {self.failures}" if self.failures
              else f"all {what} checks passed")
        return 1 if self.failures else 0


def runner(binary):
    """gb(*args, check_rc=True) -> CompletedProcess; raises on a nonzero exit when check_rc."""
    def gb(*args, check_rc=True):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=300)
        if check_rc and p.returncode != 0:
            raise RuntimeError(f"glassbox {' '.join(args)}: rc {p.returncode}: {p.stderr[-1500:]}")
        return p
    return gb


def kill_when(cmd, ready, timeout=60):
    """Starts cmd, waits until ready(t_elapsed) is true or the process ends, then kill -9.
    Returns True when the process was still running (so the kill interrupted it)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout and not ready(time.time() - t0):
        time.sleep(0.001)
    alive = p.poll() is None
    if alive:
        p.send_signal(signal.SIGKILL)
    p.wait()
    return alive
