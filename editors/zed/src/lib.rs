//! Zed extension: starts the Tandem language server (`tandem lsp`) for the languages in
//! `extension.toml` and hands it the `lsp.tandem` settings from Zed's settings.json.
//!
//! Zed runs the server next to each language's own servers; its suggestions arrive as
//! completion items (Zed's inline "edit predictions" come from Zed's own providers, not
//! from language servers).

use zed_extension_api::{self as zed, serde_json, settings::LspSettings, LanguageServerId};

/// The server's name in `extension.toml`, and the key of its section in the `lsp`
/// settings.
const SERVER_NAME: &str = "tandem";

struct TandemExtension;

impl TandemExtension {
    fn settings(worktree: &zed::Worktree) -> LspSettings {
        // A malformed section is Zed's to report; the server then runs with its defaults.
        LspSettings::for_worktree(SERVER_NAME, worktree).unwrap_or_default()
    }
}

impl zed::Extension for TandemExtension {
    fn new() -> Self {
        TandemExtension
    }

    /// `tandem lsp` from the PATH of the user's login shell (Zed applies a
    /// `lsp.tandem.binary.path` setting itself, before asking the extension), with the
    /// shell's environment, so `TANDEM_SERVER` / `TANDEM_API_KEY` set there reach it.
    fn language_server_command(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> zed::Result<zed::Command> {
        let binary = Self::settings(worktree).binary;
        let command = worktree.which("tandem").ok_or_else(|| {
            "`tandem` is not on PATH: install it, or set lsp.tandem.binary.path in Zed's settings"
                .to_owned()
        })?;
        let args = binary
            .as_ref()
            .and_then(|binary| binary.arguments.clone())
            .unwrap_or_else(|| vec!["lsp".to_owned()]);
        let mut env = worktree.shell_env();
        if let Some(extra) = binary.and_then(|binary| binary.env) {
            env.extend(extra);
        }
        Ok(zed::Command { command, args, env })
    }

    /// `lsp.tandem.initialization_options`: the server's settings (docs/editors/PROTOCOL.md),
    /// read once at start.
    fn language_server_initialization_options(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> zed::Result<Option<serde_json::Value>> {
        Ok(Self::settings(worktree).initialization_options)
    }

    /// `lsp.tandem.settings`, sent as the `tandem` section of
    /// `workspace/didChangeConfiguration`, so changing it needs no restart.
    fn language_server_workspace_configuration(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> zed::Result<Option<serde_json::Value>> {
        Ok(Self::settings(worktree)
            .settings
            .map(|settings| serde_json::json!({ SERVER_NAME: settings })))
    }
}

zed::register_extension!(TandemExtension);
