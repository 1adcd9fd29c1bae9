#!/usr/bin/env python3
"""The tutorial's "simple SSH" client in its fixed form (socket tutorial,
"使用socket实现简单的SSH工具", with "方式2": the client acknowledges the size
before the server sends the output, which ends the sticky packets, 粘包),
made runnable.

Changes from the tutorial: host and port come from the command line instead
of ('localhost', 9999), and the loop also ends when standard input is
exhausted (end of file), so that a test can drive it through a pipe.

Against this project's server:

    cargo run --release --bin serve -- --handler shell
    python3 examples/tutorial/shell_client.py 127.0.0.1 9998

then type commands. Against the tutorial's own server: shell_server.py
beside this file.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
client = socket.socket()
client.connect((host, port))

while True:
    try:
        cmd = input(">>：").strip()
    except EOFError:
        break
    if len(cmd) == 0:
        continue
    client.send(cmd.encode("utf-8"))

    cmd_res_size = client.recv(1024)  # the length of the command's output
    print("命令结果大小：", cmd_res_size)
    client.send("准备好接受了，loser可以发了".encode("utf-8"))
    received_size = 0
    received_data = b''
    while received_size < int(cmd_res_size.decode()):
        data = client.recv(1024)
        received_size += len(data)  # a recv may return less than 1024
        received_data += data
    else:
        print("cmd res receive done....", received_size)
        print(received_data.decode())

client.close()
