//! The file's imports, verbatim: `use`, `import`/`from … import`, top-level `require()`,
//! `#include`, Go import blocks, Java `package` and `import`.

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::kinds::{self, Kinds};
use super::{text_of, Language};

/// More than this many imports are generated code; the rest would not fit a budget.
const MAX_IMPORTS: usize = 256;
/// How deep containers (`#ifdef`, `if TYPE_CHECKING:`) are searched.
const MAX_DEPTH: usize = 4;

/// The import statements of the file, in order, each trimmed of surrounding whitespace
/// (a multi-line import keeps its line breaks).
pub(crate) fn imports(tree: &Tree, text: &Rope, language: Language) -> Vec<String> {
    let mut found = Vec::new();
    collect(
        kinds::kinds(language),
        text,
        tree.root_node(),
        0,
        &mut found,
    );
    found
}

fn collect(tables: &Kinds, text: &Rope, node: Node<'_>, depth: usize, found: &mut Vec<String>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if found.len() >= MAX_IMPORTS {
            return;
        }
        let kind = child.kind();
        if tables.imports.contains(&kind) || is_require(text, child) || is_reexport(child) {
            let statement = text_of(text, child.byte_range());
            found.push(statement.trim().to_owned());
        } else if depth < MAX_DEPTH && tables.import_containers.contains(&kind) {
            collect(tables, text, child, depth + 1, found);
        }
    }
}

/// `const fs = require("fs")`, `const { join } = require("path").posix` or a bare
/// `require("./setup")` statement (CommonJS).
fn is_require(text: &Rope, node: Node<'_>) -> bool {
    match node.kind() {
        "lexical_declaration" | "variable_declaration" => {
            let mut cursor = node.walk();
            let mut declarators = node.named_children(&mut cursor);
            declarators.any(|declarator| {
                declarator
                    .child_by_field_name("value")
                    .is_some_and(|value| calls_require(text, value))
            })
        }
        "expression_statement" => node
            .named_child(0)
            .is_some_and(|expression| calls_require(text, expression)),
        _ => false,
    }
}

fn calls_require(text: &Rope, node: Node<'_>) -> bool {
    match node.kind() {
        "call_expression" => node
            .child_by_field_name("function")
            .is_some_and(|function| {
                function.kind() == "identifier" && text_of(text, function.byte_range()) == "require"
            }),
        "member_expression" => node
            .child_by_field_name("object")
            .is_some_and(|object| calls_require(text, object)),
        "await_expression" => node
            .named_child(0)
            .is_some_and(|inner| calls_require(text, inner)),
        _ => false,
    }
}

/// `export { a } from "./a"` imports as much as it exports.
fn is_reexport(node: Node<'_>) -> bool {
    node.kind() == "export_statement" && node.child_by_field_name("source").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::test_support::parse_fixture;

    #[track_caller]
    fn check(language: Language, source: &str, expected: &str) {
        let fixture = parse_fixture(language, source);
        let actual = imports(&fixture.tree, &fixture.rope, language).join("\n");
        assert_eq!(actual.trim(), expected.trim(), "source:\n{source}");
    }

    #[test]
    fn rust_use_and_extern_crate() {
        check(
            Language::Rust,
            r#"
//! Docs.
extern crate alloc;
use std::collections::{HashMap, HashSet};
pub use crate::config::Config;

fn main() {
    use std::io::Write;
}
"#,
            "
extern crate alloc;
use std::collections::{HashMap, HashSet};
pub use crate::config::Config;
",
        );
    }

    #[test]
    fn python_imports_including_type_checking_blocks() {
        check(
            Language::Python,
            r#"
from __future__ import annotations
import os, sys
from typing import (
    TYPE_CHECKING,
    Generic,
)
if TYPE_CHECKING:
    from .models import User
try:
    import ujson as json
except ImportError:
    import json

def f():
    import re
"#,
            "
from __future__ import annotations
import os, sys
from typing import (
    TYPE_CHECKING,
    Generic,
)
from .models import User
import ujson as json
import json
",
        );
    }

    #[test]
    fn javascript_imports_and_top_level_requires() {
        check(
            Language::JavaScript,
            r#"
"use strict";
import React, { useState } from "react";
const fs = require("fs");
const { join } = require("path").posix;
require("./setup");
export { helper } from "./helper";
const x = compute();
function f() { const inner = require("inner"); }
"#,
            r#"
import React, { useState } from "react";
const fs = require("fs");
const { join } = require("path").posix;
require("./setup");
export { helper } from "./helper";
"#,
        );
    }

    #[test]
    fn typescript_type_imports() {
        check(
            Language::TypeScript,
            "import type { User } from './user';\nimport * as api from '@app/api';\nlet a: User;\n",
            "import type { User } from './user';\nimport * as api from '@app/api';",
        );
    }

    #[test]
    fn go_package_and_import_block() {
        check(
            Language::Go,
            "package server\n\nimport (\n\t\"context\"\n\tlog \"github.com/sirupsen/logrus\"\n)\n\nimport \"fmt\"\n\nfunc main() {}\n",
            "package server\nimport (\n\t\"context\"\n\tlog \"github.com/sirupsen/logrus\"\n)\nimport \"fmt\"",
        );
    }

    #[test]
    fn java_package_and_imports() {
        check(
            Language::Java,
            "package com.example.app;\n\nimport java.util.List;\nimport static org.junit.Assert.*;\n\nclass A {}\n",
            "package com.example.app;\nimport java.util.List;\nimport static org.junit.Assert.*;",
        );
    }

    #[test]
    fn c_includes_inside_a_header_guard() {
        check(
            Language::C,
            "#ifndef APP_H\n#define APP_H\n#include <stdio.h>\n#include \"config.h\"\nint f(void);\n#endif\n",
            "#include <stdio.h>\n#include \"config.h\"",
        );
    }

    #[test]
    fn cpp_includes_and_using() {
        check(
            Language::Cpp,
            "#include <vector>\nusing namespace std;\nusing std::string;\nint main() { using std::cout; }\n",
            "#include <vector>\nusing namespace std;\nusing std::string;",
        );
    }
}
