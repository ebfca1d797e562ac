-- Headless test of the Tandem Neovim plugin (editors/nvim) against the real language server:
-- keys go through Neovim's input queue (nvim_input), so the plugin's insert-mode mappings and
-- autocommands run as they do for a person typing.
--
-- Run (Neovim 0.7 and newer):
--   nvim --headless --clean -u NONE -c "luafile tests/clients/neovim/plugin_test.lua"
--
-- Environment (see ../README.md): TANDEM_BIN, TANDEM_SERVER, TANDEM_API_KEY, EXPECTED_TEXT
-- (the provider's reply, required here), TANDEM_TEST_TIMEOUT_MS (per step, default 20000).
-- An EXPECTED_TEXT with a line break runs the multi-line scenario; otherwise the single-line
-- one, which also covers accept-word, dismiss, the <Tab> fallback and the commands.
--
-- Exit status: 0 (`qall!`) on success, 1 (`cquit 1`) on any failure, with diagnostics on stderr.

local support = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h") .. "/support.lua")
local TIMEOUT_MS = support.TIMEOUT_MS
local EXPECTED_TEXT = support.EXPECTED_TEXT
local log = support.logger("neovim plugin test")
local fail, check = support.fail, support.check
local nonempty_env, read_tail = support.nonempty_env, support.read_tail
-- This file is tests/clients/neovim/plugin_test.lua; the plugin is editors/nvim.
local REPOSITORY = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h:h")
local api = vim.api

local function check_equal(actual, expected, what)
  if actual ~= expected then
    fail(what .. ": expected " .. vim.inspect(expected) .. ", got " .. vim.inspect(actual))
  end
end

local LOG_PATH = vim.lsp.get_log_path()
local LOG_START = math.max(vim.fn.getfsize(LOG_PATH), 0)

-- Messages the plugin shows, for the commands' checks.
local messages = {}
vim.notify = function(message, level)
  table.insert(messages, tostring(message))
  log("notify(" .. tostring(level) .. "): " .. tostring(message))
end

local STARTED_MS = vim.loop.now()
local finished = false
local function finish(failure)
  if finished then
    return
  end
  finished = true
  if failure == nil then
    log(string.format("PASS in %.1f s", (vim.loop.now() - STARTED_MS) / 1000))
    vim.cmd("qall!")
    return
  end
  log("FAILED: " .. tostring(failure))
  local ok, state = pcall(function()
    return vim.inspect({
      mode = api.nvim_get_mode().mode,
      cursor = api.nvim_win_get_cursor(0),
      lines = api.nvim_buf_get_lines(0, 0, -1, false),
      ghost = api.nvim_buf_get_extmarks(0, require("tandem.suggestion").namespace, 0, -1, { details = true }),
      last_error = require("tandem.suggestion").last_error(0),
    })
  end)
  log("state: " .. tostring(state))
  log("LSP log (" .. LOG_PATH .. ", this run):\n" .. read_tail(LOG_PATH, LOG_START, 60))
  vim.cmd("cquit 1")
end

-- The scenario runs in a coroutine: between steps it sleeps on a timer, which lets Neovim's
-- main loop process the queued keys, the server's answers and the plugin's timers.
local function resume(co)
  local ok, err = coroutine.resume(co)
  if not ok then
    if type(err) == "table" and err.tandem_failure then
      finish(err.tandem_failure)
    else
      finish(debug.traceback(co, tostring(err)))
    end
  end
end

local function sleep(ms)
  local co = coroutine.running()
  vim.defer_fn(function()
    resume(co)
  end, ms)
  coroutine.yield()
end

local function wait_for(what, condition, timeout_ms)
  local deadline = vim.loop.now() + (timeout_ms or TIMEOUT_MS)
  while true do
    local value = condition()
    if value then
      return value
    end
    if vim.loop.now() > deadline then
      fail("timed out waiting for " .. what)
    end
    sleep(20)
  end
end

local function ghost_marks(bufnr)
  local namespace = require("tandem.suggestion").namespace
  return api.nvim_buf_get_extmarks(bufnr, namespace, 0, -1, { details = true })
end

--- The ghost text as { row, col, first_line, other_lines }, or nil when none is shown.
local function ghost(bufnr)
  local marks = ghost_marks(bufnr)
  if #marks == 0 then
    return nil
  end
  check(#marks == 1, "more than one ghost-text extmark: " .. vim.inspect(marks))
  local _, row, col, details = unpack(marks[1])
  local suggestion_chunks = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    if chunk[2] == "TandemSuggestion" then
      table.insert(suggestion_chunks, chunk[1])
    end
  end
  local other_lines = {}
  for _, virt_line in ipairs(details.virt_lines or {}) do
    local parts = {}
    for _, chunk in ipairs(virt_line) do
      if chunk[2] == "TandemSuggestion" then
        table.insert(parts, chunk[1])
      end
    end
    table.insert(other_lines, table.concat(parts))
  end
  return { row = row, col = col, first_line = table.concat(suggestion_chunks), other_lines = other_lines,
    virt_text_pos = details.virt_text_pos }
end

local function lines(bufnr)
  return api.nvim_buf_get_lines(bufnr, 0, -1, true)
end

local function cursor()
  local position = api.nvim_win_get_cursor(0)
  return { position[1] - 1, position[2] }
end

local function mode()
  return api.nvim_get_mode().mode
end

local function wait_for_ghost(bufnr, row, col, first_line)
  return wait_for("ghost text " .. vim.inspect(first_line) .. " at " .. row .. ":" .. col, function()
    local shown = ghost(bufnr)
    return shown ~= nil and shown.row == row and shown.col == col and shown.first_line == first_line and shown
  end)
end

local function open_document(root, text)
  local path = root .. "/example.py"
  local file = assert(io.open(path, "w"))
  file:write(text)
  file:close()
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  return api.nvim_get_current_buf()
end

local function start_plugin(bin, bufnr)
  vim.cmd("set rtp+=" .. vim.fn.fnameescape(REPOSITORY .. "/editors/nvim"))
  -- `-u NONE` skips plugin scripts; load the plugin's commands as a plugin manager would.
  vim.cmd("runtime! plugin/tandem.lua")
  check(vim.fn.exists(":TandemStatus") == 2, "plugin/tandem.lua did not define :TandemStatus")
  require("tandem").setup({
    cmd = { bin, "--stdio" },
    server = nonempty_env("TANDEM_SERVER"),
    api_key = nonempty_env("TANDEM_API_KEY"),
    filetypes = { "python" },
  })
  -- `-u NONE` leaves filetype detection off; setting it runs the plugin's FileType autocmd.
  vim.bo[bufnr].filetype = "python"
  -- The filetype may bring indent settings; the scenarios type their indentation themselves,
  -- and <Tab> without a suggestion must insert a tab character.
  vim.cmd("setlocal noautoindent nosmartindent nocindent indentexpr= noexpandtab softtabstop=0")
  local client = wait_for("the tandem client to start and attach", function()
    local attached = require("tandem.util").buffer_client(bufnr)
    return attached ~= nil and attached.initialized and attached
  end)
  log("client " .. client.id .. " initialized; offset encoding " .. tostring(client.offset_encoding))
  return client
end

--- Single line: ghost text after non-ASCII text (column conversion), accept word, accept,
--- dismiss, <Tab> without a suggestion, leaving insert mode, then the commands.
local function single_line_scenario(bin, root)
  local bufnr = open_document(root, "import math\n\n\ndef total(values):\n    return sum(values)\n")
  start_plugin(bin, bufnr)

  -- A new line typed in insert mode; the emoji is two UTF-16 units and four bytes, so a
  -- wrong column conversion puts the ghost text somewhere else.
  local typed = '    label = "Σ 🙂"; '
  api.nvim_input("Go" .. typed)
  local row = 5
  wait_for("the typed line", function()
    return mode() == "i" and lines(bufnr)[row + 1] == typed
  end)
  local shown = wait_for_ghost(bufnr, row, #typed, EXPECTED_TEXT)
  check_equal(shown.virt_text_pos, "overlay", "ghost text position")
  check(require("tandem").is_visible(), "is_visible() is false while ghost text is shown")
  log("ghost text shown at " .. row .. ":" .. #typed)

  -- Accept one word: the rest stays visible without asking the server again.
  local word = EXPECTED_TEXT:match("^[%w_]+")
  check(word ~= nil and #word < #EXPECTED_TEXT, "EXPECTED_TEXT must start with a word and go on")
  api.nvim_input("<M-Right>")
  wait_for("accept-word to insert " .. vim.inspect(word), function()
    return lines(bufnr)[row + 1] == typed .. word
  end)
  check_equal(cursor()[2], #(typed .. word), "cursor column after accept-word")
  wait_for_ghost(bufnr, row, #(typed .. word), EXPECTED_TEXT:sub(#word + 1))

  -- Accept the rest with <Tab>.
  api.nvim_input("<Tab>")
  wait_for("<Tab> to accept the suggestion", function()
    return lines(bufnr)[row + 1] == typed .. EXPECTED_TEXT
  end)
  check_equal(cursor()[1], row, "cursor row after accept")
  check_equal(cursor()[2], #(typed .. EXPECTED_TEXT), "cursor column after accept")
  check_equal(mode(), "i", "mode after accept")
  check_equal(table.concat(lines(bufnr), "\n"), "import math\n\n\ndef total(values):\n    return sum(values)\n"
    .. typed .. EXPECTED_TEXT, "buffer after accept")
  log("accepted: " .. lines(bufnr)[row + 1])

  -- A new line gets a new suggestion; <C-]> dismisses it and nothing comes back unasked.
  api.nvim_input("<CR>")
  wait_for_ghost(bufnr, row + 1, 0, EXPECTED_TEXT)
  api.nvim_input("<C-]>")
  wait_for("<C-]> to dismiss the ghost text", function()
    return #ghost_marks(bufnr) == 0
  end)
  sleep(500)
  check_equal(#ghost_marks(bufnr), 0, "ghost-text extmarks after dismiss and 500 ms")
  check_equal(lines(bufnr)[row + 2], "", "line after dismiss")
  check(not require("tandem").is_visible(), "is_visible() after dismiss")

  -- Without a suggestion <Tab> is an ordinary <Tab>.
  api.nvim_input("<Tab>")
  wait_for("<Tab> without a suggestion to insert a tab", function()
    return lines(bufnr)[row + 2] == "\t"
  end)

  -- Leaving insert mode hides the ghost text.
  api.nvim_input("<Esc>")
  wait_for("normal mode without ghost text", function()
    return mode() == "n" and #ghost_marks(bufnr) == 0
  end)
  sleep(200)
  check_equal(#ghost_marks(bufnr), 0, "ghost-text extmarks in normal mode")

  -- :TandemToggle switches ghost text off and on.
  api.nvim_command("TandemToggle")
  check(not require("tandem.suggestion").is_enabled(), ":TandemToggle did not switch ghost text off")
  check_equal(require("tandem").statusline(), "Tandem: off", "statusline with ghost text off")
  api.nvim_input("A")
  sleep(500)
  check_equal(#ghost_marks(bufnr), 0, "ghost-text extmarks while switched off")
  api.nvim_input("<Esc>")
  api.nvim_command("TandemToggle")
  check(require("tandem.suggestion").is_enabled(), ":TandemToggle did not switch ghost text back on")

  -- The status: the statusline follows tandem/status and tandem/didChangeStatus.
  wait_for("the statusline to say ready", function()
    return require("tandem").statusline() == "Tandem: ready"
  end)
  local report = api.nvim_exec("TandemStatus", true)
  log(":TandemStatus printed:\n" .. report)
  check(report:find("Tandem state: ready", 1, true), ":TandemStatus does not say ready")
  check(report:find("Tandem server: " .. nonempty_env("TANDEM_SERVER"), 1, true),
    ":TandemStatus does not name the server")
  check(report:find("Tandem tier: ", 1, true), ":TandemStatus does not show the tier")
  check(report:find("Tandem quota: %d+ of %d+ requests left"), ":TandemStatus does not show the quota")

  -- :TandemExplain on the function shows the answer as Markdown in a split.
  api.nvim_win_set_cursor(0, { 4, 4 })
  local windows_before = #api.nvim_list_wins()
  api.nvim_command("TandemExplain")
  local explanation_window = wait_for("the explanation window", function()
    for _, window in ipairs(api.nvim_list_wins()) do
      local buffer = api.nvim_win_get_buf(window)
      if vim.bo[buffer].filetype == "markdown" and buffer ~= bufnr then
        return window
      end
    end
    return nil
  end)
  check_equal(#api.nvim_list_wins(), windows_before + 1, "windows after :TandemExplain")
  local explanation = table.concat(lines(api.nvim_win_get_buf(explanation_window)), "\n")
  log("explanation:\n" .. explanation)
  check(explanation:find(EXPECTED_TEXT, 1, true), "the explanation does not contain the provider's answer")
  check_equal(api.nvim_get_current_buf(), bufnr, "focus after :TandemExplain")
  local explanation_buffer = api.nvim_win_get_buf(explanation_window)
  check_equal(lines(explanation_buffer)[1], "# Explanation of `total`", "title of the explanation at the cursor")

  -- With a range, the lines are explained; the answer replaces the last one in its window.
  local function wait_for_title(title)
    wait_for("an explanation titled " .. vim.inspect(title), function()
      return lines(explanation_buffer)[1] == title
    end)
  end
  api.nvim_command("5,6TandemExplain")
  wait_for_title("# Explanation of example.py, lines 5–6")
  check_equal(#api.nvim_list_wins(), windows_before + 1, "windows after a second :TandemExplain")
  -- A characterwise selection on one line, typed: `:` in visual mode inserts '<,'>.
  api.nvim_input('6G0f"vf":TandemExplain<CR>')
  wait_for_title("# Explanation of example.py, line 6")

  -- :TandemSignIn shows a code; :TandemSignOut finds no saved key (the key came from setup()).
  api.nvim_command("TandemSignIn")
  local sign_in = wait_for("the sign-in code", function()
    for _, message in ipairs(messages) do
      if message:find("To sign in, open ", 1, true) then
        return message
      end
    end
  end)
  check(sign_in:find(nonempty_env("TANDEM_SERVER"), 1, true), "the sign-in message does not name the server's page")
  -- The server's own window/showMessage with the same code is not shown a second time.
  local history = api.nvim_exec("messages", true)
  check(not history:find("to sign in, enter the code", 1, true),
    "the server's sign-in message was shown as well:\n" .. history)
  api.nvim_command("TandemSignOut")
  wait_for("the sign-out answer", function()
    for _, message in ipairs(messages) do
      if message:find("no saved key", 1, true) then
        return true
      end
    end
  end)
end

--- Multi-line: an empty line in a function body; the ghost text spans virtual lines and
--- <Tab> inserts all of them and puts the cursor at the end.
local function multi_line_scenario(bin, root)
  local bufnr = open_document(root, "import math\n\n\ndef total(values):\n")
  start_plugin(bin, bufnr)
  local indent = "    "
  api.nvim_input("Go" .. indent)
  local row = 4
  wait_for("the typed indent", function()
    return mode() == "i" and lines(bufnr)[row + 1] == indent
  end)
  local expected_lines = vim.split(EXPECTED_TEXT, "\n", { plain = true })
  local shown = wait_for_ghost(bufnr, row, #indent, expected_lines[1])
  check_equal(table.concat(shown.other_lines, "\n"), table.concat(expected_lines, "\n", 2),
    "the ghost text's virtual lines")

  api.nvim_input("<Tab>")
  wait_for("<Tab> to accept the multi-line suggestion", function()
    return #lines(bufnr) == row + #expected_lines
  end)
  check_equal(table.concat(lines(bufnr), "\n"), "import math\n\n\ndef total(values):\n" .. indent .. EXPECTED_TEXT,
    "buffer after accept")
  check_equal(cursor()[1], row + #expected_lines - 1, "cursor row after accept")
  check_equal(cursor()[2], #expected_lines[#expected_lines], "cursor column after accept")
end

local function run()
  local bin = nonempty_env("TANDEM_BIN")
  check(bin ~= nil and vim.fn.executable(bin) == 1, "TANDEM_BIN must point at the tandem binary")
  check(EXPECTED_TEXT ~= "", "EXPECTED_TEXT must be the provider's reply")
  local version = vim.version()
  log(string.format("Neovim %d.%d.%d, plugin from %s, EXPECTED_TEXT=%s", version.major, version.minor,
    version.patch, REPOSITORY .. "/editors/nvim", vim.inspect(EXPECTED_TEXT)))
  local root = vim.fn.tempname()
  vim.fn.mkdir(root, "p")
  if EXPECTED_TEXT:find("\n", 1, true) then
    multi_line_scenario(bin, root)
  else
    single_line_scenario(bin, root)
  end
  require("tandem").stop()
  finish(nil)
end

vim.defer_fn(function()
  finish("the test did not finish within 55 s")
end, 55000)
resume(coroutine.create(run))
