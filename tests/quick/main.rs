//! The tests that need no root: parsing, planning, configure against a real
//! sshd on loopback, the dashboard with fakes, the bad-input corpus, the
//! house rules. One binary, so `cargo test` links the library once for them.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cli;
mod configure;
mod dashboard;
mod fuzz;
mod layout;
mod lock_and_interrupt;
mod scenarios_render;
mod secrets;
mod vagrantfile;
mod verify_local;
