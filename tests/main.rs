//! End-to-end tests: real programs, real sockets, real clients written by
//! others (the tutorial's clients in ../shared/seed/clients).

mod util;

mod echo;
mod examples;
mod serve;
mod udp;
