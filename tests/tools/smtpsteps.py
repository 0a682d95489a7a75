#!/usr/bin/python3
"""An SMTP client that sends what it is told, step by step, each step its own
TCP segment (TCP_NODELAY and a pause between them), for detect_any_port's
tests: the ways round a first-bytes check that issue 14 found.

  smtpsteps.py [--tfo] [--keepalive] [--banner] HOST PORT STEP...

STEP is bytes to send, with \\r \\n \\t escapes, or "@N" to sit idle N seconds.
--banner waits for the server's first line before the first step; --tfo
sends the first step inside the SYN (MSG_FASTOPEN, TCP Fast Open);
--keepalive sends a keepalive probe every second while idle. It prints
"port P" (its own port), every reply line as "<- line", and one last word:
  delivered  the server answered 250 after the message's final "."
  refused    connect() was refused (a reset to the SYN)
  reset      the connection was reset after it opened
  closed     the server closed it, or stayed quiet for 3 s, with no delivery
Exit 0 in every case the network decided; 4 on a usage error.
Only ever used against the tests' own namespaces."""
import socket, sys, time

def unescape(s):
    return s.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t").encode()

def main(argv):
    tfo = keepalive = banner = False
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if opt == "--tfo":
            tfo = True
        elif opt == "--keepalive":
            keepalive = True
        elif opt == "--banner":
            banner = True
        else:
            return 4
    if len(argv) < 3:
        return 4
    host, port, steps = argv[0], int(argv[1]), argv[2:]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.settimeout(3)
    # Bound first, so that its port is known (and said) even if the SYN is refused.
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
    print("port", s.getsockname()[1], flush=True)
    got = b""
    in_data = delivered = False
    try:
        if tfo:
            first = unescape(steps.pop(0))
            s.sendto(first, socket.MSG_FASTOPEN, (host, port))
            in_data = b"\r\nDATA\r\n" in first
        else:
            s.connect((host, port))
        if banner:
            got += s.recv(4096)
        for step in steps:
            if step.startswith("@"):
                end = time.monotonic() + float(step[1:])
                s.settimeout(0.2)
                while time.monotonic() < end:
                    try:
                        b = s.recv(4096)
                        if not b:
                            raise ConnectionAbortedError
                        got += b
                    except socket.timeout:
                        pass
                s.settimeout(3)
                continue
            data = unescape(step)
            s.sendall(data)
            if data.startswith(b"DATA") or b"\r\nDATA\r\n" in data:
                in_data = True
            time.sleep(0.2)
        s.settimeout(3)
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
            if in_data and b"250 2.0.0 queued" in got:
                delivered = True
                break
    except ConnectionRefusedError:
        print("refused")
        return 0
    except (ConnectionResetError, BrokenPipeError):
        for line in got.decode(errors="replace").splitlines():
            print("<-", line)
        print("reset")
        return 0
    except (socket.timeout, ConnectionAbortedError):
        pass
    for line in got.decode(errors="replace").splitlines():
        print("<-", line)
    print("delivered" if delivered or b"250 2.0.0 queued" in got else "closed")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
