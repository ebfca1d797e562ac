//! Per-language tables of tree-sitter node kinds: which nodes open a scope, which are
//! definitions, which are imports, and which merely wrap one of those.
//!
//! Plain data, checked against every grammar by a test, so a kind misspelt here (or
//! renamed by a grammar upgrade) fails the build instead of silently finding nothing.

use super::definitions::DefinitionKind as D;
use super::scopes::ScopeKind as S;
use super::Language;

pub(crate) struct Kinds {
    /// Nodes whose header is an enclosing scope's signature.
    pub(crate) scopes: &'static [(&'static str, S)],
    /// Body nodes, for the few scope nodes without a `body` field (a Go `type` declaration
    /// keeps its struct's fields two levels down).
    pub(crate) bodies: &'static [&'static str],
    /// Parents a header starts at instead of the scope node itself: `template <…>` in
    /// C++, `export` and `const f = ` in JavaScript.
    pub(crate) header_wrappers: &'static [&'static str],
    /// Statements kept verbatim as the file's imports.
    pub(crate) imports: &'static [&'static str],
    /// Nodes searched for more imports: preprocessor conditionals (header guards), Python's
    /// `if TYPE_CHECKING:` and `try: import …`.
    pub(crate) import_containers: &'static [&'static str],
    /// Definitions named by their `name` field (or declarator, in C and C++).
    pub(crate) definitions: &'static [(&'static str, D)],
    /// Nodes searched for member definitions, with no definition of their own (a Rust
    /// `impl`, an `export` statement, a decorated Python definition, a C++ template).
    pub(crate) transparent: &'static [&'static str],
}

/// Scope nodes whose direct function members are methods.
pub(crate) fn is_type_scope(kind: S) -> bool {
    matches!(
        kind,
        S::Class | S::Struct | S::Enum | S::Impl | S::Trait | S::Interface
    )
}

const RUST: Kinds = Kinds {
    scopes: &[
        ("function_item", S::Function),
        ("impl_item", S::Impl),
        ("trait_item", S::Trait),
        ("mod_item", S::Module),
        ("struct_item", S::Struct),
        ("enum_item", S::Enum),
        ("union_item", S::Struct),
    ],
    bodies: &[],
    header_wrappers: &[],
    imports: &["use_declaration", "extern_crate_declaration"],
    import_containers: &[],
    definitions: &[
        ("function_item", D::Function),
        ("function_signature_item", D::Function),
        ("struct_item", D::Struct),
        ("enum_item", D::Enum),
        ("union_item", D::Union),
        ("trait_item", D::Trait),
        ("type_item", D::TypeAlias),
        ("const_item", D::Const),
        ("static_item", D::Static),
        ("mod_item", D::Module),
        ("macro_definition", D::Macro),
    ],
    transparent: &["impl_item"],
};

const PYTHON: Kinds = Kinds {
    scopes: &[
        ("function_definition", S::Function),
        ("class_definition", S::Class),
    ],
    bodies: &[],
    header_wrappers: &[],
    imports: &[
        "import_statement",
        "import_from_statement",
        "future_import_statement",
    ],
    import_containers: &[
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "block",
    ],
    definitions: &[
        ("function_definition", D::Function),
        ("class_definition", D::Class),
    ],
    transparent: &["decorated_definition"],
};

const JAVASCRIPT_SCOPES: &[(&str, S)] = &[
    ("function_declaration", S::Function),
    ("generator_function_declaration", S::Function),
    ("function_expression", S::Function),
    ("generator_function", S::Function),
    ("arrow_function", S::Function),
    ("method_definition", S::Method),
    ("class_declaration", S::Class),
    ("class", S::Class),
];

const JAVASCRIPT: Kinds = Kinds {
    scopes: JAVASCRIPT_SCOPES,
    bodies: &[],
    header_wrappers: &[
        "export_statement",
        "variable_declarator",
        "lexical_declaration",
        "variable_declaration",
        "pair",
    ],
    imports: &["import_statement"],
    import_containers: &[],
    definitions: &[
        ("function_declaration", D::Function),
        ("generator_function_declaration", D::Function),
        ("class_declaration", D::Class),
        ("method_definition", D::Method),
    ],
    transparent: &["export_statement"],
};

const TYPESCRIPT_SCOPES: &[(&str, S)] = &[
    ("function_declaration", S::Function),
    ("generator_function_declaration", S::Function),
    ("function_expression", S::Function),
    ("generator_function", S::Function),
    ("arrow_function", S::Function),
    ("method_definition", S::Method),
    ("class_declaration", S::Class),
    ("abstract_class_declaration", S::Class),
    ("class", S::Class),
    ("interface_declaration", S::Interface),
    ("enum_declaration", S::Enum),
    ("internal_module", S::Namespace),
    ("module", S::Module),
];

const TYPESCRIPT: Kinds = Kinds {
    scopes: TYPESCRIPT_SCOPES,
    bodies: &[],
    header_wrappers: &[
        "export_statement",
        "ambient_declaration",
        "variable_declarator",
        "lexical_declaration",
        "variable_declaration",
        "pair",
    ],
    imports: &["import_statement", "import_alias"],
    import_containers: &[],
    definitions: &[
        ("function_declaration", D::Function),
        ("generator_function_declaration", D::Function),
        ("function_signature", D::Function),
        ("class_declaration", D::Class),
        ("abstract_class_declaration", D::Class),
        ("method_definition", D::Method),
        ("method_signature", D::Method),
        ("abstract_method_signature", D::Method),
        ("interface_declaration", D::Interface),
        ("type_alias_declaration", D::TypeAlias),
        ("enum_declaration", D::Enum),
        ("internal_module", D::Module),
        ("module", D::Module),
    ],
    // A top-level `namespace X {}` parses as an expression statement.
    transparent: &[
        "export_statement",
        "ambient_declaration",
        "expression_statement",
    ],
};

const GO: Kinds = Kinds {
    scopes: &[
        ("function_declaration", S::Function),
        ("method_declaration", S::Method),
        ("func_literal", S::Function),
        ("type_declaration", S::Struct),
    ],
    bodies: &["field_declaration_list", "interface_type"],
    header_wrappers: &[],
    imports: &["package_clause", "import_declaration"],
    import_containers: &[],
    definitions: &[
        ("function_declaration", D::Function),
        ("method_declaration", D::Method),
    ],
    transparent: &[],
};

const JAVA: Kinds = Kinds {
    scopes: &[
        ("class_declaration", S::Class),
        ("record_declaration", S::Class),
        ("interface_declaration", S::Interface),
        ("annotation_type_declaration", S::Interface),
        ("enum_declaration", S::Enum),
        ("method_declaration", S::Method),
        ("constructor_declaration", S::Method),
    ],
    bodies: &[],
    header_wrappers: &[],
    imports: &["package_declaration", "import_declaration"],
    import_containers: &[],
    definitions: &[
        ("class_declaration", D::Class),
        ("record_declaration", D::Class),
        ("interface_declaration", D::Interface),
        ("annotation_type_declaration", D::Interface),
        ("enum_declaration", D::Enum),
        ("method_declaration", D::Method),
        ("constructor_declaration", D::Method),
    ],
    transparent: &[],
};

const C_SCOPES: &[(&str, S)] = &[
    ("function_definition", S::Function),
    ("struct_specifier", S::Struct),
    ("union_specifier", S::Struct),
    ("enum_specifier", S::Enum),
];

const PREPROCESSOR_CONTAINERS: &[&str] = &[
    "preproc_ifdef",
    "preproc_if",
    "preproc_else",
    "preproc_elif",
    "preproc_elifdef",
];

const C: Kinds = Kinds {
    scopes: C_SCOPES,
    bodies: &[],
    header_wrappers: &[],
    imports: &["preproc_include"],
    import_containers: PREPROCESSOR_CONTAINERS,
    definitions: &[
        ("function_definition", D::Function),
        ("struct_specifier", D::Struct),
        ("union_specifier", D::Union),
        ("enum_specifier", D::Enum),
        ("type_definition", D::TypeAlias),
        ("preproc_function_def", D::Macro),
        ("preproc_def", D::Macro),
    ],
    transparent: &[
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
    ],
};

const CPP: Kinds = Kinds {
    scopes: &[
        ("function_definition", S::Function),
        ("struct_specifier", S::Struct),
        ("union_specifier", S::Struct),
        ("enum_specifier", S::Enum),
        ("class_specifier", S::Class),
        ("namespace_definition", S::Namespace),
    ],
    bodies: &[],
    header_wrappers: &["template_declaration"],
    imports: &["preproc_include", "using_declaration"],
    import_containers: PREPROCESSOR_CONTAINERS,
    definitions: &[
        ("function_definition", D::Function),
        ("struct_specifier", D::Struct),
        ("union_specifier", D::Union),
        ("enum_specifier", D::Enum),
        ("class_specifier", D::Class),
        ("type_definition", D::TypeAlias),
        ("alias_declaration", D::TypeAlias),
        ("concept_definition", D::TypeAlias),
        ("preproc_function_def", D::Macro),
        ("preproc_def", D::Macro),
    ],
    transparent: &[
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
        "template_declaration",
        "namespace_definition",
    ],
};

/// The tables of `language`.
pub(crate) fn kinds(language: Language) -> &'static Kinds {
    match language {
        Language::Rust => &RUST,
        Language::Python => &PYTHON,
        Language::JavaScript => &JAVASCRIPT,
        Language::TypeScript | Language::Tsx => &TYPESCRIPT,
        Language::Go => &GO,
        Language::Java => &JAVA,
        Language::C => &C,
        Language::Cpp => &CPP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_exists_in_its_grammar() {
        for language in Language::ALL {
            let grammar = language.grammar();
            let tables = kinds(language);
            let names = tables
                .scopes
                .iter()
                .map(|(kind, _)| *kind)
                .chain(tables.definitions.iter().map(|(kind, _)| *kind))
                .chain(tables.bodies.iter().copied())
                .chain(tables.header_wrappers.iter().copied())
                .chain(tables.imports.iter().copied())
                .chain(tables.import_containers.iter().copied())
                .chain(tables.transparent.iter().copied());
            for name in names {
                assert_ne!(
                    grammar.id_for_node_kind(name, true),
                    0,
                    "{language:?} has no node kind {name:?}"
                );
            }
        }
    }
}
