#!/usr/bin/env python3
"""The tutorial's "simple SSH" server in its fixed form (socket tutorial,
"使用socket实现简单的SSH工具", with "方式2": it waits for the client's
acknowledgement between the size and the output), made runnable: the
program the Shell handler grew from. It runs whatever it is sent, as you:
keep it on loopback.

Changes from the tutorial: host and port come from the command line instead
of ('localhost', 9999) (port 0 takes any free port), and its first line is
the address it listens on, so that a script can read the port.

    python3 examples/tutorial/shell_server.py 127.0.0.1 9997
    python3 examples/tutorial/shell_client.py 127.0.0.1 9997

Ctrl-C stops it.
"""
import os
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.bind((host, port))
server.listen(5)
print("listening on %s:%d" % server.getsockname()[:2], flush=True)

while True:
    conn, addr = server.accept()
    print("new conn:", addr, flush=True)
    while True:
        print("等待指令", flush=True)
        data = conn.recv(1024)
        if not data:
            print("客户端已经断开", flush=True)
            break
        print("执行指令：", data, flush=True)
        cmd_res = os.popen(data.decode()).read()
        print("before send", len(cmd_res), flush=True)
        if len(cmd_res) == 0:
            cmd_res = "cmd has no output..."

        conn.send(str(len(cmd_res.encode())).encode("utf-8"))
        client_ack = conn.recv(1024)  # wait for the client to confirm
        print("ack from client:", client_ack, flush=True)
        conn.send(cmd_res.encode("utf-8"))
        print("send done", flush=True)
    conn.close()
server.close()
