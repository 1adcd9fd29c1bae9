//! End-to-end tests: real programs, real sockets, real clients written by
//! others (the tutorial's own programs are in examples/tutorial).

#[macro_use]
mod util;

mod echo;
mod event_loop;
mod examples;
mod ftp_client;
mod ftp_confinement;
mod ftp_curl;
mod ftp_drain;
mod ftp_hash;
mod ftp_lftp;
mod ftp_protocol;
mod ftp_python;
mod ftp_rust_client;
mod ftp_security;
mod ftp_util;
mod ftp_wire;
mod ftps;
mod ftps_clients;
mod ftps_util;
mod limits;
mod serve;
mod shell;
mod shell_auth;
mod shell_processes;
mod shell_run;
mod shell_util;
mod tls;
mod udp;
