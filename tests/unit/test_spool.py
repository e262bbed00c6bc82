"""The disk spool: durable order, acknowledgement, restart, torn tails, full spool policies."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from fleetlog.agent.batcher import SealedBatch
from fleetlog.agent.spool import HEADER, DiskSpool
from tests.bounded import run_bounded


def _batch(batch_id: int, events: int = 3, size: int = 300) -> SealedBatch:
    return SealedBatch(batch_id, bytes([batch_id % 256]) * size, events)


def _run(coro):
    return run_bounded(coro, timeout=60)


async def _take(spool: DiskSpool, count: int) -> list[SealedBatch]:
    return [await asyncio.wait_for(spool.next_unsent(), 2) for _ in range(count)]


def test_batches_come_back_in_order_and_acked_segments_are_deleted(tmp_path: pathlib.Path):
    async def main():
        spool = DiskSpool(tmp_path, 100_000, segment_bytes=1000)
        for i in range(1, 21):
            await spool.put(_batch(i))
        assert spool.pending_events() == 60
        assert spool.pending_bytes() == 20 * (HEADER.size + 300)
        sent = await _take(spool, 20)
        assert [b.batch_id for b in sent] == list(range(1, 21))
        assert sent[4].payload == bytes([5]) * 300 and sent[4].events == 3
        for i in range(1, 13):
            assert spool.ack(i).events == 3
        assert spool.ack(12) is None  # a second ack of the same batch counts nothing
        assert spool.pending_events() == 24
        segments = sorted(p.name for p in tmp_path.glob("*.seg"))
        assert segments == ["00000000000000000013.seg", "00000000000000000017.seg"]
        spool.close()
    _run(main())


def test_rewind_resends_only_unacknowledged(tmp_path):
    async def main():
        spool = DiskSpool(tmp_path, 100_000, segment_bytes=1000)
        for i in range(1, 9):
            await spool.put(_batch(i))
        await _take(spool, 8)
        for i in (1, 2, 3, 5):
            spool.ack(i)
        spool.rewind()
        assert [b.batch_id for b in await _take(spool, 4)] == [4, 6, 7, 8]
    _run(main())


def test_restart_resends_what_was_not_acknowledged(tmp_path):
    async def main():
        spool = DiskSpool(tmp_path, 100_000, segment_bytes=1000)
        for i in range(1, 11):
            await spool.put(_batch(i))
        await _take(spool, 10)
        for i in range(1, 8):
            spool.ack(i)
        spool.close()
        again = DiskSpool(tmp_path, 100_000, segment_bytes=1000)
        assert again.pending_events() == 9
        assert again.next_batch_id == 11
        assert [b.batch_id for b in await _take(again, 3)] == [8, 9, 10]
    _run(main())


def test_torn_tail_is_discarded(tmp_path):
    async def main():
        spool = DiskSpool(tmp_path, 100_000)
        for i in range(1, 4):
            await spool.put(_batch(i))
        # kill -9 in the middle of writing batch 4: half a frame at the end of the segment
    _run(main())
    segment = next(tmp_path.glob("*.seg"))
    whole = segment.stat().st_size
    with open(segment, "ab") as handle:
        handle.write(b"FLS1" + b"\x00" * 30)

    async def after():
        spool = DiskSpool(tmp_path, 100_000)
        assert spool.pending_events() == 9
        assert segment.stat().st_size == whole
        assert [b.batch_id for b in await _take(spool, 3)] == [1, 2, 3]
        assert spool.next_batch_id == 4
        await spool.put(_batch(4))
        assert (await _take(spool, 1))[0].batch_id == 4
    _run(after())


def test_corrupt_frame_ends_the_segment(tmp_path):
    async def main():
        spool = DiskSpool(tmp_path, 100_000)
        for i in range(1, 4):
            await spool.put(_batch(i))
    _run(main())
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[2 * (HEADER.size + 300) + HEADER.size + 10] ^= 0xFF  # one bit flipped in batch 3
    segment.write_bytes(bytes(data))

    async def after():
        spool = DiskSpool(tmp_path, 100_000)
        assert spool.pending_events() == 6
        assert [b.batch_id for b in await _take(spool, 2)] == [1, 2]
    _run(after())


def test_block_waits_for_acknowledgements(tmp_path):
    async def main():
        frame = HEADER.size + 300
        spool = DiskSpool(tmp_path, 3 * frame, when_full="block", segment_bytes=frame)
        for i in range(1, 4):
            await spool.put(_batch(i))
        fourth = asyncio.create_task(spool.put(_batch(4)))
        await asyncio.sleep(0.1)
        assert not fourth.done()  # full: the reader is held back
        await _take(spool, 1)
        spool.ack(1)
        await asyncio.wait_for(fourth, 2)
        assert spool.pending_events() == 9
    _run(main())


def test_drop_oldest_counts_and_keeps_going(tmp_path):
    async def main():
        frame = HEADER.size + 300
        dropped: list[int] = []
        spool = DiskSpool(tmp_path, 4 * frame, when_full="drop_oldest", segment_bytes=2 * frame,
                          on_drop=dropped.append)
        for i in range(1, 11):
            await spool.put(_batch(i, events=5))
        assert sum(dropped) == 30  # batches 1-6 went, oldest first, a segment at a time
        assert spool.pending_events() == 20
        assert spool.pending_bytes() <= 4 * frame
        assert [b.batch_id for b in await _take(spool, 4)] == [7, 8, 9, 10]
    _run(main())


@pytest.mark.parametrize("when_full", ["block", "drop_oldest"])
def test_single_batch_larger_than_the_spool_is_accepted(tmp_path, when_full):
    async def main():
        spool = DiskSpool(tmp_path, 100, when_full=when_full)
        await spool.put(_batch(1, size=1000))
        assert (await _take(spool, 1))[0].payload == bytes([1]) * 1000
    _run(main())
