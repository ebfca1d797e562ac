--- What the `:Tandem…` commands do besides starting and stopping: signing in and out
--- (`workspace/executeCommand`) and explaining code (`tandem/explain`).

local util = require("tandem.util")

local api = vim.api
local M = {}

local config = { explain_window = "split" }

function M.configure(options)
  config.explain_window = options.explain_window or "split"
end

--- The Tandem client for the current buffer, else any running one; warns when there is none.
local function pick_client()
  local client = util.buffer_client(api.nvim_get_current_buf()) or util.get_clients()[1]
  if client == nil then
    util.notify("no Tandem server is running; open a file (after setup()) or run :TandemAttach",
      vim.log.levels.WARN)
  end
  return client
end

local function execute(client, command, handler)
  util.client_call(client, "request", "workspace/executeCommand", { command = command, arguments = {} },
    function(err, result)
      if err ~= nil then
        util.notify(command .. " failed: " .. tostring(err.message), vim.log.levels.ERROR)
        return
      end
      handler(result)
    end, api.nvim_get_current_buf())
end

--- Shows the code and the page of a sign-in the server started (`tandem.signIn`'s answer).
local function announce_sign_in(client, result)
  if type(result) ~= "table" or result.userCode == nil then
    util.notify("tandem.signIn gave no code: " .. vim.inspect(result), vim.log.levels.ERROR)
    return
  end
  local page = result.verificationUri
  local lines = {
    string.format("To sign in, open %s and enter the code %s", tostring(page), tostring(result.userCode)),
  }
  if type(result.expiresIn) == "number" then
    lines[1] = lines[1] .. string.format(" (valid for %d minutes)", math.floor(result.expiresIn / 60))
  end
  if util.has("clipboard") and pcall(vim.fn.setreg, "+", result.userCode) then
    table.insert(lines, "The code is in the + register.")
  end
  local direct = type(result.verificationUriComplete) == "string" and result.verificationUriComplete or page
  if vim.ui ~= nil and type(vim.ui.open) == "function" then
    if pcall(vim.ui.open, direct) then
      table.insert(lines, "Opening the page in your browser.")
    end
  end
  util.notify(table.concat(lines, "\n"))
end

--- `:TandemSignIn`: starts the device sign-in, shows the code and the page, copies the code
--- to the `+` register when there is a clipboard and opens the page with vim.ui.open when
--- this Neovim has it. The server saves the key once the code is confirmed.
function M.sign_in()
  local client = pick_client()
  if client == nil then
    return
  end
  -- `clientShowsCode`: the plugin shows the code and opens the page itself, so the server
  -- does neither and nothing is shown twice (docs/editors/PROTOCOL.md).
  util.client_call(client, "request", "workspace/executeCommand",
    { command = "tandem.signIn", arguments = { { clientShowsCode = true } } },
    function(err, result)
      if err ~= nil then
        util.notify("sign-in failed: " .. tostring(err.message), vim.log.levels.ERROR)
        return
      end
      announce_sign_in(client, result)
    end, api.nvim_get_current_buf())
end

--- `:TandemSignOut`: revokes the saved key and deletes the credentials file.
function M.sign_out()
  local client = pick_client()
  if client == nil then
    return
  end
  execute(client, "tandem.signOut", function(result)
    if result == true then
      util.notify("signed out; the saved key was revoked and deleted")
    else
      util.notify("there was no saved key to sign out of (a key from setup() or TANDEM_API_KEY stays in use)")
    end
  end)
end

--- Byte length of the UTF-8 character that starts at byte `index` (1-based) of `text`.
local function char_length(text, index)
  local byte = text:byte(index)
  if byte == nil or byte < 0xC0 then
    return 1
  elseif byte < 0xE0 then
    return 2
  elseif byte < 0xF0 then
    return 3
  end
  return 4
end

--- The LSP range for lines `line1`..`line2` (1-based), narrowed to the last visual selection
--- when it covers exactly those lines and was characterwise.
local function selection_range(bufnr, line1, line2, encoding)
  local start_mark = vim.fn.getpos("'<")
  local end_mark = vim.fn.getpos("'>")
  local start_row, start_col = line1 - 1, 0
  local last_line = util.buf_line(bufnr, line2 - 1)
  local end_row, end_col = line2 - 1, #last_line
  if start_mark[2] == line1 and end_mark[2] == line2 and vim.fn.visualmode() == "v" then
    start_col = math.min(start_mark[3] - 1, #util.buf_line(bufnr, start_row))
    -- '> is the first byte of the last selected character; the range ends after it.
    local last = math.min(end_mark[3], #last_line)
    end_col = last > 0 and math.min(last - 1 + char_length(last_line, last), #last_line) or 0
  end
  return {
    start = util.make_position(bufnr, start_row, start_col, encoding),
    ["end"] = util.make_position(bufnr, end_row, end_col, encoding),
  }
end

local explanation_buffer = nil

local function show_in_split(lines)
  local bufnr = explanation_buffer
  if bufnr == nil or not api.nvim_buf_is_valid(bufnr) then
    bufnr = api.nvim_create_buf(false, true)
    explanation_buffer = bufnr
    vim.bo[bufnr].bufhidden = "hide"
    pcall(api.nvim_buf_set_name, bufnr, "Tandem explanation")
    vim.keymap.set("n", "q", "<Cmd>close<CR>", { buffer = bufnr, silent = true, desc = "Close" })
  end
  vim.bo[bufnr].modifiable = true
  api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].modifiable = false
  vim.bo[bufnr].modified = false
  vim.bo[bufnr].filetype = "markdown"

  local window = vim.fn.bufwinid(bufnr)
  if window == -1 then
    local height = math.max(5, math.min(#lines + 1, math.floor(vim.o.lines / 2)))
    vim.cmd("botright " .. height .. "split")
    window = api.nvim_get_current_win()
    api.nvim_win_set_buf(window, bufnr)
    vim.wo[window].wrap = true
    vim.wo[window].linebreak = true
    vim.wo[window].number = false
    vim.wo[window].relativenumber = false
    vim.cmd("wincmd p")
  end
  api.nvim_win_set_cursor(window, { 1, 0 })
  return bufnr, window
end

--- Shows an explanation (`{title, markdown, provider, model}`) as Markdown.
function M.show_explanation(result)
  local lines = {}
  if type(result.title) == "string" and result.title ~= "" then
    table.insert(lines, "# " .. result.title)
    table.insert(lines, "")
  end
  vim.list_extend(lines, vim.split(tostring(result.markdown or ""), "\n", { plain = true }))
  if config.explain_window == "float" then
    local bufnr, window = vim.lsp.util.open_floating_preview(lines, "markdown", {
      focus_id = "tandem_explanation",
      border = "rounded",
      max_width = math.max(40, math.floor(vim.o.columns * 0.7)),
      max_height = math.max(10, math.floor(vim.o.lines * 0.6)),
    })
    return bufnr, window
  end
  return show_in_split(lines)
end

--- `:TandemExplain`: explains the lines of the command's range (the visual selection when it
--- is one), or, without a range, the code at the cursor.
---@param command_options table|nil the user command's options (`range`, `line1`, `line2`)
function M.explain(command_options)
  local bufnr = api.nvim_get_current_buf()
  local client = util.buffer_client(bufnr)
  if client == nil then
    util.notify("Tandem is not attached to this buffer", vim.log.levels.WARN)
    return
  end
  local encoding = util.encoding(client)
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) } }
  if command_options ~= nil and (command_options.range or 0) > 0 then
    params.range = selection_range(bufnr, command_options.line1, command_options.line2, encoding)
  else
    local cursor = api.nvim_win_get_cursor(0)
    params.position = util.make_position(bufnr, cursor[1] - 1, cursor[2], encoding)
  end
  util.notify("explaining…")
  util.client_call(client, "request", "tandem/explain", params, function(err, result)
    if err ~= nil then
      util.notify("explain failed: " .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    if type(result) ~= "table" then
      util.notify("explain gave no answer", vim.log.levels.WARN)
      return
    end
    M.show_explanation(result)
  end, bufnr)
end

return M
