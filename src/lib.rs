//! binfmtd: register, verify, keep and diagnose binfmt_misc handlers for foreign binaries.
//!
//! Data flows host detection → handler catalog → plan → kernel interface → doctor →
//! D-Bus service → CLI; each stage is a module below. Under all of them, `sys` holds the
//! system plumbing (namespaces, helper processes, version queries) and imports none of them.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod doctor;
pub mod engine;
pub mod host;
pub mod kernel;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod persist;
pub mod plan;
pub mod privilege;
pub mod probe;
pub mod procs;
pub mod sandbox;
pub mod sys;
pub mod text;
