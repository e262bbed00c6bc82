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
do: request ids are random hex (they do not compress), clients are a few hundred returning
addresses and a stream of new ones (scanners too), users a few thousand with a few most active,
times advance by a random gap, durations and sizes are skewed. 42 templates in all. The same seed
always writes the same bytes.

    write_corpus(folder, events) -> list[CorpusFile]   (the files, with their agent source settings)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pathlib
import random
import string
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
    """The varying parts of lines, from one seeded generator: `fill` replaces each `{name:spec}`
    of a template by a fresh value (see `_field`)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.users = [f"{rng.choice(FIRST_NAMES)}.{rng.choice(FIRST_NAMES)}{rng.randrange(100)}" for _ in range(3000)]
        self.clients = [self.ip_public() for _ in range(400)]     # the returning visitors
        self.parsed: dict[str, list[tuple[str, str | None, str | None, str | None]]] = {}

    def fill(self, template: str) -> str:
        parts = self.parsed.get(template)
        if parts is None:
            parts = self.parsed[template] = list(string.Formatter().parse(template))
        out = []
        for literal, name, spec, _ in parts:
            out.append(literal)
            if name is not None:
                out.append(self._field(name, spec or ""))
        return "".join(out)

    def _field(self, name: str, spec: str) -> str:
        r = self.rng
        if name in ("pid", "clf", "iso"):
            return "{" + name + "}"                 # the file's own prefix fills these (_stamp)
        if name == "pick":                          # {pick:a|b|c}
            return r.choice(spec.split("|"))
        if name == "int":                           # {int:LOW-HIGH}
            low, high = spec.split("-")
            return str(r.randrange(int(low), int(high)))
        if name == "real":                          # {real:LOW-HIGH:DECIMALS}
            bounds, decimals = spec.split(":")
            low, high = bounds.split("-")
            return f"{r.uniform(float(low), float(high)):.{decimals}f}"
        if name == "ms":                            # {ms:SCALE:DECIMALS}: skewed, as durations are
            scale, decimals = spec.split(":")
            return f"{r.lognormvariate(0, 1) * float(scale):.{decimals}f}"
        if name == "hex":                           # {hex:DIGITS}: random, so incompressible
            return f"{r.getrandbits(int(spec) * 4):0{spec}x}"
        return str(getattr(self, name)())

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

    def staff(self) -> str:
        return self.rng.choice(STAFF)

    def scanned(self) -> str:
        return self.rng.choice(SCANNED_USERS)

    def uid(self) -> int:
        return 1000 + self.rng.randrange(12)

    def port(self) -> int:
        return self.rng.randrange(32768, 61000)

    def uptime(self) -> str:
        return f"{self.rng.uniform(1e5, 9e6):.6f}"

    def table(self) -> str:
        return self.rng.choice(TABLES)

    def agent(self) -> str:
        return self.rng.choice(AGENTS)

    def status(self) -> int:
        return self.rng.choices((200, 304, 301, 404, 499, 500, 502), (80, 8, 2, 6, 1, 1, 0.5))[0]

    def size(self) -> int:
        return int(self.rng.paretovariate(1.1) * 300)

    def path(self) -> str:
        template = self.rng.choices(PATHS, weights=(4, 10, 6, 14, 5, 8, 4, 10, 2, 3, 6, 2, 1, 1))[0]
        return template.format(n=self.rng.randrange(1, 60000), word=self.rng.choice(WORDS),
                               hex8=f"{self.rng.getrandbits(32):08x}")

    def unit(self) -> str:
        return self.rng.choice(UNITS).format(n=self.rng.randrange(1, 9000), uid=self.uid(), k=self.rng.randrange(4))

    def request_json(self) -> str:
        """A line of the app's JSON request log."""
        r = self.rng
        return json.dumps({
            "time": "{iso}", "level": r.choices(("info", "warning", "error"), (96, 3, 1))[0],
            "msg": r.choice(("request completed", "request completed", "cache miss", "db query")),
            "request_id": self.fill("{hex:16}"), "user": self.user() if r.random() < 0.6 else None,
            "method": "GET", "path": self.path(), "status": 200, "duration_ms": round(r.lognormvariate(0, 1) * 40, 2),
            "worker": f"shop-worker@{r.randrange(4)}"}, separators=(",", ":"))


SUDO_COMMANDS = "systemctl restart shop-worker@1|journalctl -u nginx -n 200|apt-get upgrade -y|tail -f /var/log/syslog"
CRON_COMMANDS = ("/opt/shop/bin/sync-stock --quiet|cd / && run-parts --report /etc/cron.hourly|"
                 "/usr/local/bin/backup.sh incremental")
SQL_COLUMNS = "id, status, total|sku, name, price|count(*)"
UNIT_NAMES = "Session of user|Daily apt activities|Rotate log files|Shop worker"

# (file kind, weight, template): `{pid}`, `{clf}` and `{iso}` are the file's own (_stamp); the
# other fields are _Values._field's. `{request_json}` is a whole JSON line.
TEMPLATES: tuple[tuple[str, float, str], ...] = (
    # /var/log/auth.log
    ("auth", 3.0, ("sshd[{pid}]: Accepted publickey for {staff} from {ip_private} port {port} ssh2: "
                  "ED25519 SHA256:{hex:22}")),
    ("auth", 0.4, "sshd[{pid}]: Accepted password for {staff} from {ip_private} port {port} ssh2"),
    ("auth", 6.0, "sshd[{pid}]: Failed password for invalid user {scanned} from {ip_public} port {port} ssh2"),
    ("auth", 6.0, "sshd[{pid}]: Invalid user {scanned} from {ip_public} port {port}"),
    ("auth", 5.0, "sshd[{pid}]: Connection closed by invalid user {scanned} {ip_public} port {port} [preauth]"),
    ("auth", 2.0, "sshd[{pid}]: Received disconnect from {ip_private} port {port}:11: disconnected by user"),
    ("auth", 3.0, "sshd[{pid}]: pam_unix(sshd:session): session opened for user {staff}(uid={uid}) by (uid=0)"),
    ("auth", 3.0, "sshd[{pid}]: pam_unix(sshd:session): session closed for user {staff}"),
    ("auth", 2.0, "sudo[{pid}]: {staff} : TTY=pts/{int:0-6} ; PWD=/home/{staff} ; USER=root ; "
                  "COMMAND=/usr/bin/{pick:" + SUDO_COMMANDS + "}"),
    ("auth", 2.0, "sudo[{pid}]: pam_unix(sudo:session): session opened for user root(uid=0) by {staff}(uid={uid})"),
    ("auth", 2.0, "systemd-logind[{pid}]: New session {int:1-9000} of user {staff}."),
    ("auth", 8.0, "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
    # /var/log/syslog
    ("syslog", 9.0, ("kernel: [{uptime}] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:{hex:2}:{hex:2}:{hex:2}:fe:ff:ff:ff:"
                    "ff:ff:08:00 SRC={ip_public} DST=203.0.113.{int:10-14} LEN={pick:40|44|52|60} TOS=0x00 "
                    "PREC=0x00 TTL={int:30-250} ID={int:0-65536} PROTO=TCP SPT={port} "
                    "DPT={pick:22|23|3389|5432|6379|8080|445} WINDOW={pick:1024|29200|65535} RES=0x00 SYN URGP=0")),
    ("syslog", 0.3, ("kernel: [{uptime}] TCP: request_sock_TCP: Possible SYN flooding on port {pick:80|443}. "
                    "Sending cookies.  Check SNMP counters.")),
    ("syslog", 0.2, ("kernel: [{uptime}] EXT4-fs (vda1): "
                    "{pick:re-mounted. Quota mode: none.|mounted filesystem with ordered data mode.}")),
    ("syslog", 0.05, ("kernel: [{uptime}] Out of memory: Killed process {int:1000-99999} (python3) "
                     "total-vm:{int:1000000-4000000}kB, anon-rss:{int:500000-2000000}kB, file-rss:0kB, "
                     "shmem-rss:0kB, UID:{uid} pgtables:{int:1000-9000}kB oom_score_adj:0")),
    ("syslog", 4.0, "systemd[1]: Started {unit} - {pick:" + UNIT_NAMES + "}."),
    ("syslog", 4.0, "systemd[1]: {unit}: Deactivated successfully."),
    ("syslog", 3.0, "systemd[1]: {unit}: Consumed {real:0.01-40:3}s CPU time, {real:0.5-300:1}M memory peak."),
    ("syslog", 2.0, ("systemd[1]: Starting {unit} - "
                    "{pick:Daily man-db regeneration|Discard unused blocks|Cleanup of Temporary Directories}...")),
    ("syslog", 5.4, "CRON[{pid}]: ({pick:root|deploy|backup}) CMD ({pick:" + CRON_COMMANDS + "})"),
    ("syslog", 0.6, ("CRON[{pid}]: (root) CMD (   test -x /etc/cron.daily/popularity-contest && "
                    "/etc/cron.daily/popularity-contest --crond)")),
    ("syslog", 0.6, ("systemd-resolved[{pid}]: Using degraded feature set UDP instead of UDP+EDNS0 for DNS server "
                    "{ip_private}.")),
    ("syslog", 0.4, ("systemd-timesyncd[{pid}]: Initial synchronization to time server {ip_public}:123 "
                    "(ntp.ubuntu.com).")),
    # nginx: the access log (combined format plus the request time) and the error log
    ("access", 160.0, ('{client} - - [{clf}] "{pick:GET|GET|GET|GET|GET|GET|POST|HEAD} {path} HTTP/{pick:1.1|2.0}" '
                      '{status} {size} "{pick:-|https://shop.example.com/|https://www.google.com/}" "{agent}" '
                      "rt={ms:0.02:3}")),
    ("nginx-error", 1.0, ("[error] {pid}#{pid}: *{int:1000000-100000000} upstream timed out (110: Connection timed "
                         "out) while reading response header from upstream, client: {client}, server: "
                         'shop.example.com, request: "GET {path} HTTP/1.1", upstream: "http://127.0.0.1:8000/", '
                         'host: "shop.example.com"')),
    ("nginx-error", 1.5, ("[warn] {pid}#{pid}: *{int:1000000-100000000} an upstream response is buffered to a "
                         "temporary file /var/cache/nginx/proxy_temp/{int:0-10}/{int:10-99}/{int:1000000000-9999999999}"
                         " while reading upstream")),
    # the app's audit log (TIME LEVEL key=value) and its JSON request log
    ("audit", 14.0, ("INFO req={hex:16} user={user} action=login result=success ip={client} "
                    "method={pick:password|totp|sso}")),
    ("audit", 2.0, ("WARN req={hex:16} user={user} action=login result=failure "
                   "reason={pick:bad_password|locked|expired_totp} ip={ip_public}")),
    ("audit", 16.0, "INFO req={hex:16} user={user} action={pick:" + "|".join(ACTIONS) + "} "
                    "object={pick:order|cart|doc}:{int:0-1000000} result=ok took={ms:40:0}ms"),
    ("audit", 6.0, ("INFO req={hex:16} user={user} action=payment.capture amount={real:3-900:2} "
                   "currency={pick:EUR|EUR|GBP|USD} provider=stripe result=ok took={ms:120:0}ms")),
    ("audit", 0.8, ("ERROR req={hex:16} user={user} action=payment.capture provider=stripe result=declined "
                   "code={pick:card_declined|expired_card|processing_error}")),
    ("audit", 0.3, ("NOTICE req={hex:16} user={staff} action=permission.change target={user} "
                   "role={pick:support|manager|viewer} result=ok")),
    ("audit", 0.2, ("WARN req={hex:16} user={user} action=export.download "
                   "file=/srv/exports/customers-{int:2020-2026}.csv rows={int:100-90000} result=denied")),
    ("app-json", 40.0, "{request_json}"),
    # PostgreSQL
    ("postgres", 60.0, "LOG:  duration: {ms:8:3} ms  execute <unnamed>: SELECT {pick:" + SQL_COLUMNS + "} FROM "
                       "{table} WHERE {pick:id|customer_id|order_id} = $1"),
    ("postgres", 15.0, ("LOG:  connection authorized: user=shop database=shop application_name=shop-worker@{int:0-4} "
                       "SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)")),
    ("postgres", 15.0, ("LOG:  disconnection: session time: 0:{int:10-60}:{real:10-60:3} user=shop database=shop "
                       "host={ip_private} port={port}")),
    ("postgres", 0.5, ("LOG:  checkpoint complete: wrote {int:100-9000} buffers ({real:0-9:1}%); 0 WAL file(s) "
                      "added, 0 removed, {int:0-4} recycled; write={real:1-270:3} s, sync={real:0-0.5:3} s, "
                      "total={real:1-270:3} s")),
    ("postgres", 2.0, ('LOG:  automatic vacuum of table "shop.public.{table}": index scans: {int:0-2}, pages: 0 '
                      "removed, {int:0-100000} remain, tuples: {int:0-5000} removed, {int:0-1000000} remain")),
    ("postgres", 0.4, ('ERROR:  duplicate key value violates unique constraint "{table}_pkey" DETAIL:  Key (id)='
                      "({int:0-10000000}) already exists.")),
    ("postgres", 0.2, 'FATAL:  password authentication failed for user "{scanned}"'),
)


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
    per_host = {host: [t for t in TEMPLATES if t[0] in kinds] for host, kinds in HOSTS.items()}
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
        yield host, kind, _stamp(kind, host, time_us, pids[host])(values.fill(text))


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
