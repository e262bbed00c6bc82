"""The collector's ceiling apart from the agent: pre-encoded batches replayed by a light load
generator into a real collector (`synchronous = full`), with 1 and 2 writer shards.

Before any clock runs, the e2e workload (`--lines` lines of bench/common.write_workload) is read
and parsed by the agent's own FileSource and sealed by its own Batcher, with the e2e section's
batch settings (max_events 5,000; 1 MiB read), into the serialized `Batch` messages an agent
stores in its spool and sends. They are written to a file once and replayed by a child process
(`python -m bench.collector_alone replay ...`): one Ingest stream, the agent's Hello (node name,
no token: the bench collector trusts the name), then each batch framed as the agent's shipper
frames it (its send time appended), bytes handed to grpc as they are (no serializer), with at
most WINDOW batches unacknowledged, as the agent's shipper does. It parses nothing but the acks.

The batches are sealed with the agent's default compression (gzip, level 1, of each batch's
chunks), so the collector inflates them as it does end to end.

The clock runs from the generator's "go" until the collector's `events_stored_total` reaches the
count; the collector's CPU is taken over that span (the generator measures its own, from "go" to
its last ack). At the end the collector is stopped and its store counted: every event stored
exactly once.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import select
import shutil
import struct
import subprocess
import sys
import time

from bench.common import ROOT, BenchContext, Row, cpu_seconds, peak_rss_mib, stored_events, write_workload

NODE = "bench-agent"
MAX_EVENTS = 5000          # the e2e section's agent batch.max_events
WINDOW = 8                 # the agent shipper's batches in flight
SHARDS = (1, 2)
TIMEOUT = 900.0            # bounds every wait of a run (the e2e section's)
_LENGTH = struct.Struct(">I")


# -- the messages, built once ---------------------------------------------------------------

def encode_batches(workload: pathlib.Path, events: int, state_dir: pathlib.Path) -> list[tuple[bytes, int]]:
    """(serialized Batch, events) for the `events` lines of `workload`, as the agent builds them."""
    return asyncio.run(_encode(workload, events, state_dir))


async def _encode(workload: pathlib.Path, events: int, state_dir: pathlib.Path) -> list[tuple[bytes, int]]:
    from fleetlog.agent.batcher import Batcher, SealedBatch
    from fleetlog.agent.sources.file import FileSource, FileSourceConfig

    sealed: list[tuple[bytes, int]] = []

    async def keep(batch: SealedBatch) -> None:
        sealed.append((batch.payload, batch.events))

    source = FileSource(FileSourceConfig(type="file", paths=[str(workload)]), state_dir)
    batcher = Batcher("default", MAX_EVENTS, 1024 * 1024, 0.1, "gzip", keep)   # the agent's default
    read = 0
    all_read = asyncio.Event()

    async def emit(batch) -> None:
        nonlocal read
        await batcher.add(batch, source)
        read += len(batch.records)
        if read >= events:
            all_read.set()

    task = asyncio.create_task(source.run(emit))
    try:
        async with asyncio.timeout(TIMEOUT):
            await all_read.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await batcher.flush()
    if sum(n for _, n in sealed) != events:
        raise RuntimeError(f"encoded {sum(n for _, n in sealed)} events, expected {events}")
    return sealed


def write_frames(path: pathlib.Path, payloads: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for payload in payloads:
            handle.write(_LENGTH.pack(len(payload)))
            handle.write(payload)


def read_frames(path: pathlib.Path) -> list[bytes]:
    data = path.read_bytes()
    frames, at = [], 0
    while at < len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        frames.append(data[at + 4:at + 4 + length])
        at += 4 + length
    return frames


# -- the load generator (child process) ---------------------------------------------------

async def _replay(frames: list[bytes], address: str) -> dict:
    import grpc

    from fleetlog.agent.batcher import with_send_time
    from fleetlog.agent.shipper import _METHOD, _frame_batch
    from fleetlog.common import __version__
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

    options = [("grpc.max_send_message_length", 64 * 1024 * 1024),
               ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        async with asyncio.timeout(30):
            await channel.channel_ready()
        call = channel.stream_stream(_METHOD, request_serializer=None,
                                     response_deserializer=pb.IngestReply.FromString)()
        await call.write(pb.IngestRequest(hello=pb.Hello(node_name=NODE, agent_version=__version__))
                         .SerializeToString())
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return {"error": "no go"}
        cpu_started = time.process_time()   # every thread of this process (grpc's included)
        in_flight = asyncio.Semaphore(WINDOW)
        totals = {"batches": len(frames), "acked": 0, "stored": 0, "duplicates": 0, "dropped": 0}

        async def send() -> None:
            for payload in frames:
                await in_flight.acquire()
                await call.write(_frame_batch(with_send_time(payload)))

        async def acks() -> None:
            while totals["acked"] < len(frames):
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    raise RuntimeError("the collector closed the stream")
                if reply.error:
                    raise RuntimeError(f"batch {reply.batch_id} not stored: {reply.error}")
                totals["acked"] += 1
                totals["stored"] += reply.stored
                totals["duplicates"] += reply.duplicates
                totals["dropped"] += reply.dropped
                in_flight.release()

        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(send(), acks())
            await call.done_writing()
        totals["cpu_seconds"] = time.process_time() - cpu_started
        return totals


def replay_main(frames_path: str, address: str) -> int:
    result = asyncio.run(_replay(read_frames(pathlib.Path(frames_path)), address))
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


# -- one run, and the section ---------------------------------------------------------------

def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """One line of the child's stdout within `timeout` (it prints nothing else before)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"load generator silent for {timeout:.0f} s")
    return process.stdout.readline().strip()


def run_collector_alone(tmp: pathlib.Path, frames_path: pathlib.Path, events: int, shards: int) -> dict:
    from tests.harness import Cluster, env, wait_for

    stored_metric = "fleetlog_collector_events_stored_total"
    cluster = Cluster(tmp)
    generator: subprocess.Popen | None = None
    errors = tmp / "load-generator.err"
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": "full", "writer_shards": shards})
        with open(errors, "wb") as stderr:
            generator = subprocess.Popen(
                [sys.executable, "-m", "bench.collector_alone", "replay", str(frames_path), collector.address],
                cwd=ROOT, env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        line = _read_line(generator, 300)   # loading the frames and connecting: not timed
        if line != "ready":
            raise RuntimeError(f"load generator: {line or errors.read_text()[-500:]}")
        collector_cpu = cpu_seconds(collector.process.pid)
        started = time.monotonic()
        generator.stdin.write("go\n")
        generator.stdin.flush()
        wait_for(lambda: generator.poll() is not None or collector.metric(stored_metric) >= events,
                 timeout=TIMEOUT, what=f"{events} events stored", interval=0.05)
        elapsed = time.monotonic() - started
        collector_cpu = cpu_seconds(collector.process.pid) - collector_cpu
        rss = peak_rss_mib(collector.process.pid)
        if collector.metric(stored_metric) < events:
            raise RuntimeError(f"load generator ended early: {errors.read_text()[-500:]}")
        out, _ = generator.communicate(timeout=60)
        acks = json.loads(out.strip().splitlines()[-1])
        collector.stop()
        count = stored_events(tmp / "bench-collector" / "data" / "events.db", NODE)
        return {"events": events, "seconds": elapsed, "rate": events / elapsed, "collector_cpu": collector_cpu,
                "generator_cpu": acks["cpu_seconds"], "collector_rss_mib": rss, "stored": count, "acks": acks}
    finally:
        if generator is not None and generator.poll() is None:
            generator.kill()
            generator.wait(5)
        cluster.stop_all()


def run(ctx: BenchContext) -> list[Row]:
    events = ctx.lines
    work = ctx.work / "collector-alone"
    work.mkdir(parents=True, exist_ok=True)
    workload = work / "input.log"
    write_workload(workload, events)
    started = time.monotonic()
    batches = encode_batches(workload, events, work / "agent-state")
    frames_path = work / "batches.bin"
    write_frames(frames_path, [payload for payload, _ in batches])
    size = sum(len(payload) for payload, _ in batches)
    print(f"   {events:,} events in {len(batches)} batches ({size / 2**20:.0f} MiB) encoded in "
          f"{time.monotonic() - started:.0f} s; replayed {WINDOW} in flight, synchronous=full", flush=True)
    del batches
    workload.unlink()

    rs = ctx.results.get("rsyslog")
    floor = 0.5 * rs["rate"] if rs else None
    target = f">= 0.5x rsyslog lines/s ({floor:,.0f})" if floor else ">= 0.5x rsyslog lines/s (rsyslog not run)"
    rows, rates = [], {}
    for shards in SHARDS:
        label = f"collector alone, {shards} writer shard{'s' if shards > 1 else ''}"
        result = run_collector_alone(work / f"shards-{shards}", frames_path, events, shards)
        shutil.rmtree(work / f"shards-{shards}", ignore_errors=True)   # counted; its disk space back
        ctx.results[f"collector_alone_{shards}"] = result
        rates[shards] = result["rate"]
        acks = result["acks"]
        once = result["stored"] == events and acks["stored"] == events and acks["duplicates"] == 0
        rows += [
            Row(label, f"{result['rate']:,.0f} events/s", target, result["rate"] >= floor if floor else None),
            Row(f"{label}: CPU per event",
                f"{result['collector_cpu'] * 1e6 / events:.1f} µs "
                f"(load generator {result['generator_cpu'] * 1e6 / events:.1f} µs)"),
            Row(f"{label}: peak RSS", f"{result['collector_rss_mib']:.0f} MiB", "< 250 MiB",
                result["collector_rss_mib"] < 250),
            Row(f"{label}: events stored (exactly once)",
                f"{result['stored']:,} of {events:,} (acks: {acks['stored']:,} stored, "
                f"{acks['duplicates']:,} duplicates)", f"{events:,}", once),
        ]
    rows.append(Row("collector alone, 2 writer shards / 1 writer shard", f"{rates[2] / rates[1]:.2f}"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "replay":
        sys.exit(replay_main(sys.argv[2], sys.argv[3]))
    print("usage: python -m bench.collector_alone replay FRAMES HOST:PORT", file=sys.stderr)
    sys.exit(2)
