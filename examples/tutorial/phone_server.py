#!/usr/bin/env python3
"""The tutorial's "phone" server (socket tutorial, "电话发送与接收", its
corrected socket_server代码: it receives on the connection `conn`, not on the
listening socket), made runnable: the program the `upper` example grew from.
It answers one message, in upper case, then ends.

Changes from the tutorial: host and port come from the command line instead
of ('localhost', 6969) (port 0 takes any free port), and its first line is
the address it listens on, so that a script can read the port.

    python3 examples/tutorial/phone_server.py 127.0.0.1 6969
    python3 examples/tutorial/phone_client.py 127.0.0.1 6969
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.bind((host, port))
server.listen(5)
print("listening on %s:%d" % server.getsockname()[:2], flush=True)

print("我要开始等待电话了", flush=True)
conn, addr = server.accept()
print(conn, addr)
print("电话来了！")

data = conn.recv(1024)
print("recv:", data)
conn.send(data.upper())

server.close()
