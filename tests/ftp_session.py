"""A full FTP session with Python's ftplib against `serve --handler ftp`.

Usage: python3 ftp_session.py HOST PORT USER PASSWORD

The root served must hold `big.bin` (large enough that a RETR of it cannot
finish before an ABOR arrives). Prints one line per step: the server's reply
or what the step found; tests/ftp_python.rs compares the transcript whole.
"""

import ftplib
import hashlib
import io
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def md5_of(reply, data):
    """The reply with its MD5=<hex> checked against hashlib's MD5 of data."""
    text, sep, digest = reply.rpartition(" MD5=")
    if not sep:
        return reply + " (no MD5)"
    if digest == hashlib.md5(data).hexdigest():
        return text + " MD5=right"
    return text + " MD5=WRONG " + digest


ftp = ftplib.FTP(timeout=10)
print(ftp.connect(host, port))
print(ftp.login(user, password))
print(ftp.sendcmd("FEAT"))
print(ftp.sendcmd("OPTS UTF8 ON"))
print(ftp.sendcmd("SYST"))
print(ftp.sendcmd("TYPE I"))
print("pwd", ftp.pwd())
print("mkd", ftp.mkd("目录 dir"))
print(ftp.cwd("目录 dir"))
print("pwd", ftp.pwd())

data = bytes(range(256)) * 4096 + b"end"  # 1 MiB and 3 bytes
print(md5_of(ftp.storbinary("STOR data.bin", io.BytesIO(data)), data))
# APPE and REST + STOR: the kept part is copied by the kernel, unread, so
# the 226 gives no MD5 (SITE CHKHASH would make the server hash it all).
print(md5_of(ftp.storbinary("APPE data.bin", io.BytesIO(b"+appended")), data + b"+appended"))
data += b"+appended"
print("size", ftp.size("data.bin"), len(data))

# REST + STOR: the first 1000 bytes stay, the rest is what is sent.
print(md5_of(ftp.storbinary("STOR data.bin", io.BytesIO(data[1000:]), rest=1000), data))
print("size after resume", ftp.size("data.bin"))

lines = []
print(ftp.retrlines("LIST", lines.append))
print("list", [(line[0], line.split()[4], line.split()[-1]) for line in lines])
print("nlst", ftp.nlst())
print("mlsd", [(name, facts["type"], facts.get("size")) for name, facts in ftp.mlsd()])
print("mdtm", ftp.sendcmd("MDTM data.bin")[:4], len(ftp.sendcmd("MDTM data.bin")))

got = io.BytesIO()
print(md5_of(ftp.retrbinary("RETR data.bin", got.write), data))
print("retr equal", got.getvalue() == data)
# RETR after REST: the MD5 is that of the bytes sent.
got = io.BytesIO()
print(md5_of(ftp.retrbinary("RETR data.bin", got.write, rest=123456), data[123456:]))
print("retr with rest equal", got.getvalue() == data[123456:])

print(ftp.rename("data.bin", "renamed.bin"))
print("nlst", ftp.nlst())
print(ftp.delete("renamed.bin"))
print("nlst", ftp.nlst())

# ABOR during a RETR: the server answers 426, then 226.
print(ftp.cwd("/"))
conn = ftp.transfercmd("RETR big.bin")
received = 0
while received < 65536:
    chunk = conn.recv(65536)
    if not chunk:
        break
    received += len(chunk)
print("abort", ftp.abort())
print(ftp.voidresp())
conn.close()
print(ftp.voidcmd("NOOP"))

print(ftp.rmd("目录 dir"))
print("nlst", ftp.nlst())
print(ftp.quit())
