"""Malformed, oversized, truncated and unknown control messages get an error
reply and the daemon keeps serving everyone else."""
import json
import socket
import struct

import pytest


def frame(payload: bytes, version=1, magic=b"FRY", length=None):
    return magic + bytes([version]) + struct.pack(">I", len(payload) if length is None else length) + payload


def read_reply(sock):
    hdr = b""
    while len(hdr) < 8:
        chunk = sock.recv(8 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    assert hdr[:3] == b"FRY"
    (n,) = struct.unpack(">I", hdr[4:8])
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return json.loads(body)


def connect(host):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(host.socket))
    return s


@pytest.mark.parametrize("payload,expect", [
    (b"{not json", "malformed JSON"),
    (b"[1,2,3]", "not a JSON object"),
    (b'{"op": 5}', "op"),
    (b'{"op": "vm.list", "args": []}', "args"),
    (b'{"op": "no.such.thing"}', "unknown operation"),
    (b'{"op":"vm.list","op":"vm.list"}', "malformed JSON"),
    (b'{"op":"vm.list","args":{"a":' + b"[" * 100 + b"]" * 100 + b"}}", "nested deeper"),
], ids=["syntax", "array", "op-type", "args-type", "unknown-op", "duplicate-key", "deep"])
def test_bad_message_gets_error_and_connection_keeps_working(host1, payload, expect):
    s = connect(host1)
    s.sendall(frame(payload))
    rep = read_reply(s)
    assert rep["ok"] is False
    assert expect in rep["error"]["message"] or expect in json.dumps(rep)
    # the same connection still serves a good request
    s.sendall(frame(b'{"op": "host.show"}'))
    rep = read_reply(s)
    assert rep["ok"] is True and rep["result"]["host-name"] == host1.fqdn
    s.close()


@pytest.mark.parametrize("data", [
    frame(b"x" * 10, length=2 * 1024 * 1024),          # oversized
    frame(b'{"op":"vm.list"}', version=9),             # unknown version
    frame(b'{"op":"vm.list"}', magic=b"GET"),          # not ferry at all
    frame(b'{"op":"vm.li', length=100),                # truncated, then closed
], ids=["oversized", "version", "magic", "truncated"])
def test_broken_frames_are_answered_and_daemon_survives(host1, data):
    s = connect(host1)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    rep = read_reply(s)
    assert rep is not None and rep["ok"] is False
    s.close()
    assert host1.ferry("host", "show")["host-name"] == host1.fqdn


def test_many_bad_clients_do_not_disturb_a_good_one(host1):
    socks = [connect(host1) for _ in range(20)]
    for s in socks:
        s.sendall(b"FRY\x01\x00\x00")   # half a header, never finished
    assert host1.ferry("vm", "list")["vms"] == []
    for s in socks:
        s.close()
    assert host1.ferry("host", "show")["host-name"] == host1.fqdn
