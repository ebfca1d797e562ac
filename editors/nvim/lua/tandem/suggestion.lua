--- Ghost text: Tandem's suggestion shown after the cursor while typing, accepted whole, by
--- word or by line.
---
--- On Neovim with `vim.lsp.inline_completion` (0.12+) the built-in feature does the work and
--- this module only adds the keymaps. Elsewhere (0.7 to 0.11) it asks for
--- `textDocument/inlineCompletion` itself and draws the answer with extmarks: the first line
--- as `virt_text` over the cursor's line, the others as `virt_lines` below it.

local util = require("tandem.util")

local api = vim.api
local M = {}

local namespace = api.nvim_create_namespace("tandem_suggestion")
M.namespace = namespace

-- LSP 3.18 InlineCompletionTriggerKind.
local INVOKED = 1
local AUTOMATIC = 2
-- JSON-RPC errors that only say a newer request took over.
local REQUEST_CANCELLED = -32800
local CONTENT_MODIFIED = -32801

local config = {
  delay_ms = 20,
  hl_group = "TandemSuggestion",
  builtin = true,
  keymaps = {},
}

--- Ghost text on or off for every buffer (`:TandemToggle`).
local enabled = true

--- Per-buffer state of the extmark implementation.
---@class tandem.SuggestionState
---@field timer userdata|nil       debounce timer
---@field generation integer       bumped by every request; an answer to an older one is dropped
---@field pending table|nil        { id, client_id } of the request in flight
---@field candidates table[]|nil   { row, col, text, tail }: `text` replaces the buffer from (row, col) to the cursor plus `tail`
---@field index integer            the candidate shown
---@field last_error string|nil
local buffers = {}

local function get_state(bufnr)
  local state = buffers[bufnr]
  if state == nil then
    state = { generation = 0, index = 1 }
    buffers[bufnr] = state
  end
  return state
end

--- Whether this Neovim has the built-in inline completion the module defers to.
function M.builtin_available()
  local ok, inline = pcall(function()
    return vim.lsp.inline_completion
  end)
  return ok and inline ~= nil and type(inline.enable) == "function" and type(inline.get) == "function"
    and type(inline.select) == "function"
end

local function use_builtin()
  return config.builtin and M.builtin_available()
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == "i"
end

--- The 0-based row and byte column of the cursor when `bufnr` is the current buffer.
local function cursor(bufnr)
  if api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local position = api.nvim_win_get_cursor(0)
  return position[1] - 1, position[2]
end

local function stop_timer(state)
  if state.timer ~= nil then
    state.timer:stop()
    if not state.timer:is_closing() then
      state.timer:close()
    end
    state.timer = nil
  end
end

local function cancel_pending(state)
  local pending = state.pending
  state.pending = nil
  if pending == nil then
    return
  end
  local client = vim.lsp.get_client_by_id(pending.client_id)
  if client ~= nil then
    pcall(util.client_call, client, "cancel_request", pending.id)
  end
end

local function hide(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, namespace, 0, -1)
  end
end

--- Forgets the suggestion and everything on its way: the timer, the request, the extmark.
local function clear(bufnr)
  local state = buffers[bufnr]
  if state == nil then
    return
  end
  stop_timer(state)
  cancel_pending(state)
  state.generation = state.generation + 1
  state.candidates = nil
  hide(bufnr)
end

--- What the current candidate still adds at the cursor, or nil when it no longer fits the
--- buffer: the text typed since the request must be the start of the suggestion, and the
--- text the suggestion replaces after the cursor (`tail`) must still follow it.
local function resolve(bufnr, state)
  local candidate = state.candidates and state.candidates[state.index]
  if candidate == nil then
    return nil
  end
  local row, col = cursor(bufnr)
  if row == nil or row < candidate.row or (row == candidate.row and col < candidate.col) then
    return nil
  end
  local ok, typed_lines = pcall(api.nvim_buf_get_text, bufnr, candidate.row, candidate.col, row, col, {})
  if not ok then
    return nil
  end
  local typed = table.concat(typed_lines, "\n")
  if #typed >= #candidate.text or candidate.text:sub(1, #typed) ~= typed then
    return nil
  end
  local after = util.buf_line(bufnr, row):sub(col + 1)
  if after:sub(1, #candidate.tail) ~= candidate.tail then
    return nil
  end
  return {
    candidate = candidate,
    row = row,
    col = col,
    remainder = candidate.text:sub(#typed + 1),
    -- What stays after the suggestion once it is accepted, and what is there now.
    rest_of_line = after:sub(#candidate.tail + 1),
    after_cursor = after,
  }
end

local function display_text(text)
  return (text:gsub("\t", string.rep(" ", vim.bo.tabstop > 0 and vim.bo.tabstop or 8)))
end

--- Draws the resolved suggestion. The first line is an overlay starting at the cursor that
--- also repeats the rest of the line (shifted right, as it will be after accepting); later
--- lines are virtual lines, the last followed by that rest of the line. Overlay and
--- virt_lines exist since 0.6; inline virtual text only since 0.10.
local function render(bufnr, resolved)
  hide(bufnr)
  local lines = vim.split(resolved.remainder, "\n", { plain = true })
  local hl_group = config.hl_group
  local covered = vim.fn.strdisplaywidth(display_text(resolved.after_cursor))
  local rest = display_text(resolved.rest_of_line)
  local virt_text
  local virt_lines = nil
  if #lines == 1 then
    local first = display_text(lines[1])
    local padding = math.max(0, covered - vim.fn.strdisplaywidth(first .. rest))
    virt_text = { { first, hl_group }, { rest .. string.rep(" ", padding) } }
  else
    local first = display_text(lines[1])
    local padding = math.max(0, covered - vim.fn.strdisplaywidth(first))
    virt_text = { { first .. string.rep(" ", padding), hl_group } }
    virt_lines = {}
    for index = 2, #lines do
      table.insert(virt_lines, { { display_text(lines[index]), hl_group } })
    end
    if rest ~= "" then
      table.insert(virt_lines[#virt_lines], { rest })
    end
  end
  api.nvim_buf_set_extmark(bufnr, namespace, resolved.row, resolved.col, {
    virt_text = virt_text,
    virt_text_pos = "overlay",
    virt_lines = virt_lines,
    hl_mode = "combine",
    priority = 200,
  })
end

--- Redraws the current suggestion for the cursor; forgets it when it no longer fits.
local function refresh(bufnr)
  local state = buffers[bufnr]
  if state == nil then
    return false
  end
  local resolved = resolve(bufnr, state)
  if resolved == nil then
    state.candidates = nil
    hide(bufnr)
    return false
  end
  render(bufnr, resolved)
  return true
end

--- Turns the server's items into candidates anchored in the buffer as it is now (the answer
--- is only used when the buffer did not change since the request).
local function to_candidates(bufnr, client, items, row, col)
  local encoding = util.encoding(client)
  local line = util.buf_line(bufnr, row)
  local candidates = {}
  local seen = {}
  for _, item in ipairs(items) do
    local text = item.insertText
    if type(text) == "table" then
      -- A StringValue (snippet); Tandem sends plain strings, so only its text is kept.
      text = text.value
    end
    if type(text) == "string" and text ~= "" then
      local start_row, start_col, end_row, end_col = row, col, row, col
      if item.range ~= nil then
        start_row, start_col = util.position_to_bytes(bufnr, item.range.start, encoding)
        end_row, end_col = util.position_to_bytes(bufnr, item.range["end"], encoding)
      end
      -- Ghost text can show a replacement only on the cursor's line, around the cursor.
      local fits = start_row == row and end_row == row and start_col <= col and end_col >= col
      if fits and not seen[text] then
        seen[text] = true
        table.insert(candidates, {
          row = start_row,
          col = start_col,
          text = text,
          tail = line:sub(col + 1, end_col),
        })
      end
    end
  end
  return candidates
end

--- Asks the server for a suggestion at the cursor.
---@param trigger_kind integer 1 when the user asked, 2 while typing
local function request(bufnr, trigger_kind)
  if not enabled or not in_insert_mode() or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local row, col = cursor(bufnr)
  if row == nil then
    return
  end
  local client = util.buffer_client(bufnr)
  if client == nil then
    return
  end
  local state = get_state(bufnr)
  cancel_pending(state)
  state.generation = state.generation + 1
  local generation = state.generation
  local changedtick = api.nvim_buf_get_changedtick(bufnr)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = util.make_position(bufnr, row, col, util.encoding(client)),
    context = { triggerKind = trigger_kind },
  }
  local function handler(err, result)
    if state.pending ~= nil and state.pending.generation == generation then
      state.pending = nil
    end
    if generation ~= state.generation then
      return
    end
    if err ~= nil then
      if err.code ~= REQUEST_CANCELLED and err.code ~= CONTENT_MODIFIED then
        state.last_error = tostring(err.message)
      end
      return
    end
    state.last_error = nil
    -- Only an answer for exactly this text and cursor can be placed.
    local now_row, now_col = cursor(bufnr)
    if not enabled or not in_insert_mode() or api.nvim_buf_get_changedtick(bufnr) ~= changedtick
      or now_row ~= row or now_col ~= col then
      return
    end
    local items = type(result) == "table" and (result.items or result) or {}
    local candidates = to_candidates(bufnr, client, items, row, col)
    state.candidates = #candidates > 0 and candidates or nil
    state.index = 1
    refresh(bufnr)
  end
  local ok, request_id = util.client_call(client, "request", "textDocument/inlineCompletion", params, handler, bufnr)
  if ok and request_id ~= nil then
    state.pending = { id = request_id, client_id = client.id, generation = generation }
  end
end

local function schedule_request(bufnr, trigger_kind)
  local state = get_state(bufnr)
  stop_timer(state)
  local timer = vim.loop.new_timer()
  state.timer = timer
  timer:start(config.delay_ms, 0, vim.schedule_wrap(function()
    if state.timer == timer then
      stop_timer(state)
      request(bufnr, trigger_kind)
    end
  end))
end

--- Text changed or the cursor moved: keep a suggestion that still fits (the user typed what
--- it suggested), else ask again after a short pause.
local function on_change(bufnr)
  if not enabled then
    return
  end
  local state = get_state(bufnr)
  if state.candidates ~= nil and refresh(bufnr) then
    return
  end
  hide(bufnr)
  cancel_pending(state)
  schedule_request(bufnr, AUTOMATIC)
end

--- The next piece of `text` to accept by word: a line break with the next line's indent, or
--- spaces plus a run of word characters, or spaces plus a run of other characters. Bytes
--- of multi-byte characters count as word characters, so a character is never split.
local function next_word(text)
  return text:match("^\n[ \t]*") or text:match("^[ \t]*[%w_\128-\255]+") or text:match("^[ \t]*[^%w_%s\128-\255]+")
    or text:match("^%s+") or text
end

--- The rest of the current line, or, at a line break, the break and the next line.
local function next_line(text)
  return text:match("^[^\n]+") or text:match("^\n[^\n]*") or text
end

--- Inserts `lines` over (start_row, start_col)-(end_row, end_col) and puts the cursor after them.
local function replace_and_move(bufnr, start_row, start_col, end_row, end_col, lines)
  api.nvim_buf_set_text(bufnr, start_row, start_col, end_row, end_col, lines)
  local last_row = start_row + #lines - 1
  local last_col = (#lines == 1 and start_col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { last_row + 1, last_col })
end

--- Whether a suggestion is shown in `bufnr` (default: the current buffer).
function M.is_visible(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if use_builtin() then
    -- The built-in module keeps its state private; its extmarks say whether it shows one.
    local builtin_namespace = api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
    return builtin_namespace ~= nil
      and #api.nvim_buf_get_extmarks(bufnr, builtin_namespace, 0, -1, { limit = 1 }) > 0
  end
  local state = buffers[bufnr]
  return state ~= nil and resolve(bufnr, state) ~= nil
end

--- The text the shown suggestion would insert at the cursor (extmark implementation only).
function M.current_text(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = buffers[bufnr]
  local resolved = state and resolve(bufnr, state)
  return resolved and resolved.remainder or nil
end

--- With the built-in implementation: accepts part of its current item through `on_accept`.
local function builtin_accept_part(pick)
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local bufnr = api.nvim_get_current_buf()
      local row, col = cursor(bufnr)
      local text = type(item.insert_text) == "string" and item.insert_text or item.insert_text.value
      local start_row, start_col = row, col
      if item.range ~= nil and item.range.start ~= nil then
        start_row, start_col = item.range.start.row, item.range.start.col
      end
      local ok, typed_lines = pcall(api.nvim_buf_get_text, bufnr, start_row, start_col, row, col, {})
      local typed = ok and table.concat(typed_lines, "\n") or ""
      if text:sub(1, #typed) ~= typed then
        typed = ""
      end
      local part = pick(text:sub(#typed + 1))
      replace_and_move(bufnr, row, col, row, col, vim.split(part, "\n", { plain = true }))
    end,
  })
end

--- Accepts the suggestion shown in the current buffer: `how` is "all" (default), "word" or
--- "line". Returns whether there was one. Edits the buffer, so call it from a `<Cmd>`
--- mapping or a function mapping, not from an `expr` mapping.
function M.accept(how)
  how = how or "all"
  if use_builtin() then
    if how == "all" then
      return vim.lsp.inline_completion.get()
    end
    return builtin_accept_part(how == "word" and next_word or next_line)
  end
  local bufnr = api.nvim_get_current_buf()
  local state = buffers[bufnr]
  local resolved = state and resolve(bufnr, state)
  if resolved == nil then
    return false
  end
  local part = resolved.remainder
  if how == "word" then
    part = next_word(resolved.remainder)
  elseif how == "line" then
    part = next_line(resolved.remainder)
  end
  if part == resolved.remainder then
    -- The whole item: its text over its range, as the server sent it.
    local candidate = resolved.candidate
    clear(bufnr)
    replace_and_move(bufnr, candidate.row, candidate.col, resolved.row, resolved.col + #candidate.tail,
      vim.split(candidate.text, "\n", { plain = true }))
  else
    -- A part: typed in at the cursor, so the rest of the suggestion still fits and stays.
    replace_and_move(bufnr, resolved.row, resolved.col, resolved.row, resolved.col,
      vim.split(part, "\n", { plain = true }))
    refresh(bufnr)
  end
  return true
end

--- Hides the suggestion; nothing new is asked for until the text or the cursor changes.
function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  if use_builtin() then
    -- The built-in module has no dismiss; switching it off and on drops its item.
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return
  end
  clear(bufnr)
end

--- Shows the next (`count` 1) or previous (-1) of several suggestions, or asks for one.
function M.next(count)
  count = count or 1
  local bufnr = api.nvim_get_current_buf()
  if use_builtin() then
    vim.lsp.inline_completion.select({ count = count })
    return
  end
  local state = get_state(bufnr)
  if state.candidates ~= nil and #state.candidates > 1 then
    state.index = (state.index - 1 + count) % #state.candidates + 1
    refresh(bufnr)
    return
  end
  clear(bufnr)
  request(bufnr, INVOKED)
end

--- Turns ghost text on or off everywhere; returns the new setting.
function M.toggle(value)
  if value == nil then
    value = not enabled
  end
  enabled = value
  if use_builtin() then
    for _, client in ipairs(util.get_clients()) do
      for bufnr in pairs(client.attached_buffers or {}) do
        pcall(vim.lsp.inline_completion.enable, enabled, { bufnr = bufnr })
      end
    end
  elseif not enabled then
    for bufnr in pairs(buffers) do
      clear(bufnr)
    end
  end
  return enabled
end

function M.is_enabled()
  return enabled
end

function M.last_error(bufnr)
  local state = buffers[(bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr]
  return state and state.last_error
end

local function define_highlight()
  vim.cmd("highlight default link TandemSuggestion Comment")
end

--- The keymaps and what each does; `rhs` is Lua run through `<Cmd>`.
local ACTIONS = {
  accept = { rhs = "require('tandem.suggestion').accept('all')", desc = "accept the suggestion", needs_suggestion = true },
  accept_word = { rhs = "require('tandem.suggestion').accept('word')", desc = "accept the next word", needs_suggestion = true },
  accept_line = { rhs = "require('tandem.suggestion').accept('line')", desc = "accept the next line", needs_suggestion = true },
  dismiss = { rhs = "require('tandem.suggestion').dismiss()", desc = "dismiss the suggestion", needs_suggestion = true },
  next = { rhs = "require('tandem.suggestion').next(1)", desc = "next suggestion" },
  previous = { rhs = "require('tandem.suggestion').next(-1)", desc = "previous suggestion" },
}

--- Insert-mode keymaps local to `bufnr`. A key whose action has nothing to act on does what
--- it does without the plugin (`<Tab>` inserts a tab, or whatever 'expandtab' makes of it).
local function set_keymaps(bufnr)
  for name, key in pairs(config.keymaps) do
    local action = ACTIONS[name]
    if action ~= nil and type(key) == "string" and key ~= "" then
      vim.keymap.set("i", key, function()
        if action.needs_suggestion and not M.is_visible(bufnr) then
          return key
        end
        return "<Cmd>lua " .. action.rhs .. "<CR>"
      end, { buffer = bufnr, expr = true, silent = true, desc = "Tandem: " .. action.desc })
    end
  end
end

--- Starts ghost text in `bufnr` for `client`.
function M.attach(client, bufnr)
  define_highlight()
  set_keymaps(bufnr)
  if use_builtin() then
    pcall(vim.lsp.inline_completion.enable, enabled, { bufnr = bufnr })
    return
  end
  get_state(bufnr)
  local group = api.nvim_create_augroup("tandem_suggestion_" .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "TextChangedP", "CursorMovedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_change(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      clear(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "BufUnload" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  if in_insert_mode() and api.nvim_get_current_buf() == bufnr then
    schedule_request(bufnr, AUTOMATIC)
  end
end

--- Stops ghost text in `bufnr`.
function M.detach(bufnr)
  clear(bufnr)
  buffers[bufnr] = nil
  pcall(api.nvim_del_augroup_by_name, "tandem_suggestion_" .. bufnr)
end

--- Applies the options from setup().
function M.configure(options)
  config.delay_ms = options.suggestion_delay_ms or config.delay_ms
  config.hl_group = options.suggestion_hl_group or config.hl_group
  config.builtin = options.builtin_inline_completion ~= false
  config.keymaps = options.keymaps or {}
  local group = api.nvim_create_augroup("tandem_suggestion", { clear = true })
  api.nvim_create_autocmd("ColorScheme", { group = group, callback = define_highlight })
  define_highlight()
end

return M
