"""`make fuzz`: every target of tests/fuzz/targets.py under atheris (coverage-guided libFuzzer),
each in its own process for a set time, starting from the seeds in tests/fuzz/corpus/<target>/.

New interesting inputs go to var/fuzz/corpus/<target>/ (kept between runs, not committed), and
a crash to var/fuzz/findings/<target>/crash-*: turn each into a file under
tests/fuzz/regressions/<target>/ (the normal suite replays them all) and fix the code. Prints
per target the executions, the coverage reached and what was found; exit 1 when anything was.

    python -m tests.fuzz.run [--seconds 20] [TARGET ...]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from tests.fuzz.targets import SCRATCH_ENV

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "corpus"
WORK = ROOT / "var" / "fuzz"

# Imported under atheris' instrumentation, so that coverage guides the fuzzer through them.
INSTRUMENTED = (
    "fleetlog.collector.ingest", "fleetlog.collector.filters", "fleetlog.collector.store.sqlite_hosts", "fleetlog.collector.config",
    "fleetlog.collector.identity", "fleetlog.collector.forward.rfc5424", "fleetlog.collector.forward.rfc3164",
    "fleetlog.collector.forward.syslog_common", "fleetlog.agent.parse", "fleetlog.agent.batcher", "fleetlog.agent.config",
    "fleetlog.agent.sources.multiline", "fleetlog.agent.sources.journald", "fleetlog.agent.sources.syslog_parse",
    "fleetlog.agent.sources.syslog_framing", "fleetlog.agent.sources.syslog_records",
    "fleetlog.agent.sources.syslog_native", "fleetlog.common.config", "fleetlog.common.units",
    "fleetlog.common.timefmt", "fleetlog.common.event", "fleetlog.common.verify_bundle", "fleetlog.common.checkpoints",
    "fleetlog.common.bundle_attestation", "fleetlog.common.levels", "fleetlog.common.wildcard",
    "fleetlog.collector.web.queries", "fleetlog.common.export.writers", "fleetlog.common.export.columns",
    "fleetlog.collector.store.blocks", "fleetlog.collector.store.block_columns", "fleetlog.collector.store.row_match",
    "fleetlog.collector.settings.entries", "fleetlog.collector.settings.effective",
    "fleetlog.agent.sources.otlp_map",
)


def fuzz_one(name: str, seconds: int) -> None:
    """The child: run one target until libFuzzer's -max_total_time (or a crash) ends it."""
    import importlib

    import atheris
    with atheris.instrument_imports(include=["fleetlog"]):
        for module in INSTRUMENTED:
            importlib.import_module(module)
    from tests.fuzz.targets import TARGETS
    work, findings = WORK / "corpus" / name, WORK / "findings" / name
    work.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS / name
    corpora = [str(work)] + ([str(seeds)] if seeds.is_dir() else [])
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", f"-artifact_prefix={findings}/",
                   "-rss_limit_mb=2048", "-timeout=20", "-print_final_stats=1", *corpora],
                  TARGETS[name])
    atheris.Fuzz()


def run_target(name: str, seconds: int) -> dict[str, object]:
    started = time.monotonic()
    # The child's scratch folder: libFuzzer ends the child without running its atexit cleanup.
    with tempfile.TemporaryDirectory(prefix="fleetlog-fuzz-") as scratch:
        env = {**os.environ, "PYTHONPATH": str(ROOT), SCRATCH_ENV: scratch}
        try:
            done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--child", name, "--seconds", str(seconds)],
                                  capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT, env=env,
                                  check=False)
            output, code = done.stderr + done.stdout, done.returncode
        except subprocess.TimeoutExpired as exc:
            output, code = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else "", -1
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output) or re.findall(r"^#(\d+)", output, re.MULTILINE)
    cov = re.findall(r"cov: (\d+)", output)
    crash = re.search(r"(?:Test unit written to|artifact_prefix.*?) (\S*crash-\S+)", output)
    error = ""
    if code != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if "Error" in line or "Exception" in line
                      or "assert" in line.lower()), lines[-1] if lines else f"exit {code}")
    return {"target": name, "runs": int(runs[-1]) if runs else 0, "coverage": int(cov[-1]) if cov else 0,
            "seconds": round(time.monotonic() - started), "exit": code, "crash": crash.group(1) if crash else "",
            "error": error, "output": output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "15")),
                        help="time per target (default 15, env FUZZ_SECONDS)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fuzz_one(args.child, args.seconds)
        return 0
    from tests.fuzz.targets import TARGETS
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    results = []
    for name in names:
        result = run_target(name, args.seconds)
        results.append(result)
        found = f"FOUND {result['crash'] or 'a failure'}: {result['error']}" if result["exit"] else "nothing found"
        print(f"{name:22s} {result['runs']:>9,} executions  cov {result['coverage']:>5}  "
              f"{result['seconds']:>3} s  {found}", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    for result in results:
        if result["exit"]:
            (WORK / f"{result['target']}.log").write_text(str(result["output"]))
    failed = [r for r in results if r["exit"]]
    print(f"{len(results)} targets, {sum(int(r['runs']) for r in results):,} executions, "
          f"{len(failed)} with findings" + (f" (logs in {WORK.relative_to(ROOT)}/)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
