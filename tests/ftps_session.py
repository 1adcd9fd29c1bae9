"""An FTPS session with Python's ftplib.FTP_TLS against `serve --handler ftp`.

Usage: python3 ftps_session.py HOST PORT USER PASSWORD CA_FILE

AUTH TLS (the certificate checked against CA_FILE), PBSZ 0 and PROT P, then
every transfer verb over TLS data connections: STOR, APPE, REST + STOR,
LIST, NLST, MLSD, RETR, RETR with REST; then a data connection that speaks
no TLS (the server says 425 and goes on), PROT C, CCC. Prints one line per
step; tests/ftps.rs compares the transcript whole. Also STAT and ABOR during
a TLS download.
"""

import ftplib
import hashlib
import io
import re
import socket
import ssl
import sys

host, port, user, password, ca_file = sys.argv[1:6]
port = int(port)


def md5_of(reply, data):
    """The reply with its MD5=<hex> checked against hashlib's MD5 of data."""
    text, sep, digest = reply.rpartition(" MD5=")
    if not sep:
        return reply + " (no MD5)"
    if digest == hashlib.md5(data).hexdigest():
        return text + " MD5=right"
    return text + " MD5=WRONG " + digest


class Checked(ftplib.FTP_TLS):
    """FTP_TLS that says whether each data connection was TLS."""

    data_tls = []

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super().ntransfercmd(cmd, rest)
        self.data_tls.append(isinstance(conn, ssl.SSLSocket))
        return conn, size


context = ssl.create_default_context(cafile=ca_file)
ftp = Checked(context=context, timeout=10)
print(ftp.connect(host, port))
print(ftp.auth())
print("control tls", isinstance(ftp.sock, ssl.SSLSocket), ftp.sock.version())
print(ftp.login(user, password))
print(ftp.prot_p())
print(ftp.sendcmd("TYPE I"))

data = bytes(range(256)) * 4096 + b"end"  # 1 MiB and 3 bytes
print(md5_of(ftp.storbinary("STOR data.bin", io.BytesIO(data)), data))
print(md5_of(ftp.storbinary("APPE data.bin", io.BytesIO(b"+appended")), data + b"+appended"))
data += b"+appended"
print(md5_of(ftp.storbinary("STOR data.bin", io.BytesIO(data[1000:]), rest=1000), data))
print("size", ftp.size("data.bin"), len(data))

lines = []
print(ftp.retrlines("LIST", lines.append))
print("list", [(line[0], line.split()[4], line.split()[-1]) for line in lines])
print("nlst", ftp.nlst())
print("mlsd", [(name, facts["type"], facts.get("size")) for name, facts in ftp.mlsd()])

got = io.BytesIO()
print(md5_of(ftp.retrbinary("RETR data.bin", got.write), data))
print("retr equal", got.getvalue() == data)
got = io.BytesIO()
print(md5_of(ftp.retrbinary("RETR data.bin", got.write, rest=5), data[5:]))
print("retr with rest equal", got.getvalue() == data[5:])
print("every data connection tls", all(ftp.data_tls), len(ftp.data_tls))

# A data connection that speaks no TLS: 150, then 425; the session goes on.
reply = ftp.sendcmd("EPSV")
data_port = int(reply.split("|||")[1].split("|")[0])
raw = socket.create_connection((host, data_port), timeout=10)
ftp.putcmd("RETR data.bin")
print(ftp.getresp())
raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
try:
    print(ftp.getresp())
except ftplib.error_temp as e:
    print(e)
raw.close()
print(ftp.sendcmd("NOOP"))

# STAT and ABOR during a TLS download, over the TLS control connection.
# The file is larger than both sockets' buffers hold, so the RETR cannot
# end before the ABOR arrives.
big = bytes(range(256)) * (128 * 1024)  # 32 MiB
print(md5_of(ftp.storbinary("STOR big.bin", io.BytesIO(big), blocksize=1 << 20), big))
conn = ftp.transfercmd("RETR big.bin")
conn.recv(65536)
ftp.putcmd("STAT")
print(re.sub(r"[0-9]+ bytes", "N bytes", ftp.getline()))
ftp.putcmd("ABOR")  # in band: ftplib's abort() sends urgent data, which TLS cannot
print(ftp.getline())
print(ftp.getline())
conn.close()
print(ftp.sendcmd("NOOP"))

print(ftp.sendcmd("PROT C"))
try:
    ftp.sendcmd("CCC")
except ftplib.error_perm as e:
    print(e)
print(ftp.quit())
