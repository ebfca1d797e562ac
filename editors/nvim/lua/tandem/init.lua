--- Tandem for Neovim: starts the `tandem` language server for file buffers, shows its
--- suggestions as ghost text (`tandem.suggestion`), also offers them to completion
--- (omnifunc, nvim-cmp, built-in completion), and runs the sign-in, explain and status
--- commands (`tandem.commands`, `tandem.status`).
---
--- Works on Neovim 0.7 and newer; newer APIs are used only after a feature check.

local util = require("tandem.util")
local suggestion = require("tandem.suggestion")
local status = require("tandem.status")
local commands = require("tandem.commands")

local M = {}

local CLIENT_NAME = util.CLIENT_NAME
local ROOT_MARKERS = { ".git", ".hg", ".svn", "Cargo.toml", "package.json", "pyproject.toml", "go.mod" }

--- The options `setup` accepts; every field is optional.
---@class tandem.Options
---@field server string|nil       URL of the Tandem server; when nil the server falls back to TANDEM_SERVER, then the credentials file.
---@field api_key string|fun():string|nil  API key (`tdm_…`), or a function returning it (say, from a password manager). When nil: TANDEM_API_KEY, then the credentials file.
---@field cmd string|string[]|nil  the server command; a string is the executable and gets `--stdio` appended. Default { "tandem", "--stdio" }.
---@field filetypes string[]|nil  filetypes to attach to; nil attaches to every normal file buffer.
---@field max_prefix_chars integer|nil
---@field max_suffix_chars integer|nil
---@field max_context_tokens integer|nil
---@field request_timeout_ms integer|nil
---@field debounce_ms integer|nil  how long the server waits for the next keystroke before asking the cloud (server default 75).
---@field omnifunc boolean|nil    set 'omnifunc' to the LSP omnifunc when the buffer has none (default true).
---@field builtin_completion boolean|nil  on Neovim 0.11+, turn on vim.lsp.completion with autotrigger (default false).
---@field inline_completion boolean|nil   show suggestions as ghost text (default true).
---@field builtin_inline_completion boolean|nil  use vim.lsp.inline_completion where Neovim has it (0.12+) instead of the plugin's own ghost text (default true).
---@field suggestion_delay_ms integer|nil  pause after a keystroke before asking the server (default 20; the server debounces too).
---@field suggestion_hl_group string|nil   highlight group of the ghost text (default "TandemSuggestion", linked to Comment).
---@field keymaps table<string, string|false>|nil  insert-mode keys: accept, accept_word, accept_line, next, previous, dismiss; false turns one off.
---@field inline_accept_key string|nil    older name for keymaps.accept; wins when set.
---@field explain_window "split"|"float"|nil  where :TandemExplain shows its answer (default "split").
---@field on_attach fun(client: table, bufnr: integer)|nil

local defaults = {
  server = nil,
  api_key = nil,
  cmd = { "tandem", "--stdio" },
  filetypes = nil,
  max_prefix_chars = nil,
  max_suffix_chars = nil,
  max_context_tokens = nil,
  request_timeout_ms = nil,
  debounce_ms = nil,
  omnifunc = true,
  builtin_completion = false,
  inline_completion = true,
  builtin_inline_completion = true,
  suggestion_delay_ms = 20,
  suggestion_hl_group = "TandemSuggestion",
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    next = "<M-]>",
    previous = "<M-[>",
    dismiss = "<C-]>",
  },
  inline_accept_key = nil,
  explain_window = "split",
  on_attach = nil,
}

local options = nil
--- Clients whose status was asked for once they started; later changes arrive as notifications.
local status_requested = {}
--- Neovim 0.7 has no `vim.lsp.start`, so clients are reused per root directory here.
local legacy_clients_by_root = {}
local warned_missing_executable = false

local has = util.has
local notify = util.notify

local function get_tandem_clients()
  return util.get_clients()
end

local function notify_client(client, method, params)
  util.client_call(client, "notify", method, params)
end

local function normalize_cmd(cmd)
  if type(cmd) == "string" then
    return { cmd, "--stdio" }
  end
  return vim.deepcopy(cmd)
end

local function resolve_api_key()
  local api_key = options.api_key
  if type(api_key) == "function" then
    local ok, value = pcall(api_key)
    if not ok then
      notify("api_key function failed: " .. tostring(value), vim.log.levels.ERROR)
      return nil
    end
    api_key = value
  end
  if type(api_key) == "string" and api_key ~= "" then
    return api_key
  end
  return nil
end

--- The server's initializationOptions; unset fields are left out so its own fallbacks apply.
local function server_settings()
  local settings = {
    server = options.server ~= "" and options.server or nil,
    apiKey = resolve_api_key(),
    maxPrefixChars = options.max_prefix_chars,
    maxSuffixChars = options.max_suffix_chars,
    maxContextTokens = options.max_context_tokens,
    requestTimeoutMs = options.request_timeout_ms,
    debounceMs = options.debounce_ms,
  }
  if next(settings) == nil then
    -- An empty Lua table is encoded as a JSON array; the server expects an object.
    return vim.empty_dict()
  end
  return settings
end

local function find_root(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local start = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.fn.getcwd()
  if vim.fs ~= nil and vim.fs.find ~= nil then
    local found = vim.fs.find(ROOT_MARKERS, { upward = true, path = start })[1]
    if found ~= nil then
      return vim.fs.dirname(found)
    end
  else
    -- Neovim 0.7 has no vim.fs; `;` makes finddir/findfile search upwards.
    for _, marker in ipairs(ROOT_MARKERS) do
      local found = vim.fn.finddir(marker, start .. ";")
      if found == "" then
        found = vim.fn.findfile(marker, start .. ";")
      end
      if found ~= "" then
        return vim.fn.fnamemodify(found, ":p:h:h")
      end
    end
  end
  return vim.fn.getcwd()
end

local function should_attach(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return false
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  -- Buffers backed by other schemes (fugitive://, oil://, ...) are not documents on disk.
  if name == "" or (name:match("^%a[%w+.-]*://") and not name:match("^file://")) then
    return false
  end
  local filetype = vim.bo[bufnr].filetype
  if filetype == "" then
    return false
  end
  if options.filetypes == nil then
    return true
  end
  return vim.tbl_contains(options.filetypes, filetype)
end

local function client_capabilities()
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  -- nvim-cmp users get the richer completion capabilities their source advertises.
  local ok, cmp_nvim_lsp = pcall(require, "cmp_nvim_lsp")
  if ok and type(cmp_nvim_lsp.default_capabilities) == "function" then
    capabilities = vim.tbl_deep_extend("force", capabilities, cmp_nvim_lsp.default_capabilities())
  end
  -- Ask for `tandem/didChangeStatus`, which keeps the statusline current.
  capabilities.experimental = vim.tbl_deep_extend("force", capabilities.experimental or {},
    { tandem = { statusNotifications = true } })
  return capabilities
end

local function on_attach(client, bufnr)
  if options.omnifunc and vim.bo[bufnr].omnifunc == "" then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
  end

  if options.builtin_completion and vim.lsp.completion ~= nil and type(vim.lsp.completion.enable) == "function" then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
  end

  if options.inline_completion then
    suggestion.attach(client, bufnr)
  end

  if not status_requested[client.id] then
    status_requested[client.id] = true
    status.refresh(client)
  end

  if options.on_attach ~= nil then
    options.on_attach(client, bufnr)
  end
end

local function client_config(bufnr)
  local settings = server_settings()
  return {
    name = CLIENT_NAME,
    cmd = normalize_cmd(options.cmd),
    root_dir = find_root(bufnr),
    init_options = settings,
    -- The server reads the `tandem` section of didChangeConfiguration, which Neovim 0.8+ sends
    -- from `settings` after initialize; it also answers workspace/configuration from here.
    settings = { tandem = settings },
    capabilities = client_capabilities(),
    handlers = {
      ["tandem/didChangeStatus"] = status.handle_notification,
    },
    on_attach = on_attach,
    on_exit = function(_, _, client_id)
      status_requested[client_id] = nil
      vim.schedule(function()
        status.forget(client_id)
      end)
    end,
  }
end

--- Starts (or reuses) the Tandem client for `bufnr` and attaches it.
---@param bufnr integer|nil buffer handle, default the current buffer
function M.attach(bufnr)
  if options == nil then
    notify("call require('tandem').setup{} first", vim.log.levels.WARN)
    return
  end
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not should_attach(bufnr) then
    return
  end

  local config = client_config(bufnr)
  if vim.fn.executable(config.cmd[1]) ~= 1 then
    if not warned_missing_executable then
      warned_missing_executable = true
      notify("cannot find the `" .. config.cmd[1] .. "` executable; install it or pass `cmd` to setup()",
        vim.log.levels.WARN)
    end
    return
  end

  if vim.lsp.start ~= nil then
    -- vim.lsp.start reuses a running client with the same name and root directory.
    vim.lsp.start(config, { bufnr = bufnr })
    return
  end

  local client_id = legacy_clients_by_root[config.root_dir]
  -- get_client_by_id also finds clients still initializing; client_is_stopped would call
  -- those stopped on 0.7 and a second server would start.
  if client_id == nil or vim.lsp.get_client_by_id(client_id) == nil then
    client_id = vim.lsp.start_client(config)
    if client_id == nil then
      notify("could not start " .. table.concat(config.cmd, " "), vim.log.levels.ERROR)
      return
    end
    legacy_clients_by_root[config.root_dir] = client_id
  end
  vim.lsp.buf_attach_client(bufnr, client_id)
end

--- Stops every Tandem client.
function M.stop()
  for _, client in ipairs(get_tandem_clients()) do
    vim.lsp.stop_client(client.id)
  end
  legacy_clients_by_root = {}
end

--- Restarts the server, for example after changing the API key with setup().
function M.restart()
  M.stop()
  -- Give the old process time to receive shutdown/exit before buffers attach to a new one.
  vim.defer_fn(function()
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) then
        M.attach(bufnr)
      end
    end
  end, 500)
end

--- A short human-readable description of the plugin's side: settings and running clients;
--- never includes the key.
function M.status()
  local lines = {}
  if options == nil then
    return "tandem: setup() has not been called"
  end
  local settings = server_settings()
  table.insert(lines, "tandem: server " .. (settings.server or "(from TANDEM_SERVER or credentials file)")
    .. ", API key " .. (settings.apiKey and "set in setup()" or "from TANDEM_API_KEY or credentials file"))
  local clients = get_tandem_clients()
  if #clients == 0 then
    table.insert(lines, "tandem: no running client")
  end
  for _, client in ipairs(clients) do
    local buffers = {}
    for bufnr in pairs(client.attached_buffers or {}) do
      table.insert(buffers, tostring(bufnr))
    end
    table.insert(lines, string.format("tandem: client %d, root %s, buffers [%s]", client.id,
      tostring(client.config.root_dir), table.concat(buffers, ", ")))
  end
  return table.concat(lines, "\n")
end

--- What `:TandemStatus` prints: the server's `tandem/status` (state, server, account, tier,
--- quota), then the plugin's own settings and clients.
function M.status_report()
  local lines = {}
  local bufnr = vim.api.nvim_get_current_buf()
  if #get_tandem_clients() > 0 then
    local server_status, err = status.fetch(bufnr, 3000)
    if server_status ~= nil then
      for _, line in ipairs(status.describe(server_status)) do
        table.insert(lines, "Tandem " .. line)
      end
    else
      table.insert(lines, "Tandem: " .. err)
    end
  end
  if options ~= nil then
    table.insert(lines, "Tandem ghost text: " .. (not options.inline_completion and "not used"
      or suggestion.is_enabled() and (suggestion.builtin_available() and options.builtin_inline_completion
        and "on (vim.lsp.inline_completion)" or "on")
      or "off (:TandemToggle)"))
    local last_error = suggestion.last_error(bufnr)
    if last_error ~= nil then
      table.insert(lines, "Tandem last suggestion error: " .. last_error)
    end
  end
  table.insert(lines, M.status())
  return table.concat(lines, "\n")
end

--- A short string for a statusline ("" where Tandem is not attached); see tandem.status.
M.statusline = status.statusline

M.sign_in = commands.sign_in
M.sign_out = commands.sign_out
M.explain = commands.explain

--- Ghost text, for mappings of your own (see the README).
M.accept = suggestion.accept
M.dismiss = suggestion.dismiss
M.next = suggestion.next
M.is_visible = suggestion.is_visible
M.toggle = suggestion.toggle

--- Configures Tandem and attaches it to matching buffers, including those already open.
---@param user_options tandem.Options|nil
function M.setup(user_options)
  if not has("nvim-0.7") then
    notify("Neovim 0.7 or newer is required", vim.log.levels.ERROR)
    return
  end
  options = vim.tbl_deep_extend("force", vim.deepcopy(defaults), user_options or {})
  if user_options ~= nil and user_options.filetypes ~= nil then
    -- tbl_deep_extend merges lists index by index; a user's list replaces the default instead.
    options.filetypes = user_options.filetypes
  end
  if user_options ~= nil and user_options.cmd ~= nil then
    options.cmd = user_options.cmd
  end
  if user_options ~= nil and user_options.keymaps == false then
    options.keymaps = {}
  end
  if options.inline_accept_key ~= nil then
    options.keymaps.accept = options.inline_accept_key
  end
  suggestion.configure(options)
  commands.configure(options)

  local group = vim.api.nvim_create_augroup("tandem", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = options.filetypes or "*",
    callback = function(args)
      M.attach(args.buf)
    end,
    desc = "Attach the Tandem language server",
  })

  -- A second setup() call (say, with a new key) reaches servers that are already running.
  for _, client in ipairs(get_tandem_clients()) do
    notify_client(client, "workspace/didChangeConfiguration", { settings = { tandem = server_settings() } })
  end

  -- With lazy loading, setup() often runs after the first buffers were opened.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      M.attach(bufnr)
    end
  end
end

return M
