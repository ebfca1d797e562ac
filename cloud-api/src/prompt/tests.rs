//! Snapshots of every family's prompt, with and without context, and family detection.

use insta::assert_snapshot;
use tandem_shared::{CodeContext, CompletionRequest, Snippet};

use super::*;

/// A Python request; `$0` in `fixture` marks the cursor.
fn request(fixture: &str, context: CodeContext) -> CompletionRequest {
    let (prefix, suffix) = fixture.split_once("$0").expect("fixture needs $0");
    CompletionRequest {
        language: "python".into(),
        path: "app/orders.py".into(),
        prefix: prefix.into(),
        suffix: suffix.into(),
        max_tokens: None,
        temperature: None,
        stop: vec![],
        context,
        file_size: None,
        stream: false,
    }
}

const FIXTURE: &str = "    def total(self):\n        return sum($0)\n\n    def count(self):\n";

fn snippet(path: &str, text: &str) -> Snippet {
    Snippet {
        path: path.into(),
        text: text.into(),
    }
}

/// Context with a bit of everything: a scope and an import the prefix lost, one import it
/// still has, a definition, a similar snippet and a recent edit from other files.
fn context() -> CodeContext {
    CodeContext {
        scopes: vec!["class Order:".into(), "    def total(self):".into()],
        imports: vec![
            "from decimal import Decimal".into(),
            "def total(self):".into(),
        ],
        definitions: vec![snippet(
            "app/items.py",
            "class Item:\n    price: Decimal\n    quantity: int\n",
        )],
        similar: vec![snippet(
            "app/invoices.py",
            "        return sum(line.amount for line in self.lines)",
        )],
        recent_edits: vec![snippet(
            "app/items.py",
            "\n\n    def cost(self):\n        return self.price * self.quantity\n\n",
        )],
    }
}

#[track_caller]
fn render(family: Family, with_context: bool) -> String {
    let context = if with_context {
        context()
    } else {
        CodeContext::default()
    };
    family.render(&request(FIXTURE, context))
}

#[test]
fn starcoder() {
    assert_snapshot!(render(Family::StarCoder, false), @r"
        <fim_prefix>    def total(self):
                return sum(<fim_suffix>)

            def count(self):
        <fim_middle>
        ");
    assert_snapshot!(render(Family::StarCoder, true), @r"
        <fim_prefix><filename>app/items.py
            def cost(self):
                return self.price * self.quantity
        <filename>app/invoices.py
                return sum(line.amount for line in self.lines)
        <filename>app/items.py
        class Item:
            price: Decimal
            quantity: int
        <filename>app/orders.py
        from decimal import Decimal

        class Order:
            def total(self):
                return sum(<fim_suffix>)

            def count(self):
        <fim_middle>
        ");
}

#[test]
fn starcoder2() {
    assert_snapshot!(render(Family::StarCoder2, false), @r"
        <fim_prefix>    def total(self):
                return sum(<fim_suffix>)

            def count(self):
        <fim_middle>
        ");
    assert_snapshot!(render(Family::StarCoder2, true), @r"
        <file_sep>app/items.py
            def cost(self):
                return self.price * self.quantity
        <file_sep>app/invoices.py
                return sum(line.amount for line in self.lines)
        <file_sep>app/items.py
        class Item:
            price: Decimal
            quantity: int
        <file_sep><fim_prefix>app/orders.py
        from decimal import Decimal

        class Order:
            def total(self):
                return sum(<fim_suffix>)

            def count(self):
        <fim_middle>
        ");
}

#[test]
fn codellama() {
    assert_snapshot!(render(Family::CodeLlama, false), @r"
        <PRE>     def total(self):
                return sum( <SUF>)

            def count(self):
         <MID>
        ");
    assert_snapshot!(render(Family::CodeLlama, true), @r"
        <PRE> # Path: app/items.py
            def cost(self):
                return self.price * self.quantity

        # Path: app/invoices.py
                return sum(line.amount for line in self.lines)

        # Path: app/items.py
        class Item:
            price: Decimal
            quantity: int

        # Path: app/orders.py
        from decimal import Decimal

        class Order:
            def total(self):
                return sum( <SUF>)

            def count(self):
         <MID>
        ");
}

#[test]
fn deepseek_coder() {
    assert_snapshot!(render(Family::DeepSeekCoder, false), @r"
        <｜fim▁begin｜>    def total(self):
                return sum(<｜fim▁hole｜>)

            def count(self):
        <｜fim▁end｜>
        ");
    assert_snapshot!(render(Family::DeepSeekCoder, true), @r"
        <｜fim▁begin｜># Path: app/items.py
            def cost(self):
                return self.price * self.quantity

        # Path: app/invoices.py
                return sum(line.amount for line in self.lines)

        # Path: app/items.py
        class Item:
            price: Decimal
            quantity: int

        # Path: app/orders.py
        from decimal import Decimal

        class Order:
            def total(self):
                return sum(<｜fim▁hole｜>)

            def count(self):
        <｜fim▁end｜>
        ");
}

#[test]
fn qwen() {
    assert_snapshot!(render(Family::Qwen, false), @r"
        <|fim_prefix|>    def total(self):
                return sum(<|fim_suffix|>)

            def count(self):
        <|fim_middle|>
        ");
    assert_snapshot!(render(Family::Qwen, true), @r"
        <|repo_name|>workspace
        <|file_sep|>app/items.py
            def cost(self):
                return self.price * self.quantity
        <|file_sep|>app/invoices.py
                return sum(line.amount for line in self.lines)
        <|file_sep|>app/items.py
        class Item:
            price: Decimal
            quantity: int
        <|file_sep|>app/orders.py
        <|fim_prefix|>from decimal import Decimal

        class Order:
            def total(self):
                return sum(<|fim_suffix|>)

            def count(self):
        <|fim_middle|>
        ");
}

#[test]
fn codestral() {
    assert_snapshot!(render(Family::Codestral, false), @r"
        [SUFFIX])

            def count(self):
        [PREFIX]    def total(self):
                return sum(
        ");
    assert_snapshot!(render(Family::Codestral, true), @r"
        [SUFFIX])

            def count(self):
        [PREFIX]# Path: app/items.py
            def cost(self):
                return self.price * self.quantity

        # Path: app/invoices.py
                return sum(line.amount for line in self.lines)

        # Path: app/items.py
        class Item:
            price: Decimal
            quantity: int

        # Path: app/orders.py
        from decimal import Decimal

        class Order:
            def total(self):
                return sum(
        ");
}

#[test]
fn no_context_renders_the_published_templates_exactly() {
    let plain = |family: Family| family.render(&request("a$0b", CodeContext::default()));
    assert_eq!(
        plain(Family::StarCoder),
        "<fim_prefix>a<fim_suffix>b<fim_middle>"
    );
    assert_eq!(
        plain(Family::StarCoder2),
        "<fim_prefix>a<fim_suffix>b<fim_middle>"
    );
    assert_eq!(plain(Family::CodeLlama), "<PRE> a <SUF>b <MID>");
    assert_eq!(
        plain(Family::DeepSeekCoder),
        "<\u{ff5c}fim\u{2581}begin\u{ff5c}>a<\u{ff5c}fim\u{2581}hole\u{ff5c}>b<\u{ff5c}fim\u{2581}end\u{ff5c}>"
    );
    assert_eq!(
        plain(Family::Qwen),
        "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    );
    assert_eq!(plain(Family::Codestral), "[SUFFIX]b[PREFIX]a");
}

#[test]
fn preamble_uses_the_documents_comment_syntax() {
    let mut rust = request("fn main() {\n    $0\n}\n", context());
    rust.language = "rust".into();
    rust.path = "src/main.rs".into();
    rust.context.imports = vec!["use std::io;".into()];
    rust.context.scopes = vec!["fn main() {".into()];
    assert_snapshot!(preamble(&rust), @r"
        // Path: app/items.py
            def cost(self):
                return self.price * self.quantity

        // Path: app/invoices.py
                return sum(line.amount for line in self.lines)

        // Path: app/items.py
        class Item:
            price: Decimal
            quantity: int

        // Path: src/main.rs
        use std::io;
        ");
    // Without context nothing is added: `template = "none"` sends the prefix as before.
    assert_eq!(preamble(&request(FIXTURE, CodeContext::default())), "");
}

#[test]
fn only_scopes_and_imports_get_no_file_headers() {
    let context = CodeContext {
        scopes: vec!["class Order:".into()],
        imports: vec!["import os".into()],
        ..CodeContext::default()
    };
    assert_snapshot!(Family::Qwen.render(&request(FIXTURE, context)), @r"
        <|fim_prefix|>import os

        class Order:
            def total(self):
                return sum(<|fim_suffix|>)

            def count(self):
        <|fim_middle|>
        ");
}

#[test]
fn snippets_already_around_the_cursor_or_repeated_are_left_out() {
    let context = CodeContext {
        definitions: vec![
            snippet("app/orders.py", "def count(self):"),
            snippet("app/a.py", "A = 1"),
            snippet("app/b.py", "   \n"),
        ],
        similar: vec![snippet("app/a.py", "A = 1")],
        recent_edits: vec![snippet("app/orders.py", "return sum(")],
        ..CodeContext::default()
    };
    assert_snapshot!(Family::Qwen.render(&request(FIXTURE, context)), @r"
        <|repo_name|>workspace
        <|file_sep|>app/a.py
        A = 1
        <|file_sep|>app/orders.py
        <|fim_prefix|>    def total(self):
                return sum(<|fim_suffix|>)

            def count(self):
        <|fim_middle|>
        ");
}

#[test]
fn unsaved_documents_are_untitled() {
    let mut request = request(FIXTURE, context());
    request.path = String::new();
    request.context.definitions[0].path = String::new();
    let prompt = Family::StarCoder2.render(&request);
    assert!(
        prompt.contains("<file_sep>untitled\nclass Item:"),
        "{prompt}"
    );
    assert!(
        prompt.contains("<file_sep><fim_prefix>untitled\n"),
        "{prompt}"
    );
}

#[test]
fn chat_context_splits_other_files_from_the_current_one() {
    let (files, current) = chat_context(&request(FIXTURE, context()));
    assert_snapshot!(files, @r"
        # Path: app/items.py
            def cost(self):
                return self.price * self.quantity

        # Path: app/invoices.py
                return sum(line.amount for line in self.lines)

        # Path: app/items.py
        class Item:
            price: Decimal
            quantity: int
        ");
    assert_snapshot!(current, @r"
        from decimal import Decimal

        class Order:
        ");
}

#[test]
fn stop_sequences_keep_the_requests_first_and_add_each_token_once() {
    let mut request = request(FIXTURE, CodeContext::default());
    request.stop = vec!["\n\n".into(), "<|endoftext|>".into()];
    assert_eq!(stop_sequences(&request, None), ["\n\n", "<|endoftext|>"]);
    assert_eq!(
        stop_sequences(&request, Some(Family::Qwen)),
        [
            "\n\n",
            "<|endoftext|>",
            "<|file_sep|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|fim_prefix|>",
            "<|im_end|>"
        ]
    );
    assert_eq!(
        stop_sequences(&request, Some(Family::CodeLlama)),
        ["\n\n", "<|endoftext|>", "<EOT>"]
    );
}

#[track_caller]
fn check_detect(model: &str, expected: Option<Family>) {
    assert_eq!(Family::detect(model), expected, "{model}");
}

#[test]
fn detects_families_from_real_model_names() {
    check_detect("qwen2.5-coder:7b-base", Some(Family::Qwen));
    check_detect("qwen2.5-coder:1.5b", Some(Family::Qwen));
    check_detect("Qwen/Qwen2.5-Coder-32B", Some(Family::Qwen));
    check_detect(
        "hf.co/bartowski/Qwen2.5-Coder-7B-GGUF:Q4_K_M",
        Some(Family::Qwen),
    );
    check_detect("qwen3-coder:30b", Some(Family::Qwen));
    check_detect(
        "deepseek-coder-v2:16b-lite-base",
        Some(Family::DeepSeekCoder),
    );
    check_detect("deepseek-coder:6.7b-base", Some(Family::DeepSeekCoder));
    check_detect(
        "deepseek-ai/deepseek-coder-1.3b-base",
        Some(Family::DeepSeekCoder),
    );
    check_detect("codellama:7b-code", Some(Family::CodeLlama));
    check_detect("codellama/CodeLlama-13b-hf", Some(Family::CodeLlama));
    check_detect("starcoder2:3b", Some(Family::StarCoder2));
    check_detect("bigcode/starcoder2-15b", Some(Family::StarCoder2));
    check_detect("bigcode/starcoderbase-1b", Some(Family::StarCoder));
    check_detect("starcoder:1b", Some(Family::StarCoder));
    check_detect("codeqwen:7b-code", Some(Family::StarCoder));
    check_detect("stable-code:3b-code", Some(Family::StarCoder));
    check_detect("codestral-latest", Some(Family::Codestral));
    check_detect("codestral:22b", Some(Family::Codestral));
    check_detect("mistralai/Codestral-22B-v0.1", Some(Family::Codestral));
}

#[test]
fn unknown_or_non_fim_models_get_no_template() {
    check_detect("gpt-4o-mini", None);
    check_detect("gpt-3.5-turbo-instruct", None);
    check_detect("llama3.1:8b", None);
    check_detect("qwen2.5:7b", None);
    check_detect("deepseek-r1:7b", None);
    check_detect("codegemma:2b", None);
    check_detect("test-model", None);
    check_detect("", None);
}
