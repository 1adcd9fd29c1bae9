//! End-to-end tests: real programs, real sockets, real clients written by
//! others (the tutorial's clients in ../shared/seed/clients).

mod util;

mod echo;
mod examples;
mod ftp_client;
mod ftp_curl;
mod ftp_hash;
mod ftp_lftp;
mod ftp_protocol;
mod ftp_python;
mod ftp_rust_client;
mod ftp_security;
mod ftp_util;
mod limits;
mod serve;
mod shell;
mod udp;
