//! In-process tests of the language server over real LSP framing.

mod action_tree;
mod fixture;
mod harness;
mod ordering;
mod requests;
mod speed;
