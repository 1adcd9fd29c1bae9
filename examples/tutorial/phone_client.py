#!/usr/bin/env python3
"""The tutorial's "phone" client (socket tutorial, "电话发送与接收", its
socket_client代码), made runnable: it sends one message and prints the
reply, which the tutorial's server upper-cases.

Changes from the tutorial: host and port come from the command line instead
of ('localhost', 6969), and the message may too (default: the tutorial's
b"Hello World").

Against this project's upper-case example (cargo run --example upper):

    python3 examples/tutorial/phone_client.py 127.0.0.1 9999 "hello"

Against the tutorial's own server: phone_server.py beside this file.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
message = sys.argv[3].encode() if len(sys.argv) > 3 else b"Hello World"
client = socket.socket()
client.connect((host, port))
client.send(message)
data = client.recv(1024)
print("recv:", data)
client.close()
