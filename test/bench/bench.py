#!/usr/bin/env python3
"""Throughput, pacing and memory benchmark of stockx_enrich behind a strict limiter.

Started by test/bench/bench.sh (as postgres, in a scratch directory); see
test/bench/README.md.  Per scenario it starts nginx on 127.0.0.1 (limit_req
with no burst in front of the StockX stand-in, or, for the ceiling scenarios,
serving prepared answer files itself), restarts the cluster with the
scenario's settings, enqueues N SKUs, runs the workers, and measures at the
gateway (nginx's access log) and at the workers (/proc).  Prints one table.

With a network delay (--net-jitter, scenarios 7-10) the workers talk to
jitter_proxy.py (next to this file), which holds each request for a random
0..J ms before passing it to nginx.

Every process it starts (stand-in, nginx, delay proxy, PostgreSQL, psql) is
stopped before it returns, also on SIGINT/SIGTERM and on errors.
"""
import argparse, http.client, importlib.util, inspect, json, math, os, shutil, signal, socket, subprocess
import statistics, sys, time, urllib.error, urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
RSS_THRESHOLD_MAX = 1000        # "start" RSS: when a worker has done this many products (or 10%)
TOKEN = "test-access-token"     # the stand-in's static bearer


class Interrupted(Exception):
    pass


def log(msg):
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


def stop_process(proc, sig, what, timeout=15):
    """Signal one process we started and reap it (SIGKILL after timeout)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{what} did not stop in {timeout} s: killing pid {proc.pid}")
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- stand-in

class Standin:
    def __init__(self, script, scratch):
        self.port_file = os.path.join(scratch, "standin.port")
        self.err = open(os.path.join(scratch, "standin.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, script, "--port", "0", "--port-file", self.port_file],
            stdout=self.err, stderr=self.err, start_new_session=True)
        with open(os.path.join(scratch, "standin.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 15
        while not (os.path.exists(self.port_file) and os.path.getsize(self.port_file)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stand-in did not start (see standin.log)")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def config(self, patch):
        status, answer = self.admin("POST", "/_admin/config", patch)
        if status != 200:
            raise RuntimeError(f"stand-in refused config {patch}: {answer}")

    def supports(self, key, value):
        """True when the stand-in's config knows key (setting it to value)."""
        status, _ = self.admin("POST", "/_admin/config", {key: value})
        return status == 200

    def stop(self):
        stop_process(self.proc, signal.SIGTERM, "stand-in")
        self.err.close()


# ---------------------------------------------------------------- nginx

NGINX_COMMON = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    default_type application/json;
    keepalive_requests 1000000;
    # arrival at the gateway = $msec - $request_time (millisecond resolution)
    log_format bench '$msec $request_time $status $upstream_status $request_uri';
    upstream standin {{
        server 127.0.0.1:{standin};
        keepalive 32;
    }}
{limit_zone}
    server {{
        listen 127.0.0.1:{port};
        server_name bench;
        access_log {d}/access.log bench{log_buffer};
        location = /oauth/token {{
            proxy_pass http://standin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
{api}
        location / {{ return 404; }}
    }}
}}
"""

NGINX_PROXY = """\
        location /v2/ {{
{limit}
            proxy_pass http://standin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
        }}
"""

NGINX_STATIC = """\
        # answers prepared in advance from the stand-in's catalogue functions
        root {www};
        location = /v2/catalog/search {{
{limit}
            try_files /search/$arg_query =404;
        }}
        location /v2/catalog/products/ {{
{limit}
        }}
"""


def nginx_rate(rate):
    """limit_req rate string: whole requests per second or per minute."""
    if float(rate).is_integer():
        return f"{int(rate)}r/s"
    per_min = rate * 60
    if abs(per_min - round(per_min)) > 1e-9 or round(per_min) < 1:
        raise SystemExit(f"--rate {rate}: nginx needs whole requests per second or per minute")
    return f"{int(round(per_min))}r/m"


class Nginx:
    def __init__(self, binary, scratch, standin_port):
        self.binary, self.standin_port = binary, standin_port
        self.dir = os.path.join(scratch, "nginx")
        self.www = os.path.join(scratch, "www")
        self.proc = None
        self.port = None

    def start(self, rate, static):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        limit_zone = limit = ""
        if rate:
            # one key for every client: the limit is the account's, like StockX's
            limit_zone = (f"    limit_req_zone $server_name zone=api:1m rate={nginx_rate(rate)};\n"
                          "    limit_req_status 429;\n")
            limit = "            limit_req zone=api;"      # no burst: strict
        if static:
            api = NGINX_STATIC.format(www=self.www, limit=limit)
        else:
            api = NGINX_PROXY.format(limit=limit)
        conf = NGINX_COMMON.format(d=self.dir, standin=self.standin_port, port=self.port,
                                   limit_zone=limit_zone, api=api,
                                   # unbuffered at limited rates: the 429 scenario reads it live
                                   log_buffer=" buffer=256k flush=1s" if static else "")
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.errfile = open(os.path.join(self.dir, "stderr.log"), "w")
        self.proc = subprocess.Popen([self.binary, "-p", self.dir + "/", "-c", path,
                                      "-e", os.path.join(self.dir, "error.log")],
                                     stdout=self.errfile, stderr=self.errfile,
                                     start_new_session=True)
        try:
            wait_port(self.port, self.proc, "nginx")
        except RuntimeError:
            self.errfile.close()
            with open(os.path.join(self.dir, "stderr.log")) as f:
                sys.stderr.write(f.read())
            raise

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT, "nginx")   # graceful: flushes the log
            self.proc = None
            self.errfile.close()

    @property
    def access_log(self):
        return os.path.join(self.dir, "access.log")


def read_access_log(path):
    """[(arrival_ms, status, upstream_status, uri, request_uri)] of /v2 requests
    (uri without the query), by arrival."""
    out = []
    try:
        f = open(path)
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            parts = line.split()
            if len(parts) != 5 or not parts[4].startswith("/v2/"):     # not the token
                continue
            msec, rtime, status, upstream, target = parts
            uri = target.split("?", 1)[0]
            arrival = int(msec.replace(".", "")) - int(rtime.replace(".", ""))
            out.append((arrival, int(status), upstream, uri, target))
    out.sort(key=lambda e: e[0])
    return out


# ---------------------------------------------------------------- network delay

class DelayProxy:
    """jitter_proxy.py between the workers and nginx: each request is held
    for a uniform random 0..J ms, independently, before it goes to nginx."""

    def __init__(self, script, scratch):
        self.script, self.scratch = script, scratch
        self.proc = None
        self.port = None
        self.log = os.path.join(scratch, "proxy.log")

    def start(self, upstream_port, jitter_ms):
        port_file = os.path.join(self.scratch, "proxy.port")
        for f in (port_file, self.log):
            if os.path.exists(f):
                os.unlink(f)
        self.err = open(os.path.join(self.scratch, "proxy.stderr"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, self.script, "--upstream-port", str(upstream_port),
             "--jitter-ms", f"{jitter_ms:g}", "--port", "0", "--port-file", port_file,
             "--log", self.log],
            stdout=self.err, stderr=self.err, start_new_session=True)
        with open(os.path.join(self.scratch, "proxy.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 15
        while not (os.path.exists(port_file) and os.path.getsize(port_file)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the delay proxy did not start (see proxy.stderr)")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, "delay proxy")    # flushes its log
            self.proc = None
            self.err.close()

    def requests(self):
        """{request target: [(receipt epoch ms, drawn ms, held ms), ...]} in the
        order the proxy sent them, and the number of client connections."""
        out = {}
        conns = set()
        try:
            f = open(self.log)
        except FileNotFoundError:
            return out, 0
        with f:
            for line in f:
                parts = line.split()
                if len(parts) != 7:
                    continue
                conn, _seq, recv, drawn, held, _method, target = parts
                conns.add(conn)
                out.setdefault(target, []).append(
                    (float(recv) * 1000.0, float(drawn), float(held)))
        for v in out.values():
            v.sort(key=lambda e: e[0] + e[2])
        return out, len(conns)


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# ---------------------------------------------------------------- PostgreSQL

class Psql:
    """One psql session on a pipe; query() returns rows as lists of strings."""

    def __init__(self, bindir, sockdir, port):
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "psql"), "-X", "-q", "-A", "-t", "-F", "|",
             "-h", sockdir, "-p", str(port), "-d", "postgres"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.query("SET client_min_messages = warning")

    def query(self, sql):
        self.proc.stdin.write(sql.strip().rstrip(";") + ";\n\\echo __bench_end__\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"psql ended during: {sql}\n" + "\n".join(lines))
            line = line.rstrip("\n")
            if line == "__bench_end__":
                break
            lines.append(line)
        if any(l.startswith(("ERROR:", "FATAL:", "psql:")) for l in lines):
            raise RuntimeError(f"query failed: {sql}\n" + "\n".join(lines))
        return [l.split("|") for l in lines if l]

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Cluster:
    PORT = 5432     # Unix socket in the scratch directory only: no clash with other clusters

    def __init__(self, bindir, scratch, max_workers):
        self.bindir, self.scratch = bindir, scratch
        self.data = os.path.join(scratch, "pgdata")
        self.logfile = os.path.join(scratch, "postgresql.log")
        self.running = False
        subprocess.run([self.bin("initdb"), "-D", self.data, "-A", "trust", "-E", "UTF8",
                        "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = ''
unix_socket_directories = '{scratch}'
port = {self.PORT}
shared_preload_libraries = 'stockx_enrich'
stockx_enrich.max_workers = {max_workers}
max_worker_processes = {max_workers + 8}
include_if_exists = 'bench.conf'
""")

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def pg_ctl(self, *args):
        subprocess.run([self.bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", *args],
                       check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self.pg_ctl("start")
        self.running = True

    def restart(self, settings):
        with open(os.path.join(self.data, "bench.conf"), "w") as f:
            for name, value in settings.items():
                quoted = str(value).replace("'", "''")
                f.write(f"{name} = '{quoted}'\n")
        if self.running:
            self.pg_ctl("-m", "fast", "restart")
        else:
            self.start()

    def stop(self):
        if self.running:
            self.running = False
            subprocess.run([self.bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def psql(self):
        return Psql(self.bindir, self.scratch, self.PORT)


# ---------------------------------------------------------------- /proc

def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime + stime


def proc_rss_anon_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


class WorkerWatch:
    """Finds the stockx_enrich workers among the postmaster's children and
    keeps the last CPU time and RssAnon read for each before it exits."""

    def __init__(self, postmaster_pid):
        self.children = f"/proc/{postmaster_pid}/task/{postmaster_pid}/children"
        self.others = set()
        self.workers = {}   # pid -> {"ticks", "rss", "rss_start", "processed"}

    def sample(self):
        try:
            with open(self.children) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            if pid in self.workers or pid in self.others:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"stockx_enrich worker" in cmd:
                self.add(pid)
            elif cmd.startswith(b"postgres: "):
                self.others.add(pid)
            # else: just forked, still the postmaster's command line: look again
        for pid, w in self.workers.items():
            if not w["alive"]:
                continue
            try:
                # an exiting process (zombie) keeps its final CPU times but has
                # no memory left to report: keep the last RssAnon read
                w["ticks"] = proc_cpu_ticks(pid)
                rss = proc_rss_anon_kb(pid)
                if rss is not None:
                    w["rss"] = rss
            except (OSError, IndexError, ValueError):
                w["alive"] = False

    def add(self, pid):
        self.workers[pid] = {"ticks": 0, "rss": None, "rss_start": None,
                             "processed": 0, "alive": True}
        self.others.discard(pid)

    def note_processed(self, pid, processed, threshold):
        if pid not in self.workers:
            self.add(pid)
            self.sample()
        w = self.workers.get(pid)
        if w is None or not w["alive"]:
            return
        w["processed"] = processed
        if w["rss_start"] is None and processed >= threshold:
            try:
                w["rss_start"] = proc_rss_anon_kb(pid)
            except (OSError, ValueError):
                pass

    def alive(self):
        return [p for p, w in self.workers.items() if w["alive"]]


# ---------------------------------------------------------------- scenarios

def suite():
    return [
        dict(key="1", name="1 limit 1/s", rate=1, latency_ms=50, workers=4, skus=40,
             target="0 429s, util>=0.98",
             check=lambda r: r["n429"] == 0 and ge(r["util"], 0.98)),
        dict(key="2", name="2 limit 10/s", rate=10, latency_ms=50, workers=4, skus=100,
             target="0 429s, util>=0.95",
             check=lambda r: r["n429"] == 0 and ge(r["util"], 0.95)),
        dict(key="3", name="3 slow answers", rate=1, latency_ms=1500, jitter_pct=30,
             workers=0, skus=40, target="0 429s, util>=0.95",
             check=lambda r: r["n429"] == 0 and ge(r["util"], 0.95)),
        dict(key="4", name="4 forced 429", rate=10, latency_ms=50, workers=4, skus=160,
             inject_429=True, target="util 30s after 429>=0.9",
             check=lambda r: ge(r["util"], 0.9)),
        dict(key="5", name="5 ceiling", rate=0, static=True, workers=2, skus=5000,
             target=">=500 prod/s, <1 CPU ms/prod",
             check=lambda r: ge(r["pps"], 500) and r["cpu_ms"] is not None and r["cpu_ms"] < 1),
        dict(key="6", name="6 memory", rate=0, static=True, workers=1, skus=20000,
             rss_threshold=1000, target="RssAnon grows <2 MB",
             check=lambda r: r["rss_growth_kb"] is not None and r["rss_growth_kb"] < 2048),
    ] + jitter_suite()


JITTER_KEYS = ("7", "8", "9", "10")
DEFAULT_KEYS = ("1", "2", "3", "4", "5", "6")


def jitter_suite():
    """Network delay between the workers and the gateway: the delay proxy holds
    each request for a uniform 0..J ms.  The extension keeps its defaults (the
    pacing margin included); 70 SKUs = 210 requests at 1 r/s."""
    one = "at most one 429, none after the first minute, utilization >= 0.93"
    def one_ok(r):
        return (r["n429"] <= 1 and all(t <= 60.0 for t in r["t429"])
                and ge(r["util"], 0.93))
    return [
        dict(key="7", name="7 net 0 ms", rate=1, latency_ms=50, workers=4, skus=70,
             net_jitter=0, target=one, check=one_ok),
        dict(key="8", name="8 net 0-20 ms", rate=1, latency_ms=50, workers=4, skus=70,
             net_jitter=20, target=one, check=one_ok),
        dict(key="9", name="9 net 0-40 ms", rate=1, latency_ms=50, workers=4, skus=70,
             net_jitter=40, target=one, check=one_ok),
        dict(key="10", name="10 net 0 ms 10/s", rate=10, latency_ms=50, workers=4, skus=200,
             net_jitter=0, target="utilization >= 0.95, no 429",
             check=lambda r: r["n429"] == 0 and ge(r["util"], 0.95)),
    ]


def ge(x, bound):
    return x is not None and x >= bound


class Bench:
    def __init__(self, args):
        self.args = args
        self.scratch = args.scratch
        self.standin = self.nginx = self.cluster = self.proxy = None
        self.generated = 0

    # -- set-up

    def setup(self, scenarios):
        a = self.args
        self.standin = Standin(a.standin, self.scratch)
        self.nginx = Nginx(a.nginx, self.scratch, self.standin.port)
        if any(s.get("net_jitter") is not None for s in scenarios):
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jitter_proxy.py")
            if not os.path.exists(script):
                raise RuntimeError(f"no delay proxy at {script}")
            self.proxy = DelayProxy(script, self.scratch)
        max_workers = max([4] + [s["workers"] for s in scenarios])
        self.cluster = Cluster(a.bindir, self.scratch, max_workers)
        self.cluster.start()
        db = self.cluster.psql()
        try:
            db.query("CREATE EXTENSION stockx_enrich")
            rows = db.query("SELECT name, min_val, max_val, boot_val FROM pg_settings "
                            "WHERE name LIKE 'stockx\\_enrich.%'")
            self.settings = {r[0]: (r[1], r[2]) for r in rows}
            self.defaults = {r[0]: r[3] for r in rows}
            self.versions = db.query(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'stockx_enrich')")[0]
        finally:
            db.close()
        self.max_rps = float(self.settings["stockx_enrich.requests_per_second"][1])

    def base_settings(self, sc):
        # with a network delay the workers reach nginx through the delay proxy
        port = self.proxy.port if sc.get("net_jitter") is not None else self.nginx.port
        base = f"http://127.0.0.1:{port}"
        s = {
            "stockx_enrich.api_base_url": base + "/v2",
            "stockx_enrich.token_url": base + "/oauth/token",
            "stockx_enrich.api_key": "test-api-key",
            "stockx_enrich.client_id": "test-client",
            "stockx_enrich.client_secret": "test-secret",
            "stockx_enrich.refresh_token": "test-refresh",
            "stockx_enrich.daily_request_limit": 0,
            "stockx_enrich.burst": 1,
            "stockx_enrich.requests_per_second": sc["rate"] or self.max_rps,
        }
        optional = {}
        if sc.get("static"):
            # nginx serves the answers: no token call, the stand-in's static bearer
            s["stockx_enrich.access_token"] = TOKEN
            # no gateway to be early for at the ceiling: no pacing margin
            optional["pacing_margin_ms"] = 0
        optional.update(self.command_line_settings())
        for name, value in optional.items():
            full = name if name.startswith("stockx_enrich.") else "stockx_enrich." + name
            if full in self.settings:          # settings this build lacks are skipped
                s[full] = value
        return s

    def command_line_settings(self):
        given = dict(self.args.set)
        if self.args.in_flight is not None:
            given["requests_in_flight"] = self.args.in_flight
        if self.args.pacing_margin_ms is not None:
            given["pacing_margin_ms"] = self.args.pacing_margin_ms
        return given

    def generate_files(self, n):
        """Search, variants and market-data answers of SKUs ST-00001.. for nginx,
        made with the stand-in's own catalogue functions and checked against
        what the running stand-in answers (fetched from it if they differ)."""
        if n <= self.generated:
            return
        self.standin.admin("POST", "/_admin/reset", {})
        cfg = self.standin.admin("GET", "/_admin/config")[1]
        spec = importlib.util.spec_from_file_location("stockx_standin", self.args.standin)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)

        def takes_cfg(fn, nargs):
            return len(inspect.signature(fn).parameters) >= nargs

        product = ((lambda s, k: mod.make_product(s, k, cfg))
                   if takes_cfg(mod.make_product, 3) else mod.make_product)
        hits = ((lambda s: mod.search_hits(s, cfg))
                if takes_cfg(mod.search_hits, 2) else mod.search_hits)

        def from_module(sku):
            kind = mod.kind_of(sku)
            products = [product(s, k) for s, k in hits(sku)]
            search = {"count": len(products), "pageSize": 50, "pageNumber": 1,
                      "hasNextPage": False, "products": products}
            return (search, product(sku, kind)["productId"],
                    mod.make_variants(sku, kind, cfg), mod.make_market(sku, kind, cfg, "USD"))

        conn = http.client.HTTPConnection("127.0.0.1", self.standin.port, timeout=30)
        headers = {"x-api-key": "test-api-key", "Authorization": "Bearer " + TOKEN}

        def get(path):
            conn.request("GET", "/v2/catalog" + path, headers=headers)
            res = conn.getresponse()
            body = res.read()
            if res.status != 200:
                raise RuntimeError(f"stand-in answered {res.status} to {path}")
            return json.loads(body)

        def from_standin(sku):
            search = get(f"/search?query={sku}&pageNumber=1&pageSize=50")
            pid = [p for p in search["products"] if p["styleId"] == sku][0]["productId"]
            return (search, pid, get(f"/products/{pid}/variants"),
                    get(f"/products/{pid}/market-data?currencyCode=USD"))

        make = from_module
        try:
            same = from_module(static_sku(1)) == from_standin(static_sku(1))
        except Exception:
            same = False
        if not same:
            log("the stand-in's catalogue functions differ from its answers: fetching them")
            make = from_standin
        www = self.nginx.www
        log(f"writing answer files for {n} SKUs")
        os.makedirs(os.path.join(www, "search"), exist_ok=True)
        try:
            for i in range(self.generated + 1, n + 1):
                sku = static_sku(i)
                search, pid, variants, market = make(sku)
                pdir = os.path.join(www, "v2", "catalog", "products", pid)
                os.makedirs(pdir, exist_ok=True)
                for path, body in ((os.path.join(www, "search", sku), search),
                                   (os.path.join(pdir, "variants"), variants),
                                   (os.path.join(pdir, "market-data"), market)):
                    with open(path, "w", encoding="utf-8") as f:
                        json.dump(body, f, ensure_ascii=False)
        finally:
            conn.close()
        self.generated = n

    # -- one scenario

    def run(self, sc):
        static = sc.get("static", False)
        rate = sc["rate"]
        row = dict(sc=sc, notes=[])
        latency = sc.get("latency_ms", 0)
        jitter = sc.get("jitter_pct", 0)
        if static:
            self.generate_files(sc["skus"])
            row["latency"] = "nginx files"
        else:
            self.standin.admin("POST", "/_admin/reset", {})
            self.standin.config({"latency_ms": latency})
            if jitter and not self.standin.supports("latency_jitter_pct", jitter):
                row["notes"].append("stand-in has no latency_jitter_pct: fixed latency")
                jitter = 0
            row["latency"] = f"{latency} ms" + (f" ±{jitter:g}%" if jitter else "")
        net = sc.get("net_jitter")
        row["net"] = "-" if net is None else f"0-{net:g} ms" if net else "0 ms"
        log(f"scenario {sc['name']}: {sc['skus']} SKUs, "
            f"{'no limit' if not rate else f'limit {rate:g}/s'}, latency {row['latency']}, "
            f"workers {sc['workers'] or 'default'}"
            + ("" if net is None else f", network delay {row['net']} (proxy)"))

        self.nginx.start(rate, static)
        db = None
        try:
            if net is not None:
                self.proxy.start(self.nginx.port, net)
            self.cluster.restart(self.base_settings(sc))
            db = self.cluster.psql()
            # stockx_quota too: the limiter persists its day count, rolling
            # window and learnt pacing margin there, and each scenario starts
            # from nothing learnt
            db.query("TRUNCATE stockx_product, stockx_price_history, stockx_quota CASCADE")
            prefix = "ST-" if static else f"B{sc['key']}-"
            db.query(f"SELECT stockx_enrich_enqueue(array_agg('{prefix}' || lpad(g::text, 5, '0'))) "
                     f"FROM generate_series(1, {sc['skus']}) g")
            self.measure(sc, row, db)
        finally:
            if db is not None:
                db.close()
            if self.proxy is not None:
                self.proxy.stop()
            self.nginx.stop()
        self.gateway_figures(sc, row)
        if net is not None:
            self.proxy_figures(sc, row)
        row["met"] = sc["check"](row) if "check" in sc else None
        return row

    def measure(self, sc, row, db):
        a = self.args
        watch = WorkerWatch(self.cluster.postmaster_pid())
        workers = sc["workers"]
        per_worker = sc["skus"] / max(1, workers)
        threshold = sc.get("rss_threshold") or min(RSS_THRESHOLD_MAX,
                                                     max(1, math.ceil(per_worker / 10)))
        expected = sc["skus"] * 3 / sc["rate"] if sc["rate"] else sc["skus"] / 100
        if sc.get("latency_ms") and workers <= 1:
            expected = max(expected, sc["skus"] * 3 * (sc["latency_ms"] / 1000.0 + 0.05))
        timeout = a.timeout or 2 * expected + 60
        try:
            log_start = os.path.getsize(self.cluster.logfile)
        except OSError:
            log_start = 0
        t0 = time.monotonic()
        run_id = db.value(f"SELECT stockx_enrich_start({workers})" if workers
                          else "SELECT stockx_enrich_start()")
        inject_done = not sc.get("inject_429")
        last_poll = 0.0
        finished = stopped = False
        while True:
            now = time.monotonic()
            watch.sample()
            if now - last_poll >= 0.2:
                last_poll = now
                for pid, processed in db.query("SELECT pid, processed FROM stockx_enrich_status "
                                               "WHERE pid IS NOT NULL"):
                    watch.note_processed(int(pid), int(processed), threshold)
                finished = db.value(f"SELECT finished_at IS NOT NULL FROM stockx_run "
                                    f"WHERE run_id = {run_id}") == "t"
                if not inject_done:
                    accepted = [e for e in read_access_log(self.nginx.access_log) if e[1] != 429]
                    if len(accepted) >= 50:      # about 5 s at full speed
                        self.standin.config({"fail_next": [{"status": 429, "count": 1}]})
                        row["injected_after"] = len(accepted)
                        inject_done = True
            if finished and not watch.alive():
                break
            if not stopped and now - t0 > timeout:
                log(f"timeout after {timeout:.0f} s: stockx_enrich_stop()")
                row["notes"].append(f"stopped at the {timeout:.0f} s timeout")
                db.query("SELECT stockx_enrich_stop(10000)")
                stopped = True
            if stopped and now - t0 > timeout + 30:
                raise RuntimeError("the run did not end after stockx_enrich_stop()")
            time.sleep(0.05)
        r = db.query(f"SELECT processed, requests, responses_429, stop_reason, "
                     f"extract(epoch FROM finished_at - started_at), enriched, not_found, failed "
                     f"FROM stockx_run WHERE run_id = {run_id}")[0]
        row.update(run_id=run_id, processed=int(r[0]), run_requests=int(r[1]),
                   run_429=int(r[2]), stop_reason=r[3], seconds=float(r[4]))
        if r[3] != "done":
            row["notes"].append(f"run ended '{r[3]}'")
            if r[3] not in ("stopped", "max_products"):
                row["notes"].extend(self.server_errors(log_start))
        if int(r[5]) != int(r[0]):
            row["notes"].append(f"of {r[0]} products {r[5]} enriched, {r[6]} not found, "
                                f"{r[7]} failed")
            why = db.query("SELECT last_error, count(*) FROM stockx_product "
                           "WHERE status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 3")
            for err, count in why:
                row["notes"].append(f"{count} failed: {err}")
        ws = list(watch.workers.values())
        row["nworkers_seen"] = len(ws)
        ticks = sum(w["ticks"] for w in ws)
        row["cpu_ms"] = ticks * 1000.0 / CLK_TCK / row["processed"] if row["processed"] else None
        starts = [w["rss_start"] for w in ws if w["rss_start"] is not None]
        ends = [w["rss"] for w in ws if w["rss"] is not None]
        row["rss_start_kb"] = max(starts) if starts else None
        row["rss_end_kb"] = max(ends) if ends else None
        row["rss_threshold"] = threshold
        row["rss_growth_kb"] = (row["rss_end_kb"] - row["rss_start_kb"]
                                if starts and ends else None)
        row["pps"] = row["processed"] / row["seconds"] if row["seconds"] else None

    def server_errors(self, start, most=3):
        """The first ERROR/FATAL lines of the server log since offset start."""
        out = []
        try:
            with open(self.cluster.logfile, errors="replace") as f:
                f.seek(start)
                for line in f:
                    if "ERROR:" in line or "FATAL:" in line:
                        out.append("server log: " + line.strip()[:300])
                        if len(out) == most:
                            break
        except OSError:
            pass
        return out

    def gateway_figures(self, sc, row):
        reqs = read_access_log(self.nginx.access_log)
        rate = sc["rate"]
        row["requests"] = len(reqs)
        row["n429"] = sum(1 for e in reqs if e[1] == 429)
        row["n429_upstream"] = sum(1 for e in reqs if e[1] == 429 and e[2] == "429")
        row["rpp"] = len(reqs) / row["processed"] if row["processed"] else None
        if row["requests"] != row["run_requests"]:
            row["notes"].append(f"the run counted {row['run_requests']} requests")
        accepted = [e[0] for e in reqs if e[1] != 429]
        # when the 429s reached the gateway: seconds after the first API request did
        row["t429"] = [(e[0] - reqs[0][0]) / 1000.0 for e in reqs if e[1] == 429]
        row["util"] = None
        if rate and len(accepted) >= 2 and accepted[-1] > accepted[0]:
            row["util"] = (len(accepted) - 1) / ((accepted[-1] - accepted[0]) / 1000.0 * rate)
        if sc.get("inject_429"):
            forced = [e for e in reqs if e[1] == 429 and e[2] == "429"]
            if not forced:
                row["notes"].append("the forced 429 was not seen")
                row["util"] = None
                return
            t429 = forced[0][0]
            end = min(t429 + 30000, accepted[-1])
            n = sum(1 for t in accepted if t429 < t <= end)
            row["notes"].append(
                f"util is over the {(end - t429) / 1000:.0f} s after the forced 429 "
                f"(sent after {row.get('injected_after')} requests); whole run "
                f"{fmt(row['util'], 3)}")
            row["util"] = n / ((end - t429) / 1000.0 * rate) if end > t429 else None

    def proxy_figures(self, sc, row):
        """Footnote: the delays the proxy drew, and what it added beyond them as
        nginx saw it (arrival at nginx - receipt at the proxy - drawn delay;
        nginx stamps to the millisecond, so +-1 ms)."""
        sent, conns = self.proxy.requests()
        drawn = [e[1] for v in sent.values() for e in v]
        held = [e[2] - e[1] for v in sent.values() for e in v]
        extra = []
        seen = {}
        for e in read_access_log(self.nginx.access_log):
            k = seen.get(e[4], 0)
            seen[e[4]] = k + 1
            v = sent.get(e[4])
            if v and k < len(v):
                recv, d, _ = v[k]
                extra.append(e[0] - recv - d)
        if not drawn:
            row["notes"].append("the delay proxy logged no request")
            return
        J = sc["net_jitter"]
        text = (f"delay proxy: {len(drawn)} requests (token calls included) on {conns} "
                f"keep-alive connection{'s' if conns != 1 else ''}, "
                + (f"drawn delay mean {statistics.fmean(drawn):.1f} ms (uniform 0-{J:g}: "
                   f"{J / 2:g})" if J else "no delay drawn (J = 0)")
                + "; held beyond it in the proxy p50 "
                f"{pct(held, 0.5):.3f} / p99 {pct(held, 0.99):.3f} / max {max(held):.3f} ms")
        if extra:
            text += (f"; nginx arrival - (proxy receipt + drawn), {len(extra)} matched, ms "
                     f"resolution: p50 {pct(extra, 0.5):.1f} / p99 {pct(extra, 0.99):.1f} / "
                     f"max {max(extra):.1f} ms")
        row["notes"].append(text)


def static_sku(i):
    return "ST-%05d" % i


def fmt(x, digits):
    return "-" if x is None else f"{x:.{digits}f}"


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.2f}"


def print_table(rows, bench, wall):
    head = ["scenario", "limit", "latency", "net delay", "workers", "SKUs", "requests", "429s",
            "429 at s", "util", "req/prod", "CPU ms/prod", "run s", "prod/s",
            "RssAnon MB start>end", "target", "met"]
    lines = []
    notes = []
    for r in rows:
        sc = r["sc"]
        marks = ""
        for n in r["notes"]:
            notes.append(n)
            marks += f"[{len(notes)}]"
        rss = f"{mb(r['rss_start_kb'])}>{mb(r['rss_end_kb'])}"
        times = [f"{t:.1f}" for t in r["t429"]]
        if len(times) > 6:
            notes.append(f"{sc['name']}: 429s at " + ", ".join(times) + " s")
            times = times[:5] + [f"+{len(times) - 5} [{len(notes)}]"]
        lines.append([
            sc["name"] + marks,
            f"{sc['rate']:g} r/s" if sc["rate"] else f"none ({bench.max_rps:g})",
            r["latency"],
            r["net"],
            str(sc["workers"]) if sc["workers"] else "1 (default)",
            str(sc["skus"]),
            str(r["requests"]),
            str(r["n429"]) + (f" ({r['n429_upstream']} stand-in)" if r["n429_upstream"] else ""),
            ",".join(times) or "-",
            fmt(r["util"], 3), fmt(r["rpp"], 2),
            fmt(r["cpu_ms"], 2), fmt(r["seconds"], 1), fmt(r["pps"], 1), rss, sc.get("target", ""),
            "" if r["met"] is None else ("yes" if r["met"] else "NO")])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = []
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    for l in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(l, widths)).rstrip())
    for i, n in enumerate(notes, 1):
        out.append(f"[{i}] {n}")
    out.append(f"PostgreSQL {bench.versions[0]}, stockx_enrich {bench.versions[1]}, "
               f"{os.cpu_count()} CPUs; wall time {wall:.0f} s")
    shown = [n for n in ("pacing_margin_ms", "requests_in_flight", "burst")
             if "stockx_enrich." + n in bench.defaults]
    given = bench.command_line_settings()
    out.append("defaults of this build: "
               + ", ".join(f"{n} {bench.defaults['stockx_enrich.' + n]}" for n in shown)
               + "; given on the command line: "
               + (", ".join(f"{n}={v}" for n, v in given.items()) or "none"))
    print("\n".join(out))
    sys.stdout.flush()


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench.sh",
        description="stockx_enrich behind nginx limit_req: pacing, 429s, throughput, memory.")
    ap.add_argument("--only", help="suite scenarios to run, e.g. 1,3,5 or 2,7 (default: 1 to 6)")
    ap.add_argument("--jitter-suite", action="store_true",
                    help="run the network-delay scenarios 7 to 10 (= --only 7,8,9,10)")
    ap.add_argument("--rate", type=float, help="custom scenario: nginx limit_req rate, and the "
                    "product's requests_per_second (0 = no limit, product at its maximum)")
    ap.add_argument("--latency", type=int, help="custom: stand-in answer time in ms (default 50)")
    ap.add_argument("--jitter", type=float, help="custom: +- percent on --latency")
    ap.add_argument("--workers", type=int,
                    help="custom: workers (default 4; 0 = stockx_enrich_start() default)")
    ap.add_argument("--skus", type=int, help="custom: SKUs to enqueue (default 40)")
    ap.add_argument("--static", action="store_true",
                    help="custom: nginx serves prepared answer files (ceiling set-up)")
    ap.add_argument("--inject-429", action="store_true",
                    help="custom: one 429 without Retry-After after 50 accepted requests")
    ap.add_argument("--net-jitter", type=float, metavar="MS",
                    help="custom: put the delay proxy between the workers and nginx, holding "
                    "each request for a uniform random 0..MS ms (0 = the proxy, no delay)")
    ap.add_argument("--timeout", type=float, help="seconds before a run is stopped")
    ap.add_argument("--in-flight", type=int,
                    help="stockx_enrich.requests_in_flight (if this build has it)")
    ap.add_argument("--pacing-margin-ms", type=int,
                    help="stockx_enrich.pacing_margin_ms (if this build has it)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="other stockx_enrich.NAME setting (skipped if this build lacks it)")
    # given by bench.sh
    ap.add_argument("--scratch", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--bindir", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--nginx", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--standin", required=True, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sets = []
    for item in args.set:
        name, eq, value = item.partition("=")
        if not eq or not name:
            ap.error(f"--set {item}: expected NAME=VALUE")
        sets.append((name.strip(), value.strip()))
    args.set = sets
    custom = any(v is not None for v in (args.rate, args.latency, args.jitter, args.workers,
                                         args.skus, args.net_jitter)) \
        or args.static or args.inject_429
    if custom and (args.only or args.jitter_suite):
        ap.error("--only and --jitter-suite select suite scenarios; the custom options make "
                 "one scenario")
    if args.only and args.jitter_suite:
        ap.error("--jitter-suite is --only 7,8,9,10: give one of them")
    if args.net_jitter is not None and args.net_jitter < 0:
        ap.error("--net-jitter must be >= 0")
    if custom:
        rate = 1.0 if args.rate is None else args.rate
        if rate < 0 or (args.inject_429 and not rate):
            ap.error("--rate must be > 0 (>= 0 without --inject-429)")
        if rate:
            nginx_rate(rate)
        sc = dict(key="c", name="custom", rate=rate, static=args.static,
                  latency_ms=50 if args.latency is None else args.latency,
                  jitter_pct=args.jitter or 0,
                  workers=4 if args.workers is None else args.workers,
                  skus=40 if args.skus is None else args.skus,
                  inject_429=args.inject_429, net_jitter=args.net_jitter)
        if sc["skus"] < 1 or sc["skus"] > 99999 or sc["workers"] < 0:
            ap.error("--skus must be 1..99999 and --workers >= 0")
        args.scenarios = [sc]
    else:
        chosen = suite()
        if args.only:
            keys = {k.strip() for k in args.only.split(",")}
            unknown = keys - {s["key"] for s in chosen}
            if unknown:
                ap.error(f"--only: no scenario {', '.join(sorted(unknown))} (1 to 10)")
        else:
            keys = set(JITTER_KEYS if args.jitter_suite else DEFAULT_KEYS)
        chosen = [s for s in chosen if s["key"] in keys]
        args.scenarios = chosen
    return args


def main(argv):
    args = parse_args(argv)

    def on_signal(signum, _frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    bench = Bench(args)
    rows = []
    status = 0
    try:
        bench.setup(args.scenarios)
        for sc in args.scenarios:
            rows.append(bench.run(sc))
            r = rows[-1]
            log(f"  -> {r['requests']} requests, {r['n429']} 429s, util {fmt(r['util'], 3)}, "
                f"{fmt(r['pps'], 1)} prod/s in {r['seconds']:.1f} s")
    except Interrupted as exc:
        log(f"interrupted ({exc}): stopping")
        status = 130
    except Exception as exc:        # report, then clean up below
        log(f"error: {exc}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for what, stop in (("delay proxy", bench.proxy and bench.proxy.stop),
                           ("nginx", bench.nginx and bench.nginx.stop),
                           ("cluster", bench.cluster and bench.cluster.stop),
                           ("stand-in", bench.standin and bench.standin.stop)):
            if stop:
                try:
                    stop()
                except Exception as exc:
                    log(f"stopping {what}: {exc}")
    if rows:
        print_table(rows, bench, time.monotonic() - t0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
