--- Small helpers that hide the differences between Neovim 0.7 and newer releases: client
--- method calls, client look-ups and column conversions between bytes and the position
--- encoding a client negotiated.

local M = {}

M.CLIENT_NAME = "tandem"

function M.has(feature)
  return vim.fn.has(feature) == 1
end

function M.notify(message, level)
  vim.notify("[tandem] " .. message, level or vim.log.levels.INFO)
end

--- Calls a client function: a method (`client:request(...)`) from 0.11 on, where the dot
--- form is deprecated, a plain function (`client.request(...)`) before.
function M.client_call(client, name, ...)
  if M.has("nvim-0.11") then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- Every running Tandem client, or those attached to `bufnr` when given.
function M.get_clients(bufnr)
  if vim.lsp.get_clients ~= nil then
    return vim.lsp.get_clients({ name = M.CLIENT_NAME, bufnr = bufnr })
  end
  local clients = {}
  local source = bufnr ~= nil and vim.lsp.buf_get_clients(bufnr) or vim.lsp.get_active_clients()
  for _, client in pairs(source) do
    if client.name == M.CLIENT_NAME then
      table.insert(clients, client)
    end
  end
  return clients
end

--- The initialized Tandem client attached to `bufnr`, if any.
function M.buffer_client(bufnr)
  for _, client in ipairs(M.get_clients(bufnr)) do
    if client.initialized ~= false and not (client.is_stopped and M.client_call(client, "is_stopped")) then
      return client
    end
  end
  return nil
end

function M.encoding(client)
  return (client and client.offset_encoding) or "utf-16"
end

--- The column of byte offset `byte_col` of `line` in `encoding` (utf-8, utf-16 or utf-32).
function M.to_lsp_column(line, byte_col, encoding)
  byte_col = math.max(0, math.min(byte_col, #line))
  if encoding == "utf-8" then
    return byte_col
  end
  if M.has("nvim-0.11") then
    return vim.str_utfindex(line, encoding, byte_col, false)
  end
  -- Before 0.11 `str_utfindex(s, i)` returns the UTF-32 and the UTF-16 index.
  local utf32, utf16 = vim.str_utfindex(line, byte_col)
  if encoding == "utf-32" then
    return utf32
  end
  return utf16
end

--- The byte offset in `line` of `column` counted in `encoding`; past the end is clamped to
--- the end of the line (the spec asks clients to do so) and a column inside a character
--- moves to that character's end.
function M.from_lsp_column(line, column, encoding)
  if encoding == "utf-8" then
    return math.max(0, math.min(column, #line))
  end
  local ok, byte_col
  if M.has("nvim-0.11") then
    ok, byte_col = pcall(vim.str_byteindex, line, encoding, column, false)
  else
    ok, byte_col = pcall(vim.str_byteindex, line, column, encoding == "utf-16")
  end
  if not ok or byte_col == nil then
    return #line
  end
  return math.min(byte_col, #line)
end

function M.buf_line(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
end

--- An LSP position for the (0-based) row and byte column in `bufnr`.
function M.make_position(bufnr, row, byte_col, encoding)
  return { line = row, character = M.to_lsp_column(M.buf_line(bufnr, row), byte_col, encoding) }
end

--- The 0-based row and byte column of an LSP position in `bufnr`.
function M.position_to_bytes(bufnr, position, encoding)
  local line = M.buf_line(bufnr, position.line)
  return position.line, M.from_lsp_column(line, position.character, encoding)
end

return M
