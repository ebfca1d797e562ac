//! Code actions on a large document only read: parsed once per version, not on every
//! cursor move (editors ask for actions on each).

use crate::lsp::{build_service, Environment, TandemServer};

/// The cached tree's document, version and identity (the address of its first child,
/// which a re-parse would change).
fn cached(server: &TandemServer) -> Option<(String, i32, usize)> {
    server
        .action_tree
        .lock()
        .unwrap()
        .as_ref()
        .map(|(uri, version, syntax)| {
            let first = syntax.tree.root_node().child(0).map_or(0, |node| node.id());
            (uri.clone(), *version, first)
        })
}

#[tokio::test]
async fn a_read_only_document_is_parsed_once_per_version_for_actions() {
    let (service, _socket) = build_service(Environment::default()).unwrap();
    let server = service.inner();
    let uri = "file:///w/big.rs";
    // Larger than the store keeps a tree for when a document is only read.
    let text = "fn f() { let x = 1; }\n".repeat(2_000);
    server.documents.open(uri, "rust", 1, &text);
    assert!(server.documents.snapshot(uri).unwrap().syntax.is_none());

    assert!(server.action_snapshot(uri).unwrap().syntax.is_some());
    let first = cached(server).expect("the tree is kept for the next action");
    assert_eq!((first.0.as_str(), first.1), (uri, 1));
    for _ in 0..3 {
        assert!(server.action_snapshot(uri).unwrap().syntax.is_some());
        assert_eq!(cached(server), Some(first.clone()), "no second parse");
    }

    // A new version gets a new tree; closing the document drops it.
    server.documents.close(uri);
    server.documents.open(uri, "rust", 2, &text);
    server.action_snapshot(uri).unwrap();
    let second = cached(server).unwrap();
    assert_eq!(second.1, 2);
    assert_ne!(second.2, first.2);
    server.forget_action_tree(uri);
    assert_eq!(cached(server), None);
}
