"""What the compressed column block costs (collector/store/blocks.py): µs per event to encode,
decode and put the ids back, and bytes per event (payload + bloom), on two corpora of 10,000 rows:

- `workload`: the rows bench/common.write_workload's lines become (one template, a request id and a
  user per line, a growing seq= field);
- `mixed`: 200 templates, numbers, addresses, about one message in eight with non-ASCII text
  (accents, Cyrillic, CJK), several origins, levels, apps, and gaps in the seqs (several runs).

It also counts the bloom's false positives on words the block does not hold.

    python -m bench.block_codec [--block 8192] [--profile encode|decode|fill] [--python]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import random
import time
from collections.abc import Callable
from typing import Any

from fleetlog.agent.parse import parse_text
from fleetlog.collector.store import ROW_COLUMNS, blocks

ROWS = 10_000
BASE_US = 1_764_686_245_000_000


def _row(seq: int, origin: int, pos: int, time_us: int, level: int, message: str, request_id: str | None,
         user: str | None, fields: str | None, app: str | None = None, pid: int | None = None,
         action: str | None = None) -> list[Any]:
    values = {"seq": seq, "origin": origin, "pos": pos, "id": None, "time": time_us, "received_at": time_us + 900,
              "host": "bench-agent", "host_ip": "127.0.0.1", "collector": "c1", "namespace": "default",
              "source": "file:/var/log/app.log", "log_type": "application", "app": app, "pid": pid,
              "level": level, "request_id": request_id, "user": user, "action": action, "message": message,
              "fields": fields, "tier": "hot", "truncated": 0,
              "hash": hashlib.sha256(seq.to_bytes(8, "little")).digest()}
    return [values[name] for name in ROW_COLUMNS]


def workload_rows(count: int = ROWS) -> list[list[Any]]:
    rows = []
    for i in range(count):
        line = (f"2025-12-02T14:30:45.{i % 1000000:06d}Z INFO req=r{i % 9973:05d} "
                f"user=user{i % 97}@example.com Authentication SUCCESS via LDAP seq={i:09d}")
        parsed = parse_text(line)
        rows.append(_row(i + 1, 1, i * 121, BASE_US + i * 37, parsed.level, parsed.message, parsed.request_id or None,
                         parsed.user or None, json.dumps(parsed.fields) if parsed.fields else None))
    return rows


_WORDS = ("connection", "timeout", "request", "served", "cache", "miss", "upstream", "closed", "retrying",
          "disk", "quota", "session", "opened", "for", "user", "from", "port", "ssh2", "accepted", "denied",
          "Zugriff", "verweigert", "échec", "de", "l'authentification", "réessai", "Ошибка", "соединения",
          "接続", "失敗", "Straße", "naïve", "café", "ÀÉÎÕÜ")


def mixed_rows(count: int = ROWS, seed: int = 30) -> list[list[Any]]:
    rand = random.Random(seed)
    templates = []
    for _ in range(200):
        words = rand.sample(_WORDS[:20], rand.randint(3, 8))
        if rand.random() < 0.12:
            words.insert(rand.randrange(len(words)), rand.choice(_WORDS[20:]))
        slots = rand.randint(1, 3)
        templates.append(" ".join(words) + "".join(rand.choice((" id={}", " took {}ms", " from {}", " port {}"))
                                                   for _ in range(slots)))
    rows, seq, time_us = [], 0, BASE_US
    for i in range(count):
        seq += 1 if rand.random() > 0.002 else rand.randint(2, 50)
        time_us += rand.randint(0, 5000)
        template = rand.choice(templates)
        values = [rand.choice((str(rand.randint(0, 10**6)), f"10.0.{rand.randint(0, 255)}.{rand.randint(0, 255)}",
                               f"{rand.random():.3f}", hex(rand.getrandbits(48))))
                  for _ in range(template.count("{}"))]
        message = template.format(*values)
        origin = rand.randint(1, 4)
        rows.append(_row(seq, origin, i * 97 + origin, time_us, rand.choice((3, 4, 6, 6, 6, 7)), message,
                         f"req-{rand.getrandbits(40):010x}" if rand.random() < 0.6 else None,
                         rand.choice(("alice", "bob", "Zoë", "root", None)),
                         json.dumps({"k": rand.randint(0, 9)}) if rand.random() < 0.3 else None,
                         app=rand.choice(("nginx", "sshd", "api", None)), pid=rand.choice((None, 100, 2000, 31337)),
                         action=rand.choice((None, None, "login", "logout"))))
    return rows


def _best(repeat: int, work: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> float:
    best = float("inf")
    for _ in range(repeat):
        setup()
        start = time.process_time()      # CPU time: the machine is shared
        work()
        best = min(best, time.process_time() - start)
    return best


def _false_positive_rate(encoded: list[blocks.EncodedBlock], rows: list[list[Any]]) -> float:
    held = set(blocks.bloom_items(rows))
    probes = [w for w in (f"absent{i}x" for i in range(20_000)) if w not in held]
    hits = sum(blocks.bloom_may_hold(block.bloom, probe) for block in encoded for probe in probes)
    return hits / (len(probes) * len(encoded))


def measure(name: str, rows: list[list[Any]], block: int, profile: str) -> None:
    chunks = [rows[i:i + block] for i in range(0, len(rows), block)]
    links = {row[0]: row[-1] for row in rows}

    def link_before(seq: int) -> bytes:
        return links.get(seq - 1, bytes(32))

    def encode() -> list[blocks.EncodedBlock]:
        return [blocks.encode_block(chunk, link_before) for chunk in chunks]

    encoded = encode()
    keys = {origin: ("bench-agent", f"file:{origin}") for origin in range(1, 5)}

    def decode() -> list[blocks.DecodedBlock]:
        return [blocks.decode_block(e.data) for e in encoded]

    decoded = decode()

    def forget_ids() -> None:
        for d in decoded:
            for row in d.rows:
                row[blocks.ID] = None

    def fill() -> None:
        for d in decoded:
            blocks.fill_ids(d.rows, keys)

    if profile:
        work = {"encode": encode, "decode": decode, "fill": fill}[profile]
        forget_ids()
        profiler = cProfile.Profile()
        profiler.runcall(work)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    n = len(rows)
    enc, dec, ids = (_best(5, f, s) * 1e6 / n for f, s in ((encode, list), (decode, list), (fill, forget_ids)))
    payload = sum(len(e.data) for e in encoded) / n
    bloom = sum(len(e.bloom) for e in encoded) / n
    fp = _false_positive_rate(encoded, rows)
    print(f"{name:9} block {block:5}: encode {enc:5.2f} µs/event  decode {dec:5.2f}  fill_ids {ids:5.2f}  "
          f"payload {payload:5.2f} B/event  bloom {bloom:5.2f} B/event  bloom false positives {fp:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=8192, help="events per block (the largest a block holds)")
    parser.add_argument("--profile", choices=("encode", "decode", "fill"), default="")
    parser.add_argument("--python", action="store_true", help="the Python forms, as without the C extension")
    args = parser.parse_args()
    if args.python:
        blocks._native = None
    print(f"native: {blocks._native is not None}")
    for name, rows in (("workload", workload_rows()), ("mixed", mixed_rows())):
        measure(name, rows, args.block, args.profile)


if __name__ == "__main__":
    main()
