"""The last line of defence of a bounded stop: when a daemon's stop overruns its bound, the
StopGuard ends the process with one error line naming the step, whatever the event loop does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.harness import ROOT

# A stop whose step never ends and swallows every cancellation, inside a running event loop.
_STUCK_STOP = textwrap.dedent("""
    import asyncio, logging
    from fleetlog.common.daemon import StopGuard
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    async def stuck_step():
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    async def main():
        StopGuard("fleetlog-agent", 1.0, lambda: "waiting for the collector to acknowledge the spool").arm()
        await stuck_step()

    asyncio.run(main())
""")


def test_a_stop_that_overruns_its_bound_ends_the_process_with_one_error_line():
    result = subprocess.run([sys.executable, "-c", _STUCK_STOP], check=False, capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        ("ERROR fleetlog-agent: stop did not finish within 1 s (waiting for the collector to acknowledge "
         "the spool); exiting anyway")]


def test_a_disarmed_guard_lets_the_process_finish_normally():
    script = ("import time\nfrom common.daemon import StopGuard\n"
              "guard = StopGuard('fleetlog-agent', 0.2, str)\nguard.arm()\nguard.disarm()\n"
              "time.sleep(0.6)\nprint('finished')\n")  # three times the bound
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "finished", result.stderr
