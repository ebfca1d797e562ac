//! Helix (and Zed's extension manifests): the snippet in `editors/helix/languages.toml` is
//! what Helix and the server accept, and the real `tandem` binary, started with the
//! snippet's command and `config`, answers a client that initializes, edits and asks for
//! completions exactly as Helix does.
//!
//! Helix has no inline completion (helix-editor/helix#13039), so the suggestion reaches
//! it as one `textDocument/completion` item: the label in the menu, the whole suggestion
//! in the documentation popup beside it, and a `textEdit` that Helix applies on accept.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tandem_e2e::{
    CloudOptions, CloudServer, Encoding, LspClient, LspOptions, ProviderConfig, ProviderFixture,
    RecordingProxy, TextModel,
};
use tandem_shared::inline_completion::{Position, Range};

use crate::support::{completion_items, tandem_command, text_edit, Editor, Stack, MODEL};

/// Helix's default `language-servers` for each language the snippet covers, copied from
/// Helix's own `languages.toml` (helix-editor/helix). The snippet must repeat them, since
/// its list replaces Helix's (arrays are not merged), and then add "tandem".
const HELIX_DEFAULT_SERVERS: &[(&str, &[&str])] = &[
    ("python", &["ty", "ruff", "jedi", "pylsp", "zuban"]),
    ("rust", &["rust-analyzer"]),
    ("go", &["gopls", "golangci-lint-lsp"]),
    ("javascript", &["typescript-language-server"]),
    ("jsx", &["typescript-language-server"]),
    ("typescript", &["typescript-language-server"]),
    ("tsx", &["typescript-language-server"]),
    ("c", &["clangd"]),
    ("cpp", &["clangd"]),
    (
        "c-sharp",
        &["roslyn-language-server", "omnisharp", "csharp-ls"],
    ),
    ("java", &["jdtls"]),
    ("ruby", &["ruby-lsp", "solargraph"]),
    ("php", &["intelephense"]),
    ("lua", &["lua-language-server"]),
    ("bash", &["bash-language-server"]),
    ("zig", &["zls"]),
];

/// The keys of a `[language-server.<name>]` table in Helix (`LanguageServerConfiguration`
/// in helix-core); anything else is a typo Helix reports instead of loading the file.
const HELIX_LANGUAGE_SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "config",
    "environment",
    "timeout",
    "required-root-patterns",
];

/// The argument lists `tandem` accepts for speaking LSP over stdio (PROTOCOL.md).
const STDIO_ARGUMENTS: &[&[&str]] = &[&["lsp"], &["--stdio"], &["lsp", "--stdio"]];

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read_toml(relative_path: &str) -> toml::Table {
    let path = repository_root().join(relative_path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    toml::from_str(&text).unwrap_or_else(|error| panic!("{relative_path} is not TOML: {error}"))
}

fn helix_snippet() -> toml::Table {
    read_toml("editors/helix/languages.toml")
}

/// `[language-server.tandem]` of the snippet.
fn tandem_server(snippet: &toml::Table) -> &toml::Table {
    snippet
        .get("language-server")
        .and_then(|servers| servers.get("tandem"))
        .and_then(toml::Value::as_table)
        .expect("the snippet defines [language-server.tandem]")
}

fn strings(value: &toml::Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {value}"))
        .iter()
        .map(|item| {
            item.as_str()
                .unwrap_or_else(|| panic!("{what} holds a non-string: {item}"))
                .to_owned()
        })
        .collect()
}

/// The settings table of PROTOCOL.md: each key the server accepts in initializationOptions,
/// with its type (`string` or `integer`).
fn protocol_settings() -> Vec<(String, String)> {
    let path = repository_root().join("docs/editors/PROTOCOL.md");
    let text = std::fs::read_to_string(&path).expect("PROTOCOL.md");
    let section = text
        .split("### Settings")
        .nth(1)
        .expect("PROTOCOL.md has a Settings section");
    let mut settings = Vec::new();
    for row in section.lines().skip_while(|line| !line.starts_with('|')) {
        if !row.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (keys, kind) = (cells[1], cells[2]);
        if !keys.starts_with('`') {
            continue; // The header and the separator row.
        }
        for key in keys.split(',') {
            settings.push((key.trim().trim_matches('`').to_owned(), kind.to_owned()));
        }
    }
    assert!(
        settings.iter().any(|(key, _)| key == "debounceMs"),
        "the settings table of PROTOCOL.md was not found: {settings:?}"
    );
    settings
}

#[test]
fn helix_snippet_registers_the_server_as_helix_expects() {
    let snippet = helix_snippet();
    for key in snippet.keys() {
        assert!(
            ["language-server", "language"].contains(&key.as_str()),
            "unexpected top-level key `{key}` in the Helix snippet"
        );
    }
    let server = tandem_server(&snippet);
    for key in server.keys() {
        assert!(
            HELIX_LANGUAGE_SERVER_KEYS.contains(&key.as_str()),
            "Helix does not know `{key}` in [language-server.tandem]"
        );
    }
    assert_eq!(
        server.get("command").and_then(toml::Value::as_str),
        Some("tandem")
    );
    let args = strings(server.get("args").expect("args"), "args");
    assert!(
        STDIO_ARGUMENTS.iter().any(|accepted| args == *accepted),
        "`tandem {}` does not start the language server",
        args.join(" ")
    );
}

#[test]
fn helix_snippet_keeps_helix_default_servers_and_adds_tandem_last() {
    let snippet = helix_snippet();
    let languages = snippet
        .get("language")
        .and_then(toml::Value::as_array)
        .expect("the snippet has [[language]] entries");
    let mut seen = Vec::new();
    for language in languages {
        let language = language.as_table().expect("[[language]] is a table");
        let name = language
            .get("name")
            .and_then(toml::Value::as_str)
            .expect("every [[language]] has a name");
        for key in language.keys() {
            assert!(
                ["name", "language-servers"].contains(&key.as_str()),
                "[[language]] {name}: `{key}` would change more than the servers"
            );
        }
        assert!(!seen.contains(&name), "{name} is listed twice");
        seen.push(name);
        let defaults = HELIX_DEFAULT_SERVERS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, servers)| *servers)
            .unwrap_or_else(|| panic!("`{name}` is not a Helix language the test knows"));
        let servers = strings(
            language.get("language-servers").expect("language-servers"),
            name,
        );
        let mut expected: Vec<&str> = defaults.to_vec();
        expected.push("tandem");
        assert_eq!(
            servers, expected,
            "{name}: Helix's own servers, then tandem (the list replaces Helix's)"
        );
    }
    for (name, _) in HELIX_DEFAULT_SERVERS {
        assert!(seen.contains(name), "the snippet no longer covers {name}");
    }
}

#[test]
fn helix_snippet_config_uses_only_settings_the_server_accepts() {
    let snippet = helix_snippet();
    let config = tandem_server(&snippet)
        .get("config")
        .and_then(toml::Value::as_table)
        .expect("[language-server.tandem] has a config table");
    assert!(config.contains_key("debounceMs"), "{config:?}");
    let settings = protocol_settings();
    for (key, value) in config {
        let (_, kind) = settings
            .iter()
            .find(|(known, _)| known == key)
            .unwrap_or_else(|| panic!("the server does not accept `{key}` (PROTOCOL.md)"));
        let fits = match kind.as_str() {
            "string" => value.is_str(),
            "integer" => value.as_integer().is_some_and(|number| number >= 0),
            other => panic!("PROTOCOL.md has a type the test does not know: {other}"),
        };
        assert!(fits, "`{key}` must be a {kind}, got {value}");
        // Credentials in the snippet would win over the ones `tandem login` saves (a
        // placeholder key would then be sent and refused), so it names none.
        assert!(
            key != "apiKey" && key != "server",
            "the snippet must leave `{key}` to `tandem login`"
        );
    }
}

#[test]
fn zed_extension_manifests_are_well_formed() {
    let manifest = read_toml("editors/zed/extension.toml");
    for key in ["id", "name", "version", "description", "repository"] {
        assert!(
            manifest.get(key).is_some_and(toml::Value::is_str),
            "extension.toml needs a string `{key}`"
        );
    }
    assert_eq!(
        manifest
            .get("schema_version")
            .and_then(toml::Value::as_integer),
        Some(1)
    );
    let server = manifest
        .get("language_servers")
        .and_then(|servers| servers.get("tandem"))
        .and_then(toml::Value::as_table)
        .expect("extension.toml declares [language_servers.tandem]");
    let languages = strings(server.get("languages").expect("languages"), "languages");
    assert!(languages.contains(&"Python".to_owned()), "{languages:?}");
    if let Some(ids) = server.get("language_ids") {
        for (language, id) in ids.as_table().expect("language_ids is a table") {
            assert!(
                languages.contains(language),
                "language_ids names {language}, which the server is not registered for"
            );
            assert!(id.is_str(), "{language}: {id}");
        }
    }

    let cargo = read_toml("editors/zed/Cargo.toml");
    let package = cargo
        .get("package")
        .and_then(toml::Value::as_table)
        .expect("[package]");
    assert_eq!(
        package.get("version"),
        manifest.get("version"),
        "extension.toml and Cargo.toml must give the same version"
    );
    let crate_types = strings(
        cargo
            .get("lib")
            .and_then(|lib| lib.get("crate-type"))
            .expect("[lib] crate-type"),
        "crate-type",
    );
    assert_eq!(crate_types, ["cdylib"], "Zed loads the extension as wasm");
    assert!(
        cargo
            .get("dependencies")
            .and_then(|dependencies| dependencies.get("zed_extension_api"))
            .is_some(),
        "the extension needs zed_extension_api"
    );
    // Zed builds the extension by itself; without its own [workspace] table, cargo would
    // take it for an unlisted member of this repository's workspace and refuse to build.
    assert!(
        cargo.contains_key("workspace"),
        "Cargo.toml needs [workspace]"
    );
    let source = std::fs::read_to_string(repository_root().join("editors/zed/src/lib.rs"))
        .expect("editors/zed/src/lib.rs");
    assert!(
        source.contains("const SERVER_NAME: &str = \"tandem\";"),
        "the extension must read the settings of the server extension.toml declares"
    );
}

/// What Helix sends in `initialize` (helix-lsp `Client::initialize`), with `config` from
/// languages.toml as initializationOptions. No `inlineCompletion`; positions in UTF-8,
/// UTF-32 or UTF-16, in that order of preference.
fn helix_initialize_params(lsp: &LspClient, config: &Value) -> Value {
    let root_uri = lsp.root_uri();
    json!({
        "processId": std::process::id(),
        "workspaceFolders": [{"uri": root_uri, "name": "workspace"}],
        "rootPath": lsp.workspace_root(),
        "rootUri": root_uri,
        "initializationOptions": config,
        "capabilities": {
            "workspace": {
                "configuration": true,
                "didChangeConfiguration": {"dynamicRegistration": false},
                "workspaceFolders": true,
                "applyEdit": true,
                "symbol": {"dynamicRegistration": false},
                "executeCommand": {"dynamicRegistration": false},
                "inlayHint": {"refreshSupport": false},
                "workspaceEdit": {
                    "documentChanges": true,
                    "resourceOperations": ["create", "rename", "delete"],
                    "failureHandling": "abort",
                    "normalizesLineEndings": false,
                },
                "didChangeWatchedFiles": {
                    "dynamicRegistration": true,
                    "relativePatternSupport": true,
                },
                "fileOperations": {"willRename": true, "didRename": true},
                "diagnostic": {"refreshSupport": true},
            },
            "textDocument": {
                "completion": {
                    "completionItem": {
                        "snippetSupport": true,
                        "resolveSupport": {
                            "properties": ["documentation", "detail", "additionalTextEdits"],
                        },
                        "insertReplaceSupport": true,
                        "deprecatedSupport": true,
                        "tagSupport": {"valueSet": [1]},
                    },
                    "completionItemKind": {},
                },
                "hover": {"contentFormat": ["markdown"]},
                "signatureHelp": {
                    "signatureInformation": {
                        "documentationFormat": ["markdown"],
                        "parameterInformation": {"labelOffsetSupport": true},
                        "activeParameterSupport": true,
                    },
                },
                "rename": {
                    "dynamicRegistration": false,
                    "prepareSupport": true,
                    "honorsChangeAnnotations": false,
                },
                "formatting": {"dynamicRegistration": false},
                "codeAction": {
                    "codeActionLiteralSupport": {
                        "codeActionKind": {
                            "valueSet": [
                                "", "quickfix", "refactor", "refactor.extract",
                                "refactor.inline", "refactor.rewrite", "source",
                                "source.organizeImports", "source.fixAll",
                            ],
                        },
                    },
                    "isPreferredSupport": true,
                    "disabledSupport": true,
                    "dataSupport": true,
                    "resolveSupport": {"properties": ["edit", "command"]},
                },
                "diagnostic": {"dynamicRegistration": false, "relatedDocumentSupport": true},
                "publishDiagnostics": {"versionSupport": true, "tagSupport": {"valueSet": [1, 2]}},
                "inlayHint": {"dynamicRegistration": false},
            },
            "window": {"workDoneProgress": true, "showDocument": {"support": true}},
            "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]},
        },
        "clientInfo": {"name": "helix", "version": "25.07.1"},
    })
}

/// `textDocument/completion` as Helix sends it: `triggerKind` 1 when its idle timer fires
/// or on Ctrl-x, 3 when it asks again for a list marked incomplete as the user types.
async fn helix_completion(
    lsp: &LspClient,
    uri: &str,
    position: Position,
    trigger_kind: u8,
) -> Value {
    lsp.request(
        "textDocument/completion",
        json!({
            "textDocument": {"uri": uri},
            "position": position,
            "context": {"triggerKind": trigger_kind},
        }),
    )
    .await
    .unwrap_or_else(|error| panic!("completion failed: {error}\n{}", lsp.stderr()))
}

/// Types `text` at `cursor` one character at a time, one `didChange` per keystroke as
/// Helix sends them; returns the cursor (in UTF-8 columns) after the last one.
async fn type_text(editor: &mut Editor<'_>, mut cursor: Position, text: &str) -> Position {
    for character in text.chars() {
        editor.insert_at(cursor, &character.to_string()).await;
        if character == '\n' {
            cursor = Position {
                line: cursor.line + 1,
                character: 0,
            };
        } else {
            cursor.character += character.len_utf8() as u32;
        }
    }
    cursor
}

/// Checks the one item of `result` as Helix shows and applies it, when `word` was typed
/// before `cursor` and the model suggested `suggestion`: the menu label, the preview in
/// the documentation popup, and a `textEdit` from the start of the word to the cursor that
/// turns the document into `expected_text`.
#[track_caller]
fn check_item(
    result: &Value,
    model: &TextModel,
    cursor: Position,
    word: &str,
    suggestion: &str,
    expected_text: &str,
) {
    let encoding = Encoding::Utf8;
    let items = completion_items(result);
    assert_eq!(items.len(), 1, "{result}");
    assert_eq!(
        result.get("isIncomplete"),
        Some(&Value::Bool(true)),
        "Helix asks again as the user types only for an incomplete list: {result}"
    );
    let item = &items[0];
    let new_text = format!("{word}{suggestion}");
    let first_line = new_text.lines().next().unwrap_or_default();

    let label = item["label"].as_str().expect("label");
    assert!(
        label.chars().count() <= 80,
        "the menu label is at most 80 characters (PROTOCOL.md): {} in {label:?}",
        label.chars().count()
    );
    assert!(
        first_line.starts_with(label.trim_end_matches('…')) && !label.trim().is_empty(),
        "the label is the start of the first line {first_line:?}: {label:?}"
    );
    if first_line.chars().count() <= 80 {
        assert_eq!(label, first_line);
    }
    // Helix renders an item's documentation as Markdown whatever its kind, plain text
    // included, and announces no `documentationFormat` (helix-term `ui/completion.rs`,
    // `Completion::render`). Only a fenced code block keeps the suggestion's line breaks
    // and indentation there, and keeps `__init__` or `*args` from becoming emphasis.
    assert_eq!(
        item["documentation"],
        json!({"kind": "markdown", "value": format!("```python\n{new_text}\n```")}),
        "the documentation popup shows the whole suggestion: {item}"
    );
    if word.is_empty() {
        assert!(item.get("filterText").is_none_or(Value::is_null), "{item}");
    } else {
        assert_eq!(item["filterText"], word, "{item}");
    }

    let cursor_offset = model.offset(cursor, encoding);
    let word_start = model.position(cursor_offset - word.len(), encoding);
    let (range, edit_text) = text_edit(item);
    assert_eq!(
        range,
        Range {
            start: word_start,
            end: cursor
        },
        "the edit replaces the word being typed (UTF-8 columns): {item}"
    );
    assert_eq!(edit_text, new_text, "{item}");
    let mut accepted = model.clone();
    accepted.apply(range, &edit_text, encoding);
    assert_eq!(accepted.text(), expected_text);
}

/// A rectangle's area, with letters outside ASCII in the comment, the names and the suggestions.
const AREA: &str = "# Fläche eines Rechtecks\n\ndef fläche(länge, breite):\n    \n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helix_gets_suggestions_as_completion_items() {
    let snippet = helix_snippet();
    let server = tandem_server(&snippet);
    let args = strings(server.get("args").expect("args"), "args");
    let config = serde_json::to_value(server.get("config").expect("config")).expect("JSON");

    let provider = ProviderFixture::start().await.expect("provider fixture");
    let cloud = CloudServer::start(CloudOptions::with_provider(ProviderConfig::ollama(
        &provider, MODEL,
    )))
    .await
    .expect("tandem-cloud");
    let proxy = RecordingProxy::start(cloud.url()).await.expect("proxy");

    // The snippet carries no credentials: the README has the user run `tandem login`.
    let config_directory = tempfile::tempdir().expect("tempdir");
    let login = tandem_command(
        config_directory.path(),
        &[
            "login",
            "--api-key",
            cloud.api_key(),
            "--server",
            proxy.url(),
        ],
    )
    .output()
    .await
    .expect("run tandem login");
    assert!(
        login.status.success(),
        "tandem login: {}",
        String::from_utf8_lossy(&login.stderr)
    );

    let lsp = LspClient::spawn(LspOptions {
        args,
        config_directory: Some(config_directory.path().to_path_buf()),
        env: vec![
            ("TANDEM_LOG".to_owned(), "debug".to_owned()),
            ("TANDEM_CREDENTIAL_STORE".to_owned(), "file".to_owned()),
        ],
        ..LspOptions::default()
    })
    .await
    .expect("tandem");
    let stack = Stack {
        lsp,
        proxy,
        cloud,
        provider: Some(provider),
    };
    let initialized = stack
        .lsp
        .initialize_with_params(helix_initialize_params(&stack.lsp, &config))
        .await
        .unwrap_or_else(|error| panic!("initialize failed: {error:#}\n{}", stack.logs()));
    let capabilities = &initialized["capabilities"];
    assert_eq!(
        capabilities["positionEncoding"], "utf-8",
        "Helix offers UTF-8 first and the server takes it: {capabilities}"
    );
    assert!(
        capabilities["completionProvider"].is_object(),
        "{capabilities}"
    );
    // Right after `initialized`, Helix sends the same `config` as the configuration
    // (helix-term `Application::handle_language_server_message`). It has no `tandem`
    // section, and must not undo what initializationOptions set.
    stack
        .lsp
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": config}),
        )
        .await
        .expect("didChangeConfiguration");

    // Helix numbers a document's versions from 0 and names its language `python`.
    let uri = stack.lsp.uri("geometrie/fläche.py");
    stack
        .lsp
        .did_open(&uri, "python", 0, AREA)
        .await
        .expect("didOpen");
    let mut editor = Editor {
        lsp: &stack.lsp,
        uri,
        model: TextModel::new(AREA),
        version: 0,
        encoding: stack.lsp.encoding(),
    };
    assert_eq!(editor.encoding, Encoding::Utf8);

    // A block, on the empty line after `def …:` (Ctrl-x: no word typed yet).
    let body = editor.position_after("breite):\n    ");
    stack
        .provider()
        .reply_with_text("ergebnis = länge * breite\n    return ergebnis  # in m²\n");
    let result = helix_completion(&stack.lsp, &editor.uri, body, 1).await;
    check_item(
        &result,
        &editor.model,
        body,
        "",
        "ergebnis = länge * breite\n    return ergebnis  # in m²",
        "# Fläche eines Rechtecks\n\ndef fläche(länge, breite):\n    ergebnis = länge * breite\n    return ergebnis  # in m²\n",
    );

    // Mid-word, in a word that is not ASCII: its start and the cursor have other columns
    // in UTF-8 than in UTF-16. Helix asks when its idle timer fires (trigger kind 1).
    let cursor = type_text(&mut editor, body, "flä").await;
    assert_eq!(cursor.character, 4 + "flä".len() as u32);
    stack
        .provider()
        .reply_with_text("che = länge * breite  # ≥ 0 m²");
    let result = helix_completion(&stack.lsp, &editor.uri, cursor, 1).await;
    let typed_flae = "# Fläche eines Rechtecks\n\ndef fläche(länge, breite):\n    fläche = länge * breite  # ≥ 0 m²\n";
    check_item(
        &result,
        &editor.model,
        cursor,
        "flä",
        "che = länge * breite  # ≥ 0 m²",
        typed_flae,
    );

    // One more keystroke: the list was incomplete, so Helix asks again (trigger kind 3).
    // The server may serve the rest of the suggestion it showed without a call; the
    // provider would answer the same.
    let cursor = type_text(&mut editor, cursor, "c").await;
    stack
        .provider()
        .reply_with_text("he = länge * breite  # ≥ 0 m²");
    let result = helix_completion(&stack.lsp, &editor.uri, cursor, 3).await;
    check_item(
        &result,
        &editor.model,
        cursor,
        "fläc",
        "he = länge * breite  # ≥ 0 m²",
        typed_flae,
    );

    // Accepting the item: Helix applies the edit and sends it as a change.
    let (range, accepted) = text_edit(&completion_items(&result)[0]);
    editor.replace(range, &accepted).await;
    assert_eq!(editor.model.text(), typed_flae);

    // A line longer than the menu shows: the label is cut, the edit is not.
    let line_end = editor.position_after("# ≥ 0 m²");
    let cursor = type_text(&mut editor, line_end, "\n    pri").await;
    let long = "nt(f\"Die Fläche eines Rechtecks mit den Seiten {länge} und {breite} beträgt {fläche} m²\")";
    stack.provider().reply_with_text(long);
    let result = helix_completion(&stack.lsp, &editor.uri, cursor, 1).await;
    let mut expected = editor.model.clone();
    expected.apply(
        Range {
            start: cursor,
            end: cursor,
        },
        long,
        Encoding::Utf8,
    );
    assert!(format!("pri{long}").chars().count() > 80);
    check_item(&result, &editor.model, cursor, "pri", long, expected.text());

    // Space-a: Helix asks every server for code actions on its selection (one character
    // under the cursor when nothing is selected) and lists them together.
    let name_start = editor.model.position_after("def ", Encoding::Utf8);
    let mut name_end = name_start;
    name_end.character += 'f'.len_utf8() as u32;
    let actions = stack
        .lsp
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": editor.uri},
                "range": {"start": name_start, "end": name_end},
                "context": {"diagnostics": [], "triggerKind": 1},
            }),
        )
        .await
        .unwrap_or_else(|error| panic!("codeAction failed: {error}\n{}", stack.logs()));
    let explain = actions
        .as_array()
        .and_then(|actions| {
            actions.iter().find(|action| {
                action["title"]
                    .as_str()
                    .is_some_and(|title| title.starts_with("Tandem: Explain"))
            })
        })
        .unwrap_or_else(|| panic!("no Tandem: Explain action: {actions}"));
    assert_eq!(explain["command"]["command"], "tandem.explain", "{explain}");
    // `:lsp-workspace-command` lists what the server announces it executes.
    let commands = &capabilities["executeCommandProvider"]["commands"];
    for command in ["tandem.signIn", "tandem.signOut", "tandem.explain"] {
        assert!(
            commands
                .as_array()
                .is_some_and(|commands| commands.iter().any(|known| known == command)),
            "{command} is not in {commands}"
        );
    }

    let cloud_requests = stack.proxy.completions();
    assert!(!cloud_requests.is_empty());
    for request in &cloud_requests {
        assert_eq!(request.body["language"], "python", "{}", request.body);
        assert_eq!(
            request.body["path"], "geometrie/fläche.py",
            "{}",
            request.body
        );
    }
    stack.shutdown().await;
}
