"""The hash extensions of `serve --handler ftp`, checked with Python's
ftplib against Python's hashlib.

Usage: python3 ftp_hashes.py HOST PORT USER PASSWORD

For files of 0 bytes, 1 byte, 10 MiB and 100 MiB (pseudo-random bytes):
STOR and RETR (their 226 reply's MD5=), XMD5, XSHA1, XSHA256, and
OPTS HASH + HASH with each algorithm; then SITE CHKHASH with a right and a
wrong digest, and the refusals. Every digest the server gives is compared
with hashlib's and printed as <right> (or WRONG); tests/ftp_hash.rs
compares the transcript whole.
"""

import ftplib
import hashlib
import io
import random
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def checked(reply, expected, label="right"):
    """The reply with the expected digest shown as <right> (or label)."""
    if expected in reply:
        return reply.replace(expected, "<" + label + ">")
    return reply + " WRONG (expected " + expected + ")"


def respond(command):
    """The server's reply to command, even an error reply."""
    try:
        return ftp.sendcmd(command)
    except ftplib.Error as e:
        return str(e)


ftp = ftplib.FTP(timeout=30)
ftp.connect(host, port)
ftp.login(user, password)
print(respond("TYPE I"))
print(respond("OPTS HASH"))

sizes = [("empty", 0), ("one", 1), ("ten-mib", 10 << 20), ("hundred-mib", 100 << 20)]
for index, (name, size) in enumerate(sizes):
    data = random.Random(index).randbytes(size)
    md5 = hashlib.md5(data).hexdigest()
    sha1 = hashlib.sha1(data).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    path = name + ".bin"
    print("file", path, size)
    print("STOR", checked(ftp.storbinary("STOR " + path, io.BytesIO(data)), md5))
    got = io.BytesIO()
    print("RETR", checked(ftp.retrbinary("RETR " + path, got.write, blocksize=1 << 20), md5))
    print("RETR bytes equal", got.getvalue() == data)
    print("XMD5", checked(respond("XMD5 " + path), md5))
    print("XSHA1", checked(respond("XSHA1 " + path), sha1))
    print("XSHA256", checked(respond("XSHA256 " + path), sha256))
    for algorithm, digest in [("MD5", md5), ("SHA-1", sha1), ("SHA-256", sha256)]:
        print("OPTS", respond("OPTS HASH " + algorithm))
        print("HASH", checked(respond("HASH " + path), digest))

print("OPTS", respond("OPTS HASH CRC32"))
print("OPTS", respond("OPTS HASH"))

# SITE CHKHASH: the upload lands only if its MD5 is the one announced.
data = random.Random(99).randbytes(3 << 20)
md5 = hashlib.md5(data).hexdigest()
wrong = hashlib.md5(b"something else").hexdigest()
print("SITE", respond("SITE CHKHASH " + wrong))
try:
    ftp.storbinary("STOR checked.bin", io.BytesIO(data))
    print("STOR with a wrong digest: accepted")
except ftplib.error_perm as e:
    print("STOR with a wrong digest:", checked(checked(str(e), md5, "received"), wrong, "announced"))
print("after the wrong digest", sorted(ftp.nlst()))
print("SITE", checked(respond("SITE CHKHASH " + md5.upper()), md5))
print("STOR", checked(ftp.storbinary("STOR checked.bin", io.BytesIO(data)), md5))
# APPE: the digest announced is the stored file's, its old part included.
tail = b"+tail"
whole = hashlib.md5(data + tail).hexdigest()
print("SITE", checked(respond("SITE CHKHASH " + whole), whole))
print("APPE", checked(ftp.storbinary("APPE checked.bin", io.BytesIO(tail)), whole))
print("SITE", respond("SITE CHKHASH " + wrong))
try:
    ftp.storbinary("APPE checked.bin", io.BytesIO(tail))
    print("APPE with a wrong digest: accepted")
except ftplib.error_perm as e:
    received = hashlib.md5(data + tail + tail).hexdigest()
    print("APPE with a wrong digest:", checked(checked(str(e), received, "received"), wrong, "announced"))
print("size after", ftp.size("checked.bin"), len(data + tail))
print("SITE", respond("SITE CHKHASH 1234"))
print("SITE", respond("SITE HELP"))

# Refusals: a folder, a missing file, no name.
ftp.mkd("folder")
print("XMD5 folder", respond("XMD5 folder"))
print("HASH folder", respond("HASH folder"))
print("XMD5 missing", respond("XMD5 missing.bin"))
print("XMD5 outside", respond("XMD5 ../../../etc/passwd"))
print("XMD5 nothing", respond("XMD5"))
print(ftp.quit())
