#!/usr/bin/env python3
"""The tutorial's chat-bot server (socket tutorial, "使用Socket实现聊天机器人",
its socket服务端代码), made runnable: the program the Echo handler grew from.

Changes from the tutorial: host and port come from the command line (port 0
takes any free port), and instead of its "before"/"after" lines it prints
the address it listens on, so that a script can read the port. It also
leaves a client's loop when the client hangs up (the tutorial's would send
"好" to a closed socket for ever). Otherwise the tutorial's: one client at a
time, greeting, every message answered with itself + "好", "q" ends the
client's conversation.

    python3 examples/tutorial/chat_server.py 127.0.0.1 9999
    cargo run --release --bin client -- echo 127.0.0.1:9999

Ctrl-C stops it.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s1 = socket.socket()
s1.bind((host, port,))
s1.listen(5)
print("listening on %s:%d" % s1.getsockname()[:2], flush=True)

while True:
    conn, address = s1.accept()
    conn.sendall(bytes("欢迎致电babyshen", encoding="utf-8"))
    while True:
        result_bytes = conn.recv(1024)
        if not result_bytes:  # the client hung up
            break
        result_str = str(result_bytes, encoding="utf-8")
        if result_str == "q":
            break
        conn.sendall(bytes(result_str + "好", encoding="utf-8"))
    print(conn, address, flush=True)
    conn.close()
