"""Twisted LineReceiver echo server for weft-bench (LF delimiter, TCP_NODELAY).

Usage: python3 twisted_line_echo.py [HOST] [PORT] [KEY.pem CERT.pem]; with a key and a
certificate it listens on Twisted's `ssl:` endpoint (pyOpenSSL). Prints `listening on
HOST:PORT` on stderr.
"""
import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols.basic import LineReceiver


class Echo(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        # Over TLS the transport is a TLSMemoryBIOProtocol: the TCP one is underneath.
        t = self.transport
        while not hasattr(t, "setTcpNoDelay") and hasattr(t, "transport"):
            t = t.transport
        if hasattr(t, "setTcpNoDelay"):
            t.setTcpNoDelay(True)

    def lineReceived(self, line):
        self.sendLine(line)


def escape(s):
    return s.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    factory = protocol.Factory.forProtocol(Echo)
    if len(sys.argv) > 4:
        desc = "ssl:%d:interface=%s:backlog=1024:privateKey=%s:certKey=%s" % (
            port,
            escape(host),
            escape(sys.argv[3]),
            escape(sys.argv[4]),
        )
    else:
        desc = "tcp:%d:interface=%s:backlog=1024" % (port, escape(host))
    d = endpoints.serverFromString(reactor, desc).listen(factory)

    def listening(p):
        h = p.getHost()
        sys.stderr.write("listening on %s:%d\n" % (h.host, h.port))
        sys.stderr.flush()

    def failed(f):
        sys.stderr.write("cannot listen: %s\n" % f.getErrorMessage())
        reactor.stop()

    d.addCallbacks(listening, failed)
    reactor.run()


main()
