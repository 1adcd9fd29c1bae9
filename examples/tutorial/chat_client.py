#!/usr/bin/env python3
"""The tutorial's chat-bot client (socket tutorial, "使用Socket实现聊天机器人",
its socket客户端代码), made runnable.

Changes from the tutorial: host and port come from the command line instead
of the fixed ("127.0.0.1", 9999), and the loop also ends when standard input
is exhausted (end of file), so that a test can drive it through a pipe.
Everything else, prompts included, is the tutorial's.

Against this project's server:

    cargo run --release --bin serve -- --handler echo
    python3 examples/tutorial/chat_client.py 127.0.0.1 9999

then type messages; "q" quits. Against the tutorial's own server:
chat_server.py beside this file.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
c1 = socket.socket()
c1.connect((host, port))
result_bytes = c1.recv(1024)
result_str = str(result_bytes, encoding="utf-8")
print(result_str)
while True:
    try:
        inp = input("请输入要发送的内容>>>：")
    except EOFError:
        break
    if len(inp) == 0:
        continue
    elif inp == "q":
        c1.sendall(bytes(inp, encoding="utf-8"))
        break
    else:
        c1.sendall(bytes(inp, encoding="utf-8"))
        result = str(c1.recv(1024), encoding="utf-8")
        print(result)
c1.close()
