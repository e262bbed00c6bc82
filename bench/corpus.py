"""A realistic mixed corpus: a small fleet's logs for a few hours, written as the files an agent reads.

What it models: three nodes of a web shop, two web nodes (nginx in front of a Python app) and a
database node (PostgreSQL), each with the files a Debian/Ubuntu node keeps:

- /var/log/syslog: rsyslog's RFC 3339 lines (`TIME HOST PROGRAM[PID]: text`) of the kernel
  (firewall drops, TCP and disk notices), systemd units starting, stopping and accounting CPU,
  cron, resolved, timesyncd, the OOM killer now and then;
- /var/log/auth.log: sshd (keys, passwords, invalid users scanning from the internet, sessions),
  sudo, PAM, logind;
- nginx's access log (combined format plus request time) and error log, on the web nodes;
- the app's audit log (`TIME LEVEL key=value`, with req=, user=, action=, which the agent
  extracts) and its request log (one JSON object a line), on the web nodes;
- PostgreSQL's log (slow statements, connections, checkpoints, autovacuum, errors), on the db node.

Proportions follow what such a node writes: access lines and the app's lines are most of it,
syslog and auth a tenth or two, warnings and errors a few percent. Values vary the way real ones
do: request ids are random hex (they do not compress), client addresses come from a few hundred
thousand, users from a few thousand, times advance by a random gap, durations and sizes are
skewed. 41 templates in all. The same seed always writes the same bytes.

    write_corpus(folder, events) -> list[CorpusFile]   (the files, with their agent source settings)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pathlib
import random
from collections.abc import Callable
from dataclasses import dataclass

START_US = 1_764_763_200_000_000        # 2025-12-03T12:00:00Z
MEAN_GAP_US = 2_000                     # ~500 lines/s over the whole fleet

FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
               "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin")
STAFF = ("deploy", "ops", "backup", "ansible", "jenkins") + FIRST_NAMES[:6]
SCANNED_USERS = ("admin", "test", "oracle", "ubuntu", "postgres", "git", "user", "guest", "pi", "support")
UNITS = ("apt-daily.service", "logrotate.service", "man-db.service", "certbot.service", "fstrim.service",
         "sysstat-collect.service", "phpsessionclean.service", "systemd-tmpfiles-clean.service",
         "motd-news.service", "session-{n}.scope", "user@{uid}.service", "shop-worker@{k}.service")
PATHS = ("/", "/api/v1/cart", "/api/v1/orders/{n}", "/api/v1/products/{n}", "/api/v1/search?q={word}",
         "/static/js/app.{hex8}.js", "/static/css/site.{hex8}.css", "/img/products/{n}.webp", "/login",
         "/account/orders", "/healthz", "/favicon.ico", "/wp-login.php", "/.env")
AGENTS = (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
           "Safari/537.36"),
          ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/18.1 Mobile/15E148 Safari/604.1"),
          "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
          "curl/8.5.0", "kube-probe/1.31", "Googlebot/2.1 (+http://www.google.com/bot.html)")
WORDS = ("lamp", "desk", "chair", "kettle", "shelf", "rug", "mirror", "sofa", "pillow", "clock", "vase", "stool")
TABLES = ("orders", "order_items", "products", "customers", "sessions", "payments", "stock", "audit_trail")
ACTIONS = ("order.create", "order.cancel", "cart.add", "cart.remove", "profile.update", "document.read",
           "export.download", "password.change")


@dataclass(frozen=True)
class CorpusFile:
    """One file of one node, and how that node's agent reads it."""

    host: str
    path: pathlib.Path
    app: str
    log_type: str
    lines: int = 0


class _Values:
    """The varying parts of lines, from one seeded generator."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.users = [f"{rng.choice(FIRST_NAMES)}.{rng.choice(FIRST_NAMES)}{rng.randrange(100)}" for _ in range(3000)]
        self.clients = [self.ip_public() for _ in range(400)]     # the returning visitors

    def ip_public(self) -> str:
        r = self.rng
        return f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def ip_private(self) -> str:
        return f"10.20.{self.rng.randrange(4)}.{self.rng.randrange(2, 250)}"

    def client(self) -> str:
        return self.rng.choice(self.clients) if self.rng.random() < 0.7 else self.ip_public()

    def user(self) -> str:
        # A few users are most of the traffic, as on any shop.
        return self.users[min(int(self.rng.paretovariate(1.2)) - 1, len(self.users) - 1)]

    def port(self) -> int:
        return self.rng.randrange(32768, 61000)

    def ms(self, scale: float = 40.0) -> float:
        return self.rng.lognormvariate(0, 1) * scale

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def path(self) -> str:
        template = self.rng.choices(PATHS, weights=(4, 10, 6, 14, 5, 8, 4, 10, 2, 3, 6, 2, 1, 1))[0]
        return template.format(n=self.rng.randrange(1, 60000), word=self.rng.choice(WORDS), hex8=self.hex(8))

    def unit(self) -> str:
        return self.rng.choice(UNITS).format(n=self.rng.randrange(1, 9000), uid=1000 + self.rng.randrange(12),
                                             k=self.rng.randrange(4))


# A template: (file kind, weight, level word or "", text from the values and a pid).
Template = tuple[str, float, Callable[[_Values], str]]


def _templates() -> list[Template]:
    def r(v: _Values) -> random.Random:      # the templates below read better with a short name
        return v.rng

    return [
        # /var/log/auth.log
        ("auth", 3.0, lambda v: f"sshd[{{pid}}]: Accepted publickey for {r(v).choice(STAFF)} from {v.ip_private()} "
                                f"port {v.port()} ssh2: ED25519 SHA256:{v.hex(22)}"),
        ("auth", 0.4, lambda v: f"sshd[{{pid}}]: Accepted password for {r(v).choice(STAFF)} from {v.ip_private()} "
                                f"port {v.port()} ssh2"),
        ("auth", 6.0, lambda v: f"sshd[{{pid}}]: Failed password for invalid user {r(v).choice(SCANNED_USERS)} "
                                f"from {v.ip_public()} port {v.port()} ssh2"),
        ("auth", 6.0, lambda v: f"sshd[{{pid}}]: Invalid user {r(v).choice(SCANNED_USERS)} from {v.ip_public()} "
                                f"port {v.port()}"),
        ("auth", 5.0, lambda v: f"sshd[{{pid}}]: Connection closed by invalid user {r(v).choice(SCANNED_USERS)} "
                                f"{v.ip_public()} port {v.port()} [preauth]"),
        ("auth", 2.0, lambda v: f"sshd[{{pid}}]: Received disconnect from {v.ip_private()} port {v.port()}:11: "
                                "disconnected by user"),
        ("auth", 3.0, lambda v: f"sshd[{{pid}}]: pam_unix(sshd:session): session opened for user "
                                f"{r(v).choice(STAFF)}(uid={1000 + r(v).randrange(12)}) by (uid=0)"),
        ("auth", 3.0, lambda v: f"sshd[{{pid}}]: pam_unix(sshd:session): session closed for user {r(v).choice(STAFF)}"),
        ("auth", 2.0, lambda v: f"sudo[{{pid}}]: {r(v).choice(STAFF)} : TTY=pts/{r(v).randrange(6)} ; "
                                f"PWD=/home/{r(v).choice(STAFF)} ; USER=root ; COMMAND=/usr/bin/"
                                f"{r(v).choice(('systemctl restart shop-worker@1', 'journalctl -u nginx -n 200', 'apt-get upgrade -y', 'tail -f /var/log/syslog'))}"),
        ("auth", 2.0, lambda v: f"sudo[{{pid}}]: pam_unix(sudo:session): session opened for user root(uid=0) by "
                                f"{r(v).choice(STAFF)}(uid={1000 + r(v).randrange(12)})"),
        ("auth", 2.0, lambda v: f"systemd-logind[{{pid}}]: New session {r(v).randrange(1, 9000)} of user "
                                f"{r(v).choice(STAFF)}."),
        ("auth", 8.0, lambda v: "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
        # /var/log/syslog
        ("syslog", 9.0, lambda v: f"kernel: [{r(v).uniform(1e5, 9e6):.6f}] [UFW BLOCK] IN=eth0 OUT= "
                                  f"MAC=52:54:00:{v.hex(2)}:{v.hex(2)}:{v.hex(2)}:fe:ff:ff:ff:ff:ff:08:00 "
                                  f"SRC={v.ip_public()} DST=203.0.113.{r(v).randrange(10, 14)} LEN={r(v).choice((40, 44, 52, 60))} "
                                  f"TOS=0x00 PREC=0x00 TTL={r(v).randrange(30, 250)} ID={r(v).randrange(65536)} "
                                  f"PROTO=TCP SPT={v.port()} DPT={r(v).choice((22, 23, 3389, 5432, 6379, 8080, 445))} "
                                  f"WINDOW={r(v).choice((1024, 29200, 65535))} RES=0x00 SYN URGP=0"),
        ("syslog", 0.3, lambda v: f"kernel: [{r(v).uniform(1e5, 9e6):.6f}] TCP: request_sock_TCP: Possible SYN "
                                  f"flooding on port {r(v).choice((80, 443))}. Sending cookies.  Check SNMP counters."),
        ("syslog", 0.2, lambda v: f"kernel: [{r(v).uniform(1e5, 9e6):.6f}] EXT4-fs (vda1): "
                                  f"{r(v).choice(('re-mounted. Quota mode: none.', 'mounted filesystem with ordered data mode.'))}"),
        ("syslog", 0.05, lambda v: f"kernel: [{r(v).uniform(1e5, 9e6):.6f}] Out of memory: Killed process "
                                   f"{r(v).randrange(1000, 99999)} (python3) total-vm:{r(v).randrange(10**6, 4 * 10**6)}kB, "
                                   f"anon-rss:{r(v).randrange(5 * 10**5, 2 * 10**6)}kB, file-rss:0kB, shmem-rss:0kB, "
                                   f"UID:{1000 + r(v).randrange(12)} pgtables:{r(v).randrange(1000, 9000)}kB oom_score_adj:0"),
        ("syslog", 4.0, lambda v: f"systemd[1]: Started {v.unit()} - {r(v).choice(('Session of user', 'Daily apt activities', 'Rotate log files', 'Shop worker'))}."),
        ("syslog", 4.0, lambda v: f"systemd[1]: {v.unit()}: Deactivated successfully."),
        ("syslog", 3.0, lambda v: f"systemd[1]: {v.unit()}: Consumed {r(v).uniform(0.01, 40):.3f}s CPU time, "
                                  f"{r(v).uniform(0.5, 300):.1f}M memory peak."),
        ("syslog", 2.0, lambda v: f"systemd[1]: Starting {v.unit()} - {r(v).choice(('Daily man-db regeneration', 'Discard unused blocks', 'Cleanup of Temporary Directories'))}..."),
        ("syslog", 6.0, lambda v: "CRON[{pid}]: (root) CMD (   test -x /etc/cron.daily/popularity-contest && "
                                  "/etc/cron.daily/popularity-contest --crond)" if r(v).random() < 0.1 else
                                  f"CRON[{{pid}}]: ({r(v).choice(('root', 'deploy', 'backup'))}) CMD "
                                  f"({r(v).choice(('/opt/shop/bin/sync-stock --quiet', 'cd / && run-parts --report /etc/cron.hourly', '/usr/local/bin/backup.sh incremental'))})"),
        ("syslog", 0.6, lambda v: f"systemd-resolved[{{pid}}]: Using degraded feature set UDP instead of UDP+EDNS0 "
                                  f"for DNS server {v.ip_private()}."),
        ("syslog", 0.4, lambda v: f"systemd-timesyncd[{{pid}}]: Initial synchronization to time server "
                                  f"{v.ip_public()}:123 (ntp.ubuntu.com)."),
        # nginx access log: combined format plus the request time
        ("access", 160.0, lambda v: (f'{v.client()} - - [{{clf}}] "{r(v).choices(("GET", "POST", "HEAD"), (85, 13, 2))[0]} '
                                     f'{v.path()} HTTP/{r(v).choice(("1.1", "2.0"))}" '
                                     f'{r(v).choices((200, 304, 301, 404, 499, 500, 502), (80, 8, 2, 6, 1, 1, 0.5))[0]} '
                                     f'{int(r(v).paretovariate(1.1) * 300)} '
                                     f'"{r(v).choice(("-", "https://shop.example.com/", "https://www.google.com/"))}" '
                                     f'"{r(v).choice(AGENTS)}" rt={v.ms(0.02):.3f}')),
        # nginx error log
        ("nginx-error", 1.0, lambda v: f"[error] {{pid}}#{{pid}}: *{r(v).randrange(10**6, 10**8)} upstream timed out "
                                       f"(110: Connection timed out) while reading response header from upstream, "
                                       f"client: {v.client()}, server: shop.example.com, request: \"GET {v.path()} "
                                       f"HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"shop.example.com\""),
        ("nginx-error", 1.5, lambda v: f"[warn] {{pid}}#{{pid}}: *{r(v).randrange(10**6, 10**8)} an upstream response "
                                       f"is buffered to a temporary file /var/cache/nginx/proxy_temp/{r(v).randrange(10)}/"
                                       f"{r(v).randrange(10, 99)}/{r(v).randrange(10**9, 10**10)} while reading upstream"),
        # the app's audit log: TIME LEVEL key=value
        ("audit", 14.0, lambda v: f"INFO req={v.hex(16)} user={v.user()} action=login result=success "
                                  f"ip={v.client()} method={r(v).choice(('password', 'totp', 'sso'))}"),
        ("audit", 2.0, lambda v: f"WARN req={v.hex(16)} user={v.user()} action=login result=failure "
                                 f"reason={r(v).choice(('bad_password', 'locked', 'expired_totp'))} ip={v.ip_public()}"),
        ("audit", 16.0, lambda v: f"INFO req={v.hex(16)} user={v.user()} action={r(v).choice(ACTIONS)} "
                                  f"object={r(v).choice(('order', 'cart', 'doc'))}:{r(v).randrange(10**6)} result=ok "
                                  f"took={v.ms():.0f}ms"),
        ("audit", 6.0, lambda v: f"INFO req={v.hex(16)} user={v.user()} action=payment.capture "
                                 f"amount={r(v).uniform(3, 900):.2f} currency={r(v).choice(('EUR', 'EUR', 'GBP', 'USD'))} "
                                 f"provider=stripe result=ok took={v.ms(120):.0f}ms"),
        ("audit", 0.8, lambda v: f"ERROR req={v.hex(16)} user={v.user()} action=payment.capture provider=stripe "
                                 f"result=declined code={r(v).choice(('card_declined', 'expired_card', 'processing_error'))}"),
        ("audit", 0.3, lambda v: f"NOTICE req={v.hex(16)} user={r(v).choice(STAFF)} action=permission.change "
                                 f"target={v.user()} role={r(v).choice(('support', 'manager', 'viewer'))} result=ok"),
        ("audit", 0.2, lambda v: f"WARN req={v.hex(16)} user={v.user()} action=export.download "
                                 f"file=/srv/exports/customers-{r(v).randrange(2020, 2026)}.csv "
                                 f"rows={r(v).randrange(100, 90000)} result=denied"),
        # the app's request log: JSON
        ("app-json", 40.0, lambda v: json.dumps({
            "time": "{iso}", "level": r(v).choices(("info", "warning", "error"), (96, 3, 1))[0],
            "msg": r(v).choice(("request completed", "request completed", "cache miss", "db query")),
            "request_id": v.hex(16), "user": v.user() if r(v).random() < 0.6 else None,
            "method": "GET", "path": v.path(), "status": 200, "duration_ms": round(v.ms(), 2),
            "worker": f"shop-worker@{r(v).randrange(4)}"}, separators=(",", ":"))),
        # PostgreSQL
        ("postgres", 60.0, lambda v: f"LOG:  duration: {v.ms(8):.3f} ms  execute <unnamed>: SELECT "
                                     f"{r(v).choice(('id, status, total', 'sku, name, price', 'count(*)'))} FROM "
                                     f"{r(v).choice(TABLES)} WHERE {r(v).choice(('id', 'customer_id', 'order_id'))} = $1"),
        ("postgres", 15.0, lambda v: f"LOG:  connection authorized: user=shop database=shop "
                                    f"application_name=shop-worker@{r(v).randrange(4)} SSL enabled "
                                    f"(protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)"),
        ("postgres", 15.0, lambda v: f"LOG:  disconnection: session time: 0:{r(v).randrange(60):02d}:"
                                    f"{r(v).uniform(0, 60):06.3f} user=shop database=shop host={v.ip_private()} "
                                    f"port={v.port()}"),
        ("postgres", 0.5, lambda v: f"LOG:  checkpoint complete: wrote {r(v).randrange(100, 9000)} buffers "
                                    f"({r(v).uniform(0, 9):.1f}%); 0 WAL file(s) added, 0 removed, "
                                    f"{r(v).randrange(4)} recycled; write={r(v).uniform(1, 270):.3f} s, "
                                    f"sync={r(v).uniform(0, 0.5):.3f} s, total={r(v).uniform(1, 270):.3f} s"),
        ("postgres", 2.0, lambda v: f"LOG:  automatic vacuum of table \"shop.public.{r(v).choice(TABLES)}\": "
                                    f"index scans: {r(v).randrange(2)}, pages: 0 removed, {r(v).randrange(10**5)} "
                                    f"remain, tuples: {r(v).randrange(5000)} removed, {r(v).randrange(10**6)} remain"),
        ("postgres", 0.4, lambda v: f"ERROR:  duplicate key value violates unique constraint \"{r(v).choice(TABLES)}_pkey\""
                                    f" DETAIL:  Key (id)=({r(v).randrange(10**7)}) already exists."),
        ("postgres", 0.2, lambda v: "FATAL:  password authentication failed for user "
                                    f"\"{r(v).choice(SCANNED_USERS)}\""),
    ]


# Which node writes which kind of file, where, and how its agent names the app and log type.
_FILES = {
    "syslog": ("var/log/syslog", "", "system"),
    "auth": ("var/log/auth.log", "", "auth"),
    "access": ("var/log/nginx/access.log", "nginx", "access"),
    "nginx-error": ("var/log/nginx/error.log", "nginx", "application"),
    "audit": ("var/log/shop/audit.log", "shop", "audit"),
    "app-json": ("var/log/shop/requests.log", "shop", "application"),
    "postgres": ("var/log/postgresql/postgresql-16-main.log", "postgres", "application"),
}
HOSTS = {"web-01": ("syslog", "auth", "access", "nginx-error", "audit", "app-json"),
         "web-02": ("syslog", "auth", "access", "nginx-error", "audit", "app-json"),
         "db-01": ("syslog", "auth", "postgres")}
TEMPLATE_COUNT = len(_templates())


def _stamp(kind: str, host: str, time_us: int, pid: int) -> Callable[[str], str]:
    """The file's own line prefix around a template's text."""
    import datetime as dt
    when = dt.datetime.fromtimestamp(time_us / 1e6, dt.UTC)
    if kind in ("syslog", "auth"):
        return lambda text: f"{when.isoformat(timespec='microseconds')} {host} {text.replace('{pid}', str(pid))}"
    if kind == "access":
        return lambda text: text.replace("{clf}", when.strftime("%d/%b/%Y:%H:%M:%S +0000"))
    if kind == "nginx-error":
        return lambda text: f"{when.strftime('%Y/%m/%d %H:%M:%S')} {text.replace('{pid}', str(pid))}"
    if kind == "audit":
        return lambda text: f"{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} {text}"
    if kind == "app-json":
        return lambda text: text.replace("{iso}", when.isoformat(timespec="microseconds").replace("+00:00", "Z"))
    return lambda text: f"{when.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC [{pid}] {text}"


def lines(events: int, seed: int = 30):
    """(host, kind, line) for `events` lines in time order over the fleet."""
    rng = random.Random(seed)
    values = _Values(rng)
    templates = _templates()
    per_host = {host: [t for t in templates if t[0] in kinds] for host, kinds in HOSTS.items()}
    cumulative = {host: list(itertools.accumulate(t[1] for t in choices)) for host, choices in per_host.items()}
    host_names = list(HOSTS)
    host_weights = (4, 4, 3)
    pids = {host: rng.randrange(300, 4000) for host in HOSTS}
    time_us = START_US
    for _ in range(events):
        time_us += int(rng.expovariate(1 / MEAN_GAP_US)) + 1
        host = rng.choices(host_names, host_weights)[0]
        kind, _, text = rng.choices(per_host[host], cum_weights=cumulative[host])[0]
        if rng.random() < 0.02:
            pids[host] = rng.randrange(300, 400000)     # a new process now and then
        yield host, kind, _stamp(kind, host, time_us, pids[host])(text(values))


def write_corpus(folder: pathlib.Path, events: int, seed: int = 30) -> list[CorpusFile]:
    """Write `events` lines under folder/<host>/var/log/...; returns the files (with their counts)."""
    counts: dict[tuple[str, str], int] = {}
    buffers: dict[tuple[str, str], list[str]] = {}
    with contextlib.ExitStack() as files:
        handles = {}
        for host, kind, line in lines(events, seed):
            key = (host, kind)
            if key not in handles:
                path = folder / host / _FILES[kind][0]
                path.parent.mkdir(parents=True, exist_ok=True)
                handles[key] = files.enter_context(open(path, "w"))
                counts[key], buffers[key] = 0, []
            counts[key] += 1
            buffers[key].append(line + "\n")
            if len(buffers[key]) == 5000:
                handles[key].write("".join(buffers[key]))
                buffers[key] = []
        for key, handle in handles.items():
            handle.write("".join(buffers[key]))
    return [CorpusFile(host, folder / host / _FILES[kind][0], _FILES[kind][1], _FILES[kind][2], counts[(host, kind)])
            for host, kind in sorted(counts)]
