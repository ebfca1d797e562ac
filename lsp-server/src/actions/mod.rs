//! Code actions and explanations, apart from LSP: what an action is about ([`target`]),
//! the request for it ([`request`]), and from the model's answer to a validated edit
//! ([`edit`], built on minimal edits in [`diff`] and the syntax check in [`validate`]).

#[doc(hidden)]
pub mod bench;
pub(crate) mod diff;
pub(crate) mod edit;
pub(crate) mod request;
pub(crate) mod target;
pub(crate) mod validate;
