//! labctl: build high-availability teaching labs and prove they work.
//!
//! Data flows one way: load ([`inventory`], [`scenario`]) → plan ([`templates`], [`ops`])
//! → run ([`runner`] over [`transport`]) → recap. [`providers`] create and remove the
//! nodes; [`verify`] proves a scenario works by running its [`checks`]. The
//! library reports what happens as events and progress; `cli` owns all output.

pub mod catalog;
pub mod checks;
pub mod child;
pub mod class;
pub mod cli;
pub mod dashboard;
pub mod duration;
pub mod error;
pub mod interrupt;
pub mod inventory;
pub mod jump;
pub mod lab;
pub mod lock;
pub mod ops;
pub mod progress;
pub mod project;
pub mod providers;
pub mod redact;
pub mod runner;
pub mod scenario;
pub mod serial;
pub mod shell;
pub mod suggest;
pub mod templates;
pub mod text;
pub mod transport;
pub mod vagrantfile;
pub mod verify;
pub mod yaml;
