//! Handler errors and the one function that maps them to JSON-RPC errors.

use tower_lsp::jsonrpc;

use crate::document::{PositionError, StoreError};

/// Why a request could not be answered with a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandlerError {
    /// The request names a document the client never opened (or already closed).
    #[error("document not open: {0}")]
    DocumentNotOpen(String),
    /// The request's position does not exist in the document.
    #[error("invalid position: {0}")]
    InvalidPosition(#[from] PositionError),
    /// The document changed while the answer was computed; the answer is stale.
    #[error("the document changed while the request was running")]
    ContentModified,
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotOpen(uri) => HandlerError::DocumentNotOpen(uri),
        }
    }
}

impl HandlerError {
    /// The JSON-RPC error sent for this.
    pub(crate) fn to_jsonrpc(&self) -> jsonrpc::Error {
        let code = match self {
            HandlerError::DocumentNotOpen(_) | HandlerError::InvalidPosition(_) => {
                jsonrpc::ErrorCode::InvalidParams
            }
            HandlerError::ContentModified => jsonrpc::ErrorCode::ContentModified,
        };
        jsonrpc::Error {
            code,
            message: self.to_string().into(),
            data: None,
        }
    }
}

impl From<HandlerError> for jsonrpc::Error {
    fn from(error: HandlerError) -> Self {
        error.to_jsonrpc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let error = HandlerError::DocumentNotOpen("file:///x.rs".into()).to_jsonrpc();
        assert_eq!(error.code.code(), -32602);
        assert_eq!(error.message, "document not open: file:///x.rs");
        let error = HandlerError::InvalidPosition(PositionError::LinePastEnd {
            line: 5,
            line_count: 2,
        })
        .to_jsonrpc();
        assert_eq!(error.code.code(), -32602);
        assert_eq!(
            error.message,
            "invalid position: line 5 is past the end of the document (2 lines)"
        );
        assert_eq!(
            HandlerError::ContentModified.to_jsonrpc().code.code(),
            -32801
        );
    }
}
