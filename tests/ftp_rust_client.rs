//! suppaftp, a Rust FTP client written by others, against
//! `serve --handler ftp`: the calls a Rust program makes, in passive,
//! extended passive and active modes, with resume and abort.

use std::io::{Cursor, Read};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use suppaftp::list::ListParser;
use suppaftp::types::FileType;
use suppaftp::{FtpStream, Mode};

use crate::ftp_curl::pattern;
use crate::ftp_util::{serve_ftp, TempDir, PASSWORD, USER};
use crate::util::IO_TIMEOUT;

fn connect(addr: &str) -> FtpStream {
    let ftp = FtpStream::connect_timeout(addr.parse().unwrap(), IO_TIMEOUT).expect("connect");
    ftp.get_ref().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ftp.get_ref().set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    ftp
}

threads_and_events!(
    suppaftp_session,
    suppaftp_session_event,
    suppaftp_session_in
);

fn suppaftp_session_in(mode: &[&str]) {
    let root = TempDir::new("suppaftp");
    std::fs::write(root.join("big.bin"), vec![1u8; 32 * 1024 * 1024]).unwrap();
    // The client is on this machine: its active mode needs the flag.
    let server = serve_ftp(root.path(), &[mode, &["--allow-loopback-active"]].concat());
    let mut ftp = connect(&server.addr);
    assert_eq!(ftp.get_welcome_msg(), Some("220 socketserver FTP ready"));
    ftp.login(USER, PASSWORD).unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    assert!(ftp.feat().unwrap().contains_key("MLST"));

    ftp.mkdir("d").unwrap();
    ftp.cwd("d").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/d");
    let data = pattern(700_000, 11);
    assert_eq!(
        ftp.put_file("a.bin", &mut Cursor::new(&data)).unwrap(),
        700_000
    );
    ftp.append_file("a.bin", &mut Cursor::new(b"more")).unwrap();
    let mut all = data.clone();
    all.extend_from_slice(b"more");
    assert_eq!(std::fs::read(root.join("d/a.bin")).unwrap(), all);
    assert_eq!(ftp.size("a.bin").unwrap(), all.len());
    let mtime = std::fs::metadata(root.join("d/a.bin")).unwrap().mtime();
    assert_eq!(ftp.mdtm("a.bin").unwrap().and_utc().timestamp(), mtime);

    let listing = ftp.list(None).unwrap();
    assert_eq!(listing.len(), 1, "{listing:?}");
    let file = ListParser::parse_posix(&listing[0]).unwrap();
    assert_eq!((file.name(), file.size()), ("a.bin", all.len()));
    let facts = ftp.mlsd(None).unwrap();
    let file = ListParser::parse_mlsd(&facts[0]).unwrap();
    assert_eq!(
        (file.name(), file.size(), file.is_file()),
        ("a.bin", all.len(), true)
    );
    assert_eq!(ftp.nlst(None).unwrap(), ["a.bin"]);

    assert_eq!(ftp.retr_as_buffer("a.bin").unwrap().into_inner(), all);
    ftp.resume_transfer(123_456).unwrap();
    assert_eq!(
        ftp.retr_as_buffer("a.bin").unwrap().into_inner(),
        &all[123_456..]
    );
    ftp.set_mode(Mode::ExtendedPassive);
    assert_eq!(ftp.retr_as_buffer("a.bin").unwrap().into_inner(), all);
    ftp.set_mode(Mode::Passive);

    // ABOR in the middle of a large download.
    let mut stream = ftp.retr_as_stream("/big.bin").unwrap();
    let mut first = vec![0u8; 65536];
    stream.read_exact(&mut first).unwrap();
    ftp.abort(stream).unwrap();
    ftp.noop().unwrap();

    ftp.rename("a.bin", "b.bin").unwrap();
    assert_eq!(ftp.nlst(None).unwrap(), ["b.bin"]);
    ftp.rm("b.bin").unwrap();
    ftp.cdup().unwrap();
    ftp.rmdir("d").unwrap();
    assert_eq!(ftp.nlst(None).unwrap(), ["big.bin"]);

    // Active mode: the server connects back to the client.
    let mut ftp = ftp.active_mode(Duration::from_secs(5));
    let small = pattern(5000, 12);
    ftp.put_file("active.bin", &mut Cursor::new(&small))
        .unwrap();
    assert_eq!(
        ftp.retr_as_buffer("active.bin").unwrap().into_inner(),
        small
    );
    ftp.quit().unwrap();
    assert_eq!(root.names(""), ["active.bin", "big.bin"]);
}
