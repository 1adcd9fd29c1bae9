"""Python's ftplib against `serve --handler ftp`, for tests/ftp_wire.rs.

Usage: python3 ftp_wire.py HOST PORT USER PASSWORD COMMAND [ARG]

  active FILE   RETR FILE in active mode (PORT): prints "got N bytes", or
                "refused REPLY" when the server refuses
  list          the LIST lines of the current folder, each as ascii()
  count DIR     how many names NLST DIR gives, and how many lines LIST DIR
"""

import ftplib
import sys

host, port, user, password, command = sys.argv[1:6]
args = sys.argv[6:]
ftp = ftplib.FTP(timeout=60)
ftp.connect(host, int(port))
ftp.login(user, password)
if command == "active":
    ftp.set_pasv(False)
    chunks = []
    try:
        ftp.retrbinary("RETR " + args[0], chunks.append)
        print("got", sum(map(len, chunks)), "bytes")
    except ftplib.error_perm as e:
        print("refused", e)
elif command == "list":
    lines = []
    ftp.retrlines("LIST", lines.append)
    for line in lines:
        print(ascii(line))
elif command == "count":
    print("nlst", len(ftp.nlst(args[0])))
    lines = []
    ftp.retrlines("LIST " + args[0], lines.append)
    print("list", len(lines))
else:
    sys.exit("unknown command " + command)
ftp.quit()
