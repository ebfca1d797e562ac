--- Tandem for Neovim: starts the `tandem` language server for file buffers and wires its
--- suggestions into completion (omnifunc, nvim-cmp, built-in completion) and, where this
--- Neovim has it, LSP inline completion (ghost text).
---
--- Works on Neovim 0.7 and newer; newer APIs are used only after a feature check.

local M = {}

local CLIENT_NAME = "tandem"
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
---@field omnifunc boolean|nil    set 'omnifunc' to the LSP omnifunc when the buffer has none (default true).
---@field builtin_completion boolean|nil  on Neovim 0.11+, turn on vim.lsp.completion with autotrigger (default false).
---@field inline_completion boolean|nil   on Neovim with vim.lsp.inline_completion, show ghost text (default true).
---@field inline_accept_key string|nil    insert-mode key that accepts the ghost text, falling back to the key itself (default nil: no mapping).
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
  omnifunc = true,
  builtin_completion = false,
  inline_completion = true,
  inline_accept_key = nil,
  on_attach = nil,
}

local options = nil
--- Neovim 0.7 has no `vim.lsp.start`, so clients are reused per root directory here.
local legacy_clients_by_root = {}
local warned_missing_executable = false

local function has(feature)
  return vim.fn.has(feature) == 1
end

local function notify(message, level)
  vim.notify("[tandem] " .. message, level or vim.log.levels.INFO)
end

local function get_tandem_clients()
  local clients
  if vim.lsp.get_clients ~= nil then
    clients = vim.lsp.get_clients({ name = CLIENT_NAME })
  else
    clients = {}
    for _, client in pairs(vim.lsp.get_active_clients()) do
      if client.name == CLIENT_NAME then
        table.insert(clients, client)
      end
    end
  end
  return clients
end

local function notify_client(client, method, params)
  if has("nvim-0.11") then
    -- Client functions became methods in 0.11; the dot form is deprecated there.
    client:notify(method, params)
  else
    client.notify(method, params)
  end
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
  return capabilities
end

local function on_attach(client, bufnr)
  if options.omnifunc and vim.bo[bufnr].omnifunc == "" then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
  end

  if options.builtin_completion and vim.lsp.completion ~= nil and type(vim.lsp.completion.enable) == "function" then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
  end

  local inline = vim.lsp.inline_completion
  if options.inline_completion and inline ~= nil and type(inline.enable) == "function" then
    -- Neovim only asks servers that advertise `inlineCompletionProvider`; for others this is a no-op
    -- and the suggestion still arrives through completion.
    pcall(inline.enable, true, { bufnr = bufnr })
    if options.inline_accept_key ~= nil and type(inline.get) == "function" then
      local key = options.inline_accept_key
      vim.keymap.set("i", key, function()
        -- get() accepts the shown suggestion and reports whether there was one.
        if not inline.get() then
          return key
        end
      end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = "Tandem: accept inline suggestion" })
    end
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
    on_attach = on_attach,
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

--- A short human-readable description of the running clients; never includes the key.
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
