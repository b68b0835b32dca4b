#!/usr/bin/env python3
"""Network-delay stage for bench.sh: an HTTP/1.1 proxy that holds each request
for a random 0..J ms before passing it on.

    jitter_proxy.py --upstream-port P --jitter-ms J [--port 0 --port-file F]
                    [--log FILE] [--seed N]
    jitter_proxy.py --self-test [--jitter-ms 40] [--requests 400]

It listens on 127.0.0.1 only and forwards to 127.0.0.1:P.  Every client
connection gets one upstream connection of its own (opened as soon as the
client connects), so keep-alive connections stay keep-alive end to end and
the upstream sees as many connections as the clients open.

Client -> upstream: the byte stream is cut into requests (head up to the empty
line; body by Content-Length or chunked encoding).  When a request's head has
arrived, the proxy draws d uniform in [0, J] ms, independently for every
request, and sends the head (with whatever of the body has come) d ms later;
body bytes that come after the head follow as soon as they arrive.  The bytes
are passed on unchanged.  Requests on one connection stay in order: a
pipelined request cannot overtake the one before it on the same connection,
so it goes at max(its own time, the previous one's) -- the only case where a
request waits longer than its d (libcurl does not pipeline).  With J = 0
nothing waits on a timer: each request is written upstream from the same
callback that read it.  After an `Upgrade:` or CONNECT request the rest of
the connection is passed through without parsing.

Upstream -> client: bytes are passed through at once, unparsed, undelayed.

Timers: the event loop uses select(), whose timeout has microsecond
resolution (epoll's is a millisecond), and wakes 1 ms before a request is
due, then goes round the event loop without sleeping (still reading and
writing sockets) until it is: waking from a sleep takes a few hundred
microseconds on a virtual machine, this last stretch a few.  A request thus
goes within some microseconds of its due time unless the process is not
scheduled; `--log` records per request how late it went.

--log FILE writes one line per request forwarded:
    conn seq recv_epoch drawn_ms sent_after_ms method target
recv_epoch: wall-clock time (s) when the head was complete; drawn_ms: the
delay drawn; sent_after_ms: when it was written upstream (just before the
write), in ms after recv (monotonic clock).  SIGTERM or SIGINT stops the proxy (the log is
flushed).

--self-test runs an HTTP/1.1 origin and keep-alive clients in this process
and the proxy as a child process, and prints the added delay as measured
between the client's write and the origin's read, directly (no proxy),
through the proxy with J = 0 and with the given J, for a few hundred requests
over several connections with several requests in flight; it also checks
that every request and answer arrived byte for byte (pipelined, chunked and
Content-Length bodies included).

Standard library only.
"""
import argparse, asyncio, os, random, re, selectors, signal, statistics, subprocess, sys, time

HEAD_MAX = 256 * 1024           # a head longer than this: pass the connection through as is
HEAD_END = re.compile(rb"\r?\n\r?\n")
SPIN = 0.001                    # wake this long before a request is due, then poll (see above)


def new_loop():
    # select(): microsecond timeouts; we hold a handful of sockets only
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


class RequestSplitter:
    """Cuts a client's byte stream into requests.  feed(data) returns a list of
    [bytes, head, ends] pieces in stream order; head is (method, target) for
    the piece that is a request head and None for body or raw bytes; ends is
    True for the piece that completes a request."""

    def __init__(self):
        self.buf = bytearray()
        self.mode = "head"          # head | length | chunk-size | chunk-data | trailer | raw
        self.left = 0               # bytes left of a body or of a chunk (+ its CRLF)
        self.raw_after = False      # the current request switches the connection to raw
        self.ended = False          # the last step ended a request

    def feed(self, data):
        self.buf += data
        out = []
        while self.buf:
            self.ended = False
            if self.mode == "raw":
                out.append([bytes(self.buf), None, False])
                self.buf.clear()
            elif self.mode == "head":
                start = 0
                while start < len(self.buf) and self.buf[start] in (13, 10):
                    start += 1      # empty lines between requests (RFC 9112 2.2)
                if start == len(self.buf):
                    break
                m = HEAD_END.search(self.buf, start)
                if m is None:
                    if len(self.buf) > HEAD_MAX:
                        self.mode = "raw"
                        continue
                    break
                head = bytes(self.buf[:m.end()])
                del self.buf[:m.end()]
                out.append([head, self.parse_head(head[start:]), False])
            elif self.mode == "length":
                n = min(self.left, len(self.buf))
                out.append([bytes(self.buf[:n]), None, False])
                del self.buf[:n]
                self.left -= n
                if self.left == 0:
                    self.end_of_request()
            elif self.mode == "chunk-size":
                i = self.buf.find(b"\n")
                if i < 0:
                    break
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                out.append([line, None, False])
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.mode = "raw"       # not HTTP we understand: stop cutting
                    continue
                if size == 0:
                    self.mode = "trailer"
                else:
                    self.mode, self.left = "chunk-data", size + 2     # data and its CRLF
            elif self.mode == "chunk-data":
                n = min(self.left, len(self.buf))
                out.append([bytes(self.buf[:n]), None, False])
                del self.buf[:n]
                self.left -= n
                if self.left == 0:
                    self.mode = "chunk-size"
            elif self.mode == "trailer":
                i = self.buf.find(b"\n")
                if i < 0:
                    break
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                out.append([line, None, False])
                if line.strip() == b"":
                    self.end_of_request()
            if self.ended:
                out[-1][2] = True
        return out

    def parse_head(self, head):
        lines = head.split(b"\n")
        parts = lines[0].strip().split(b" ")
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1") if len(parts) > 1 else ""
        length, chunked, upgrade = 0, False, False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
            elif name == b"transfer-encoding":
                chunked = value.lower().split(b",")[-1].strip() == b"chunked"
            elif name == b"upgrade":
                upgrade = True
        self.raw_after = upgrade or method == "CONNECT"
        if chunked:
            self.mode = "chunk-size"
        elif length > 0:
            self.mode, self.left = "length", length
        else:
            self.end_of_request()
        return method, target

    def end_of_request(self):
        self.mode = "raw" if self.raw_after else "head"
        self.ended = True


class Proxy:
    def __init__(self, loop, upstream_port, jitter_ms, seed=None, log=None):
        self.loop = loop
        self.upstream_port = upstream_port
        self.jitter = jitter_ms / 1000.0
        self.rng = random.Random(seed)
        self.log = log
        self.conns = 0
        self.requests = 0

    def draw(self):
        return self.rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0

    def factory(self):
        self.conns += 1
        return ClientSide(self, self.conns)


class UpstreamSide(asyncio.Protocol):
    def __init__(self, client):
        self.client = client

    def data_received(self, data):
        self.client.transport.write(data)           # answers: straight through

    def eof_received(self):
        return False                                # close; connection_lost closes the client

    def connection_lost(self, exc):
        self.client.upstream_lost()

    def pause_writing(self):
        self.client.transport.pause_reading()

    def resume_writing(self):
        self.client.transport.resume_reading()


class ClientSide(asyncio.Protocol):
    def __init__(self, proxy, conn_id):
        self.proxy, self.id = proxy, conn_id
        self.loop = proxy.loop
        self.splitter = RequestSplitter()
        self.queue = []         # [due (monotonic), bytearray, meta or None]; due 0 = at once
        self.timer = None
        self.up = None          # upstream transport once connected
        self.up_proto = None
        self.client_eof = False
        self.closed = False
        self.seq = 0

    # -- client connection

    def connection_made(self, transport):
        self.transport = transport
        self.connecting = self.loop.create_task(self.connect())

    async def connect(self):
        try:
            self.up, self.up_proto = await self.loop.create_connection(
                lambda: UpstreamSide(self), "127.0.0.1", self.proxy.upstream_port)
        except OSError:
            self.transport.close()
            return
        if self.closed:
            self.up.close()
            return
        self.flush()

    def data_received(self, data):
        now = self.loop.time()
        for piece, head, _ in self.splitter.feed(data):
            if head is not None:
                self.seq += 1
                self.proxy.requests += 1
                d = self.proxy.draw()
                meta = (self.seq, time.time(), now, d, head) if self.proxy.log else None
                self.queue.append([now + d if d > 0 else 0.0, bytearray(piece), meta])
            elif self.queue:
                self.queue[-1][1] += piece          # follows its head (or the bytes before)
            else:
                self.queue.append([0.0, bytearray(piece), None])
        self.flush()

    def eof_received(self):
        self.client_eof = True
        self.flush()
        return True             # keep our side open: the answers still have to come back

    def connection_lost(self, exc):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.queue.clear()
        if self.up is not None:
            self.up.close()
        elif not self.connecting.done():
            self.connecting.cancel()

    def pause_writing(self):
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self):
        if self.up is not None:
            self.up.resume_reading()

    # -- upstream

    def upstream_lost(self):
        if not self.closed:
            self.transport.close()          # after what is buffered for the client

    def on_timer(self):
        self.timer = None
        self.flush()

    def flush(self):
        if self.up is None or self.closed:
            return
        while self.queue:
            due, data, meta = self.queue[0]
            now = self.loop.time()
            if due > now:
                if self.timer is None:
                    if due - now > SPIN:
                        self.timer = self.loop.call_at(due - SPIN, self.on_timer)
                    else:
                        # the last stretch: poll through the loop (sockets are still served)
                        self.timer = self.loop.call_soon(self.on_timer)
                return
            self.queue.pop(0)
            sent = self.loop.time()
            self.up.write(bytes(data))          # asyncio calls send() right away
            if meta is not None:
                seq, recv_epoch, recv, d, (method, target) = meta
                self.proxy.log.write(f"{self.id} {seq} {recv_epoch:.6f} {d * 1000:.3f} "
                                     f"{(sent - recv) * 1000:.3f} {method} {target}\n")
        if self.client_eof and self.up.can_write_eof():
            self.up.write_eof()


def serve(args):
    loop = new_loop()
    asyncio.set_event_loop(loop)
    log = open(args.log, "w", buffering=1 << 16) if args.log else None
    proxy = Proxy(loop, args.upstream_port, args.jitter_ms, args.seed, log)
    server = loop.run_until_complete(loop.create_server(
        proxy.factory, "127.0.0.1", args.port, reuse_address=True))
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        if log:
            log.close()
        sys.stderr.write(f"jitter_proxy: {proxy.conns} connections, {proxy.requests} requests\n")


# ---------------------------------------------------------------- self-test

class Origin(asyncio.Protocol):
    """A tiny HTTP/1.1 origin: records when each request head arrived and the
    request's bytes; answers 200 with a body naming the request."""

    def __init__(self, record):
        self.record = record
        self.splitter = RequestSplitter()
        self.cur = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        now = time.monotonic()
        for piece, head, ends in self.splitter.feed(data):
            if head is not None:
                tag = head[1].split("?")[0].split("/")[-1]
                self.cur = {"t": now, "tag": tag, "bytes": bytearray(piece)}
            else:
                self.cur["bytes"] += piece
            if ends:
                self.answer()

    def answer(self):
        cur, self.cur = self.cur, None
        self.record[cur["tag"]] = cur
        body = ("ok /t/" + cur["tag"] + "\n").encode() * 3
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)


def make_request(tag, kind):
    if kind == "post":
        body = (tag * 50).encode()
        return (f"POST /t/{tag} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                f"Content-Type: text/plain\r\n\r\n").encode() + body
    if kind == "chunked":
        return (f"POST /t/{tag} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                f"5;x=1\r\nhello\r\n{len(tag):x}\r\n{tag}\r\n0\r\nX-T: 1\r\n\r\n").encode()
    return f"GET /t/{tag}?q=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".encode()


async def read_answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    return head + await reader.readexactly(length)


async def client_conn(port, cid, n, sent, answers, rng, pipeline):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    kinds = ["get", "get", "get", "post", "chunked"]
    i = 0
    while i < n:
        depth = pipeline if rng.random() < 0.2 else 1
        batch = []
        for _ in range(min(depth, n - i)):
            tag = f"c{cid}r{i}"
            i += 1
            req = make_request(tag, rng.choice(kinds))
            batch.append((tag, req))
        t = time.monotonic()
        writer.write(b"".join(r for _, r in batch))     # asyncio sends it at once
        for tag, req in batch:
            sent[tag] = (t, req, len(batch) > 1)
        for tag, _ in batch:
            answers[tag] = await read_answer(reader)
        await asyncio.sleep(rng.uniform(0.0, 0.02))     # think time, then the next request
    writer.close()
    await writer.wait_closed()


def quantiles(xs, qs=(0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)):
    s = sorted(xs)
    return [s[min(len(s) - 1, int(round(q * (len(s) - 1))))] for q in qs]


def fmt_q(xs):
    q = quantiles(xs)
    return ("min %.3f  p10 %.3f  p25 %.3f  p50 %.3f  p75 %.3f  p90 %.3f  p99 %.3f  max %.3f"
            % tuple(q)) + f"  mean {statistics.fmean(xs):.3f}"


async def one_pass(label, jitter_ms, args, script):
    record = {}
    loop = asyncio.get_running_loop()
    origin = await loop.create_server(lambda: Origin(record), "127.0.0.1", 0)
    oport = origin.sockets[0].getsockname()[1]
    proc = None
    logpath = None
    port = oport
    if jitter_ms is not None:
        tmpdir = os.environ.get("TMPDIR", "/tmp")
        stem = os.path.join(tmpdir, f"jitter_selftest.{os.getpid()}.{label.split()[0]}")
        logpath, portfile = stem + ".log", stem + ".port"
        proc = subprocess.Popen([sys.executable, script, "--upstream-port", str(oport),
                                 "--jitter-ms", str(jitter_ms), "--port", "0",
                                 "--port-file", portfile, "--log", logpath],
                                stderr=subprocess.DEVNULL)
        for _ in range(300):
            if os.path.exists(portfile):
                break
            await asyncio.sleep(0.01)
        with open(portfile) as f:
            port = int(f.read())
        os.unlink(portfile)
    sent, answers = {}, {}
    rng = random.Random(7)
    per = args.requests // args.connections
    try:
        await asyncio.gather(*(client_conn(port, c, per, sent, answers, rng, args.pipeline)
                               for c in range(args.connections)))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        origin.close()
    bad = [t for t, (_, req, _) in sent.items()
           if t not in record or bytes(record[t]["bytes"]) != req
           or answers.get(t) is None or not answers[t].endswith(("ok /t/" + t).encode() + b"\n")]
    drawn, late = {}, {}
    if logpath:
        with open(logpath) as f:
            for line in f:
                conn, seq, recv_epoch, d, after, method, target = line.split()
                tag = target.split("/")[-1].split("?")[0]
                drawn[tag] = float(d)
                late[tag] = float(after) - float(d)
        os.unlink(logpath)
    added = {t: (record[t]["t"] - s[0]) * 1000 for t, s in sent.items()
             if t in record and not s[2]}            # pipelined ones: not in the timing
    return dict(label=label, n=len(sent), bad=bad, added=added, drawn=drawn, late=late)


def self_test(args):
    loop = new_loop()
    asyncio.set_event_loop(loop)
    script = os.path.abspath(__file__)
    passes = [("direct", None), ("proxy J=0", 0), (f"proxy J={args.jitter_ms:g}", args.jitter_ms)]
    results = [loop.run_until_complete(one_pass(l, j, args, script)) for l, j in passes]
    ok = True
    print(f"{args.requests} requests per pass over {args.connections} keep-alive connections "
          f"(1 in 5 sends a pipelined batch of {args.pipeline}); times in ms, client write -> "
          f"origin read; the timing leaves out pipelined requests")
    base = statistics.median(results[0]["added"].values())
    for r in results:
        print(f"\n{r['label']}: {r['n']} requests, {len(r['bad'])} not passed on byte for byte")
        ok &= not r["bad"] and r["n"] == args.requests - args.requests % args.connections
        print("  client -> origin      " + fmt_q(list(r["added"].values())))
        if r["drawn"]:
            ex = [r["added"][t] - r["drawn"][t] for t in r["added"]]
            print("  minus drawn delay     " + fmt_q(ex))
            print("  held beyond drawn     " + fmt_q([r["late"][t] for t in r["added"]])
                  + "   (in the proxy: sent - receipt - drawn)")
            d = sorted(r["drawn"][t] for t in r["added"])
            J = float(r["label"].split("=")[1])
            if J > 0:
                n = len(d)
                ks = max(max(abs((i + 1) / n - x / J), abs(i / n - x / J)) for i, x in enumerate(d))
                a = sorted(r["added"][t] - base for t in r["added"])
                ks2 = max(max(abs((i + 1) / n - min(max(x / J, 0), 1)),
                              abs(i / n - min(max(x / J, 0), 1))) for i, x in enumerate(a))
                crit = 1.36 / n ** 0.5
                print(f"  drawn delays: mean {statistics.fmean(d):.2f} (uniform: {J / 2:.2f}); "
                      f"Kolmogorov-Smirnov distance to U(0,{J:g}) {ks:.3f}")
                print(f"  measured added delay (client->origin minus direct median {base:.3f}): "
                      f"KS distance to U(0,{J:g}) {ks2:.3f} (5% critical value {crit:.3f})")
    print("\nresult:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream-port", type=int, help="forward to 127.0.0.1:PORT")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="J: delay uniform in [0, J] ms")
    ap.add_argument("--port", type=int, default=0, help="listen on 127.0.0.1:PORT (0: any)")
    ap.add_argument("--port-file", help="write the port listened on to this file")
    ap.add_argument("--log", help="one line per request forwarded")
    ap.add_argument("--seed", type=int, help="random seed (default: from the OS)")
    ap.add_argument("--self-test", action="store_true", help="measure the delays, check bytes")
    ap.add_argument("--requests", type=int, default=400, help="self-test: requests per pass")
    ap.add_argument("--connections", type=int, default=4, help="self-test: connections")
    ap.add_argument("--pipeline", type=int, default=3, help="self-test: pipelined batch size")
    args = ap.parse_args(argv)
    if args.jitter_ms < 0:
        ap.error("--jitter-ms must be >= 0")
    if args.self_test:
        if args.jitter_ms == 0:
            args.jitter_ms = 40.0
        return self_test(args)
    if not args.upstream_port:
        ap.error("--upstream-port is needed")
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
