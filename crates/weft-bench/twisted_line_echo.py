"""Twisted LineReceiver echo server for weft-bench (LF delimiter, TCP_NODELAY).

Usage: python3 twisted_line_echo.py [HOST] [PORT]; prints `listening on HOST:PORT` on stderr.
"""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Echo(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def lineReceived(self, line):
        self.sendLine(line)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    p = reactor.listenTCP(port, protocol.Factory.forProtocol(Echo), backlog=1024, interface=host)
    h = p.getHost()
    sys.stderr.write("listening on %s:%d\n" % (h.host, h.port))
    sys.stderr.flush()
    reactor.run()


main()
