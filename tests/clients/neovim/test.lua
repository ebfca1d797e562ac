-- Headless Neovim client test for the tandem language server: Neovim's own LSP client does the
-- handshake and sends real incremental didChange notifications computed from buffer edits.
--
-- Run (works on Neovim 0.7 and newer):
--   nvim --headless --clean -u NONE -c "luafile tests/clients/neovim/test.lua"
--
-- Environment (see ../README.md):
--   TANDEM_BIN      path to the tandem binary (required)
--   TANDEM_SERVER   sent as initializationOptions.server
--   TANDEM_API_KEY  sent as initializationOptions.apiKey
--   EXPECTED_TEXT   the suggestion the provider answers with; unset or empty means the server
--                   is expected to answer with an empty completion list
--   TANDEM_TEST_TIMEOUT_MS  per-step timeout, default 20000
--
-- Exit status: 0 (`qall!`) on success, 1 (`cquit 1`) on any failure, with diagnostics on stderr.

local support = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h") .. "/support.lua")
local TIMEOUT_MS = support.TIMEOUT_MS
local EXPECTED_TEXT = support.EXPECTED_TEXT
local log = support.logger("neovim test")
local fail, check = support.fail, support.check
local nonempty_env, read_tail = support.nonempty_env, support.read_tail

local function has(feature)
  return vim.fn.has(feature) == 1
end

--- The length of `text` in the position encoding the client negotiated with the server.
local function column_in_encoding(text, encoding)
  if encoding == "utf-8" then
    return #text
  end
  if has("nvim-0.11") then
    return vim.str_utfindex(text, encoding)
  end
  -- Before 0.11 `str_utfindex(s)` returns the UTF-32 and the UTF-16 index.
  local utf32, utf16 = vim.str_utfindex(text)
  if encoding == "utf-32" then
    return utf32
  end
  return utf16
end

local function buffer_text(bufnr)
  return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, true), "\n")
end

--- Inserts `text` (which may contain newlines) at the end of the buffer, as typing would.
local function append(bufnr, text)
  local last_row = vim.api.nvim_buf_line_count(bufnr) - 1
  local last_line = vim.api.nvim_buf_get_lines(bufnr, last_row, last_row + 1, true)[1]
  vim.api.nvim_buf_set_text(bufnr, last_row, #last_line, last_row, #last_line, vim.split(text, "\n", { plain = true }))
end

--- Replaces the last `byte_count` bytes of the last line with `replacement`.
local function replace_tail(bufnr, byte_count, replacement)
  local last_row = vim.api.nvim_buf_line_count(bufnr) - 1
  local last_line = vim.api.nvim_buf_get_lines(bufnr, last_row, last_row + 1, true)[1]
  vim.api.nvim_buf_set_text(bufnr, last_row, #last_line - byte_count, last_row, #last_line, { replacement })
end

local LOG_PATH = vim.lsp.get_log_path()
local LOG_START = math.max(vim.fn.getfsize(LOG_PATH), 0)

local state = { client_id = nil, exit_code = nil, exit_signal = nil }

local function run()
  local bin = nonempty_env("TANDEM_BIN")
  check(bin ~= nil, "TANDEM_BIN must point at the tandem binary")
  check(vim.fn.executable(bin) == 1, "TANDEM_BIN is not executable: " .. bin)
  log("Neovim " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "." .. tostring(vim.version().patch)
    .. ", EXPECTED_TEXT=" .. vim.inspect(EXPECTED_TEXT))

  -- The document lives in a fresh directory that is also the workspace root, so the server
  -- sees a workspace-relative path `example.py`.
  local root = vim.fn.tempname()
  vim.fn.mkdir(root, "p")
  local path = root .. "/example.py"
  local file = assert(io.open(path, "w"))
  file:write("import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n")
  file:close()

  vim.cmd("edit " .. vim.fn.fnameescape(path))
  local bufnr = vim.api.nvim_get_current_buf()
  -- `-u NONE` leaves filetype detection off; the filetype becomes the LSP languageId.
  vim.bo[bufnr].filetype = "python"

  local init_options = {
    server = nonempty_env("TANDEM_SERVER"),
    apiKey = nonempty_env("TANDEM_API_KEY"),
  }
  if next(init_options) == nil then
    -- An empty Lua table would be encoded as a JSON array.
    init_options = vim.empty_dict()
  end

  local config = {
    name = "tandem",
    cmd = { bin, "--stdio" },
    root_dir = root,
    init_options = init_options,
    settings = vim.empty_dict(),
    on_exit = function(code, signal)
      state.exit_code = code
      state.exit_signal = signal
    end,
  }

  if has("nvim-0.11") then
    -- `start_client` is deprecated from 0.11 on; `vim.lsp.start` is its replacement.
    state.client_id = vim.lsp.start(config, { bufnr = bufnr })
  else
    state.client_id = vim.lsp.start_client(config)
    check(state.client_id ~= nil, "vim.lsp.start_client failed for " .. bin)
    check(vim.lsp.buf_attach_client(bufnr, state.client_id), "vim.lsp.buf_attach_client failed")
  end
  check(state.client_id ~= nil, "could not start the tandem client")

  local initialized = vim.wait(TIMEOUT_MS, function()
    local client = vim.lsp.get_client_by_id(state.client_id)
    return client ~= nil and client.initialized == true
  end, 20)
  check(initialized, "server did not finish initialize within " .. TIMEOUT_MS .. " ms (exit code "
    .. tostring(state.exit_code) .. ")")
  local client = vim.lsp.get_client_by_id(state.client_id)
  local encoding = client.offset_encoding or "utf-16"
  log("initialized; offset encoding " .. encoding .. "; capabilities " .. vim.inspect(client.server_capabilities, { newline = " ", indent = "" }))
  check(client.server_capabilities.completionProvider ~= nil, "server does not advertise textDocument/completion")

  -- Edit the buffer the way a person types. Some steps pause longer than the client's
  -- didChange debounce, so both the timer path and the flush-before-request path are used.
  -- The non-ASCII characters (the emoji takes two UTF-16 units) make a server that counts
  -- columns in the wrong unit fail.
  append(bufnr, "\n\ndef scale(values, factor):\n")
  vim.wait(250)
  append(bufnr, "    # multiplie par le facteur ✓ 🙂\n    return [v * factor for v in valuse")
  replace_tail(bufnr, 2, "es")
  vim.wait(250)
  append(bufnr, "]\n\n\ndef total(values):\n    label = \"Σ 🙂\"; retrun")
  -- Delete the mistyped "run" so the word being typed is "ret".
  replace_tail(bufnr, 3, "")

  local text = buffer_text(bufnr)
  check(vim.endswith(text, "; ret"), "edit script produced unexpected text: " .. vim.inspect(text))
  local last_row = vim.api.nvim_buf_line_count(bufnr) - 1
  local last_line = vim.api.nvim_buf_get_lines(bufnr, last_row, last_row + 1, true)[1]
  local position = { line = last_row, character = column_in_encoding(last_line, encoding) }
  log("cursor " .. vim.inspect(position, { newline = " ", indent = "" }))

  local responses, request_error = vim.lsp.buf_request_sync(bufnr, "textDocument/completion", {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = position,
    context = { triggerKind = 1 },
  }, TIMEOUT_MS)
  check(responses ~= nil, "textDocument/completion: " .. tostring(request_error))
  local response = responses[state.client_id]
  check(response ~= nil, "textDocument/completion: no response from the tandem client")
  check(response.err == nil and response.error == nil,
    "textDocument/completion failed: " .. vim.inspect(response.err or response.error))
  log("completion result " .. vim.inspect(response.result, { newline = " ", indent = "" }))

  local result = response.result
  local items = {}
  if type(result) == "table" then
    items = result.items or result
  end
  if EXPECTED_TEXT == "" then
    check(#items == 0, "expected no completion items because EXPECTED_TEXT is empty")
  else
    check(#items >= 1, "expected at least one completion item")
    local item = items[1]
    local new_text = (item.textEdit and item.textEdit.newText) or item.insertText or item.label
    check(type(new_text) == "string" and vim.endswith(new_text, EXPECTED_TEXT),
      "completion text " .. vim.inspect(new_text) .. " does not end with " .. vim.inspect(EXPECTED_TEXT))
    if item.textEdit ~= nil then
      local range = item.textEdit.range or item.textEdit.replace or item.textEdit.insert
      check(range["end"].line == position.line and range["end"].character == position.character,
        "completion textEdit must end at the cursor, got " .. vim.inspect(range))
      -- The server replaces the word being typed with word + suggestion; the word comes from
      -- its copy of the document, so this also checks that the incremental changes applied.
      local word = last_line:match("[%w_]*$")
      check(new_text == word .. EXPECTED_TEXT,
        "textEdit.newText " .. vim.inspect(new_text) .. " is not " .. vim.inspect(word .. EXPECTED_TEXT))
    end
  end

  -- Neovim sends shutdown, then exit; the server must then leave with status 0.
  vim.lsp.stop_client(state.client_id)
  local exited = vim.wait(10000, function()
    return state.exit_code ~= nil
  end, 20)
  check(exited, "server did not exit within 10 s of shutdown/exit")
  check(state.exit_code == 0 and (state.exit_signal == nil or state.exit_signal == 0),
    "server exit code " .. tostring(state.exit_code) .. ", signal " .. tostring(state.exit_signal))
  log("PASS")
end

local ok, failure = xpcall(run, function(err)
  if type(err) == "table" and err.tandem_failure then
    return err.tandem_failure
  end
  return debug.traceback(tostring(err), 2)
end)

if ok then
  vim.cmd("qall!")
else
  log("FAILED: " .. tostring(failure))
  log("LSP log (" .. LOG_PATH .. ", this run; the server's stderr is logged there):\n"
    .. read_tail(LOG_PATH, LOG_START, 60))
  if state.client_id ~= nil then
    pcall(vim.lsp.stop_client, state.client_id, true)
  end
  vim.cmd("cquit 1")
end
