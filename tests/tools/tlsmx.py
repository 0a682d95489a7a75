#!/usr/bin/python3
"""A tiny SMTP server with STARTTLS for the audit test: after STARTTLS it
speaks TLS with the certificate given, accepts one message per session and
logs "tls <sni>" and "data <bytes>" lines. Loopback/test namespaces only."""
import socket, ssl, sys, threading

log_path, cert, key, addr, port = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
seen_sni = []
ctx.sni_callback = lambda s, name, c: seen_sni.append(name) and None

def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")

def serve(conn):
    f = conn.makefile("rwb")
    def say(s):
        f.write(s.encode() + b"\r\n"); f.flush()
    say("220 mx.test ESMTP tlsmx")
    data, size = False, 0
    while True:
        line = f.readline()
        if not line:
            return
        text = line.rstrip(b"\r\n")
        if data:
            if text == b".":
                data = False
                log("data %d" % size)
                say("250 2.0.0 queued")
            else:
                size += len(line)
            continue
        verb = text[:8].upper()
        if verb.startswith(b"EHLO"):
            say("250-mx.test"); say("250-STARTTLS"); say("250 8BITMIME")
        elif verb.startswith(b"STARTTLS"):
            say("220 2.0.0 go ahead")
            conn = ctx.wrap_socket(conn, server_side=True)
            log("tls %s" % (seen_sni[-1] if seen_sni else "-"))
            f = conn.makefile("rwb")
        elif verb.startswith(b"DATA"):
            data, size = True, 0
            say("354 go ahead")
        elif verb.startswith(b"QUIT"):
            say("221 bye"); return
        else:
            say("250 ok")

srv = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, int(port)))
srv.listen(16)
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
