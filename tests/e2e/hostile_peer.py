#!/usr/bin/python3
"""A hostile ferry peer for the end-to-end tests.

It speaks the wire protocol exactly as src/common/proto.c and
src/common/gss.c do, with a real Kerberos identity, and then says what an
attacker wants:

  frame     = "FRY" | version 1 | payload length (uint32, big endian) | payload
  handshake = raw frames carrying GSS-API krb5 tokens, the client first; the
              server sends its mutual-authentication token only once it has
              accepted the client; a frame starting with "{" instead of a
              token is a refusal (a reply_error object, unsealed)
  after it  = every payload is gss_wrap'ed (sealed, sequenced): requests
              {"op", "args"}, replies {"ok", "result"|"error"}, and
              {"event": ...} frames before some replies

Two roles, each run inside a lab namespace with the lab's environment
(KRB5_CONFIG, nss_wrapper hosts: lab/lab.sh exec NODE ...):

  hostile_peer.py client SCENARIO.json
      A hostile *source* (or any client): authenticates to a ferryd on TCP
      6600 with alice's ccache (KRB5CCNAME, or "cred": {"ccache": ...}) or a
      host keytab as the computer account ("cred": {"keytab", "principal"}),
      runs the scenario's steps and prints one JSON object with what came
      back.

  hostile_peer.py serve SCENARIO.json
      A fake *destination*: accepts connections as ferry/HOST with that
      host's keytab and answers each op with the reply the scenario gives
      (for instance migrate.prepare with "uri": "exec:..."). Optional data
      listeners (TCP or unix socket) record whether anything connected to
      where the fake destination pointed the source. Every event is one JSON
      line in the scenario's "log"; "ready" is printed once it listens.

The scenario formats are described at run_client and run_server. The
module is also importable (frames, handshakes, Session) without running
anything.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

MAGIC = b"FRY"
VERSION = 1
HEADER_LEN = 8
MAX_MSG = 1024 * 1024               # PROTO_MAX_MSG
MAX_PREAUTH = 64 * 1024             # PROTO_MAX_PREAUTH
MAX_WRAPPED = MAX_MSG + 1024        # GSS_MAX_WRAPPED
HANDSHAKE_TIMEOUT_S = 10            # GSS_HANDSHAKE_TIMEOUT_S
FERRY_PORT = 6600


class ProtocolError(Exception):
    """The peer broke the framing (bad header, oversized or truncated frame)."""


class PeerClosed(Exception):
    """The peer closed the connection at a frame boundary."""


class Refused(Exception):
    """The server answered the handshake with a refusal frame."""

    def __init__(self, reply):
        self.reply = reply
        err = reply.get("error", {}) if isinstance(reply, dict) else {}
        super().__init__(f"refused: {err.get('code')}: {err.get('message')}")


# ---------------------------------------------------------------- frames

def header(length, version=VERSION, magic=MAGIC):
    return magic + bytes([version]) + struct.pack(">I", length)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if not buf:
                raise PeerClosed("connection closed by the peer")
            raise ProtocolError(f"truncated: {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def frame_send(sock, payload):
    if not payload or len(payload) > 0xFFFFFFFF:
        raise ValueError("a frame carries 1 to 2^32-1 bytes")
    sock.sendall(header(len(payload)) + payload)


def frame_recv(sock, max_len):
    """One frame's payload, checked as proto_header_decode does."""
    hdr = recv_exact(sock, HEADER_LEN)
    if hdr[:3] != MAGIC or hdr[3] != VERSION:
        raise ProtocolError(f"bad frame header {hdr!r}")
    (n,) = struct.unpack(">I", hdr[4:])
    if n == 0 or n > max_len:
        raise ProtocolError(f"frame of {n} bytes (limit {max_len})")
    try:
        return recv_exact(sock, n)
    except PeerClosed:
        raise ProtocolError("truncated frame") from None


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def reply_error(code, message, hint=None):
    e = {"code": code, "message": message}
    if hint:
        e["hint"] = hint
    return {"ok": False, "error": e}


# ---------------------------------------------------------------- Kerberos

def _gssapi():
    import gssapi  # python3-gssapi (MIT krb5), imported late: the module is importable without it
    return gssapi


def _flags(gssapi):
    F = gssapi.RequirementFlag
    # WANT_FLAGS / NEED_FLAGS of gss.c
    return [F.confidentiality, F.integrity, F.mutual_authentication, F.out_of_sequence_detection,
            F.replay_detection]


def client_credentials(spec):
    """None: the default ccache (KRB5CCNAME). {"ccache": "FILE:..."}: that ccache.
    {"keytab": PATH, "principal": "HOST1$@LAB.TEST"}: a TGT for the computer
    account got with the keytab (as ferryd's gss_impersonate gets one)."""
    if not spec:
        return None
    gssapi = _gssapi()
    if spec.get("keytab"):
        name = gssapi.Name(spec["principal"], gssapi.NameType.kerberos_principal)
        store = {"client_keytab": spec["keytab"], "ccache": spec.get("ccache", "MEMORY:hostile-peer")}
        return gssapi.Credentials(name=name, usage="initiate", store=store)
    if spec.get("ccache"):
        return gssapi.Credentials(usage="initiate", store={"ccache": spec["ccache"]})
    return None


class Session:
    """An authenticated connection: every message sealed with gss_wrap."""

    def __init__(self, sock, ctx, peer=None):
        self.sock = sock
        self.ctx = ctx
        self.peer = peer             # the client's principal (server side)
        self.last_wrapped = None     # for replay tests

    def send_bytes(self, data):
        w = self.ctx.wrap(data, True)
        if not w.encrypted:
            raise ProtocolError("gss_wrap did not seal the message")
        self.last_wrapped = w.message
        frame_send(self.sock, w.message)

    def send(self, obj):
        self.send_bytes(dumps(obj))

    def recv(self):
        buf = frame_recv(self.sock, MAX_WRAPPED)
        if buf[:1] == b"{":
            # ferryd never sends plain JSON after the handshake: this is a protocol error
            raise ProtocolError(f"unsealed message after authentication: {buf[:200]!r}")
        u = self.ctx.unwrap(buf)
        if not u.encrypted:
            raise ProtocolError("message was not sealed")
        return json.loads(u.message)

    def reply(self):
        """The next reply, skipping {"event": ...} frames (as conn_call does)."""
        while True:
            msg = self.recv()
            if "event" not in msg:
                return msg

    def call(self, op, args=None):
        self.send({"op": op, "args": {} if args is None else args})
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client_handshake(sock, host_fqdn, creds=None, delegate=False, service="ferry"):
    """gss_client_start: ferry@HOST, krb5, conf|integ|mutual|sequence|replay.
    service: another service name, to offer a ticket for SERVICE/HOST instead."""
    gssapi = _gssapi()
    flags = _flags(gssapi)
    if delegate:
        flags.append(gssapi.RequirementFlag.delegate_to_peer)
    target = gssapi.Name(f"{service}@{host_fqdn}", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, creds=creds, flags=flags, mech=gssapi.MechType.kerberos,
                                 usage="initiate")
    saved = sock.gettimeout()
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    token = None
    while True:
        out = ctx.step(token)
        if out:
            frame_send(sock, out)
        if ctx.complete:
            break
        buf = frame_recv(sock, MAX_PREAUTH)
        if buf[:1] == b"{":
            raise Refused(json.loads(buf))
        token = buf
    need = set(_flags(gssapi))
    if not need <= set(ctx.actual_flags):
        raise ProtocolError(f"context lacks flags: {ctx.actual_flags}")
    sock.settimeout(saved)
    return Session(sock, ctx)


def acceptor_credentials(keytab):
    gssapi = _gssapi()
    return gssapi.Credentials(usage="accept", store={"keytab": keytab})


def server_handshake(sock, creds, host_fqdn):
    """gss_server_accept: tokens until complete; a refused client gets an
    unsealed reply_error frame; the last token only after acceptance."""
    gssapi = _gssapi()
    ctx = gssapi.SecurityContext(creds=creds, usage="accept")
    saved = sock.gettimeout()
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        while True:
            buf = frame_recv(sock, MAX_PREAUTH)
            if buf[:1] == b"{":
                raise Refused(reply_error("unauthenticated", "a request came before Kerberos authentication"))
            out = ctx.step(buf)
            if ctx.complete:
                break
            frame_send(sock, out)
        if not set(_flags(gssapi)) <= set(ctx.actual_flags):
            raise Refused(reply_error("unauthenticated", "the client's Kerberos context lacks flags"))
    except Refused as e:
        frame_send(sock, dumps(e.reply))
        raise
    except gssapi.exceptions.GSSError as e:
        frame_send(sock, dumps(reply_error("unauthenticated",
                                           f"Kerberos authentication of a client of {host_fqdn} failed ({e})")))
        raise
    if out:
        frame_send(sock, out)
    sock.settimeout(saved)
    return Session(sock, ctx, peer=str(ctx.initiator_name))


def connect(addr, port, timeout=10.0, retry_for=0.0):
    """TCP connection; retries refused connections for retry_for seconds
    (a ferryd re-binds its migration listeners within about a second)."""
    deadline = time.time() + retry_for
    while True:
        try:
            return socket.create_connection((addr, port), timeout=timeout)
        except ConnectionRefusedError:
            if time.time() >= deadline:
                raise
            time.sleep(0.2)


# ---------------------------------------------------------------- client role

def run_client(sc):
    """Scenario (JSON object):
      host       service host name: the ticket is for ferry/HOST
      service    another service name than "ferry" (a ticket for SERVICE/HOST)
      connect    address to connect to (default: host), port (default 6600)
      cred       see client_credentials (default: KRB5CCNAME)
      timeout    socket timeout in seconds for replies (default 60)
      retry      seconds to retry a refused TCP connect (default 5)
      conns      {ID: per-connection overrides of host/connect/port/cred, and
                  "preauth": OBJ (send OBJ as a plain JSON frame instead of a
                  token, record the refusal) or "preauth_raw": HEX (a raw
                  first token)}
      steps      list; each names its connection ("conn", default "a"),
                 opened (and authenticated) on first use:
        {"call": OP, "args": OBJ, "pad": N}   sealed request (args["pad"] =
                                               N x "x" when pad), then its reply
        {"send": OBJ}                          sealed OBJ as is, then the reply
        {"send_text": STR}                     sealed raw bytes, then the reply
        {"unsealed": OBJ}                      plain frame after authentication
        {"replay": true}                       the last sealed frame again
        {"close": true}                        close the connection
        {"sleep": S}
        {}                                     only open the connection (and
                                               record a preauth refusal)
      and "check_closed": true on a request step records whether the
      server closed the connection after its reply.
    Output: {"conns": {ID: {"handshake": "ok"|"refused"|"error", ...}},
             "steps": [{"i", "conn", "reply"} | {"i", "conn", "error", "closed"}]}"""
    out = {"conns": {}, "steps": []}
    sessions = {}
    defaults = {k: sc.get(k) for k in ("host", "service", "connect", "port", "cred")}

    def opened(cid):
        if cid in sessions:
            return sessions[cid]
        opt = dict(defaults, **(sc.get("conns", {}).get(cid, {})))
        info = out["conns"].setdefault(cid, {})
        sock = connect(opt.get("connect") or opt["host"], opt.get("port") or FERRY_PORT,
                       retry_for=sc.get("retry", 5))
        sock.settimeout(sc.get("timeout", 60))
        info["local"], info["remote"] = sock.getsockname()[0], sock.getpeername()[0]
        if "preauth" in opt or "preauth_raw" in opt:
            payload = dumps(opt["preauth"]) if "preauth" in opt else bytes.fromhex(opt["preauth_raw"])
            frame_send(sock, payload)
            try:
                buf = frame_recv(sock, MAX_PREAUTH)
                info["handshake"] = "refused"
                info["refusal"] = json.loads(buf) if buf[:1] == b"{" else {"token": buf.hex()}
            except (PeerClosed, ProtocolError, OSError) as e:
                info["handshake"] = "error"
                info["error"] = f"{type(e).__name__}: {e}"
            sock.close()
            sessions[cid] = None
            return None
        try:
            s = client_handshake(sock, opt["host"], client_credentials(opt.get("cred")),
                                 service=opt.get("service") or "ferry")
            info["handshake"] = "ok"
        except Refused as e:
            info["handshake"] = "refused"
            info["refusal"] = e.reply
            s = None
        except Exception as e:  # Kerberos errors on our side: reported, not raised
            info["handshake"] = "error"
            info["error"] = f"{type(e).__name__}: {e}"
            s = None
        sessions[cid] = s
        return s

    for i, st in enumerate(sc.get("steps", [])):
        cid = st.get("conn", "a")
        rec = {"i": i, "conn": cid}
        out["steps"].append(rec)
        if "sleep" in st:
            time.sleep(st["sleep"])
            continue
        if st.get("close"):
            s = sessions.get(cid)
            if s:
                s.close()
            sessions[cid] = None
            rec["closed"] = True
            continue
        s = opened(cid)
        if not set(st) - {"conn", "check_closed"}:
            continue  # only open it
        if s is None:
            rec["error"] = "no authenticated connection"
            continue
        try:
            if "call" in st and st.get("pad"):
                # a frame the server may refuse unread: send it from a thread and
                # read the answer meanwhile, or both ends would wait on full buffers
                args = dict(st.get("args", {}), pad="x" * st["pad"])
                sent = {}
                t = threading.Thread(target=_send_catching, args=(s, {"op": st["call"], "args": args}, sent))
                t.start()
                try:
                    rec["reply"] = s.reply()
                finally:
                    t.join(30)
                    if sent.get("error"):
                        rec["send_error"] = sent["error"]
                continue
            if "call" in st:
                s.send({"op": st["call"], "args": st.get("args", {})})
            elif "send" in st:
                s.send(st["send"])
            elif "send_text" in st:
                s.send_bytes(st["send_text"].encode())
            elif "unsealed" in st:
                frame_send(s.sock, dumps(st["unsealed"]))
            elif st.get("replay"):
                frame_send(s.sock, s.last_wrapped)
            else:
                raise ValueError(f"unknown step {st}")
            rec["reply"] = s.reply()
        except (PeerClosed, ProtocolError, OSError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["closed"] = True
            s.close()
            sessions[cid] = None
            continue
        except Exception as e:  # e.g. a GSS unwrap failure: reported
            rec["error"] = f"{type(e).__name__}: {e}"
            continue
        # after an error reply ferryd may close the stream (oversized or
        # unreadable frames): tell whether it did
        if st.get("check_closed"):
            rec["closed"] = _closed(s.sock)
    for s in sessions.values():
        if s:
            s.close()
    return out


def _send_catching(session, obj, out):
    try:
        session.send(obj)
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"


def _closed(sock, wait=2.0):
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


# ---------------------------------------------------------------- fake destination

class EventLog:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else sys.stderr
        self.lock = threading.Lock()

    def __call__(self, **ev):
        ev["t"] = round(time.time(), 3)
        with self.lock:
            self.f.write(json.dumps(ev) + "\n")
            self.f.flush()


def _serve_connection(sc, creds, conn, addr, log, n):
    host = sc["host"]
    try:
        s = server_handshake(conn, creds, host)
    except Exception as e:
        log(event="refused", conn=n, peer=addr[0], error=f"{type(e).__name__}: {e}")
        conn.close()
        return
    log(event="authenticated", conn=n, peer=addr[0], local=conn.getsockname()[0], principal=s.peer)
    replies = sc.get("replies", {})
    delays = sc.get("delays", {})
    default = sc.get("default_reply", reply_error("bad_request", "unknown operation"))
    try:
        while True:
            msg = s.recv()
            op = msg.get("op")
            rep = replies.get(op, default)
            log(event="request", conn=n, op=op, args=msg.get("args"))
            if delays.get(op):
                time.sleep(delays[op])  # a destination that stalls its answer
            s.send(rep)
            log(event="reply", conn=n, op=op, reply=rep)
    except PeerClosed:
        log(event="closed", conn=n)
    except Exception as e:
        log(event="closed", conn=n, error=f"{type(e).__name__}: {e}")
    s.close()


def _data_listener(spec, log):
    """Records whatever connects where the fake destination sent the source."""
    if "tcp" in spec:
        addr, port = spec["tcp"]
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        name = f"tcp:{addr}:{port}"
    else:
        path = spec["unix"]
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        os.chmod(path, 0o666)  # reachable whatever user the peer's QEMU runs as
        name = f"unix:{path}"
    ls.listen(8)

    def loop():
        while True:
            c, a = ls.accept()
            log(event="data-connection", listener=name, peer=str(a))
            c.settimeout(1.0)
            got = 0
            try:
                while got < (1 << 16):
                    b = c.recv(4096)
                    if not b:
                        break
                    got += len(b)
            except OSError:
                pass
            c.close()
            log(event="data-closed", listener=name, bytes=got)

    threading.Thread(target=loop, daemon=True).start()


def run_server(sc):
    """Scenario (JSON object):
      host      this fake destination's name: it accepts tickets for ferry/HOST
      keytab    that host's keytab (/run/ferry-lab-PREFIX/hostN.keytab)
      listen    [[ADDR, PORT], ...] (default [["0.0.0.0", 6600]])
      replies   {OP: the whole reply object to send to OP}
      default_reply   for any other op (default: bad_request)
      delays    {OP: seconds to wait before answering OP}
      data      [{"tcp": [ADDR, PORT]} | {"unix": PATH}]: listeners that log
                every connection (and close it after reading a little)
      log       file for the JSON-lines event log
    Prints "ready" when everything listens; runs until killed."""
    log = EventLog(sc.get("log"))
    creds = acceptor_credentials(sc["keytab"])
    listeners = []
    for addr, port in sc.get("listen", [["0.0.0.0", FERRY_PORT]]):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(16)
        listeners.append(ls)
    for spec in sc.get("data", []):
        _data_listener(spec, log)
    counter = iter(range(1, 1 << 30))

    def accept_loop(ls):
        while True:
            c, a = ls.accept()
            n = next(counter)
            log(event="accepted", conn=n, peer=a[0], local=c.getsockname()[0])
            threading.Thread(target=_serve_connection, args=(sc, creds, c, a, log, n), daemon=True).start()

    for ls in listeners:
        threading.Thread(target=accept_loop, args=(ls,), daemon=True).start()
    log(event="ready")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("client", "serve"):
        print(__doc__, file=sys.stderr)
        return 2
    with (sys.stdin if argv[2] == "-" else open(argv[2])) as f:
        sc = json.load(f)
    if argv[1] == "client":
        json.dump(run_client(sc), sys.stdout)
        sys.stdout.write("\n")
        return 0
    run_server(sc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
