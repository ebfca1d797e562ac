--- The server's account and quota status (`tandem/status`, kept current by
--- `tandem/didChangeStatus`), for `:TandemStatus` and the statusline.

local util = require("tandem.util")

local api = vim.api
local M = {}

--- The last Status each client reported, by client id; `false` for a server that does not
--- answer `tandem/status` (an older `tandem`).
local by_client = {}

local STATE_LABELS = {
  signedOut = "signed out",
  signingIn = "signing in",
  ready = "ready",
  unauthorized = "key rejected",
  limited = "limited",
  offline = "offline",
}

local function is_set(value)
  return value ~= nil and value ~= vim.NIL
end

local function changed()
  pcall(vim.cmd, "redrawstatus!")
  pcall(api.nvim_exec_autocmds, "User", { pattern = "TandemStatusChanged", modeline = false })
end

--- Records a Status for `client_id` (from the notification or a request's answer).
function M.update(client_id, status)
  if type(status) ~= "table" then
    return
  end
  by_client[client_id] = status
  changed()
end

function M.forget(client_id)
  if by_client[client_id] ~= nil then
    by_client[client_id] = nil
    changed()
  end
end

--- The handler for the `tandem/didChangeStatus` notification.
function M.handle_notification(_, result, ctx)
  M.update(ctx.client_id, result)
end

--- The Status of the client attached to `bufnr` (else of any client), and that client.
local function current(bufnr)
  local clients = util.get_clients(bufnr)
  if #clients == 0 then
    clients = util.get_clients()
  end
  for _, client in ipairs(clients) do
    if by_client[client.id] then
      return by_client[client.id], client
    end
  end
  return nil, clients[1]
end

local function quota_text(quota)
  if not is_set(quota) or not is_set(quota.remaining) or not is_set(quota.limit) then
    return nil
  end
  local text = string.format("%s of %s requests left", tostring(quota.remaining), tostring(quota.limit))
  if is_set(quota.window) then
    text = text .. " this " .. tostring(quota.window)
  end
  return text
end

--- A short status for a statusline: "" without a Tandem client for the current buffer,
--- else "Tandem: " and the state ("ready", "signed out", "limited", ...), "working" while a
--- request to the cloud runs, "off" when ghost text is switched off.
function M.statusline()
  local bufnr = api.nvim_get_current_buf()
  if #util.get_clients(bufnr) == 0 then
    return ""
  end
  if not require("tandem.suggestion").is_enabled() then
    return "Tandem: off"
  end
  local status, client = current(bufnr)
  if status == nil then
    return (client ~= nil and by_client[client.id] == false) and "Tandem" or "Tandem: starting"
  end
  if status.state == "ready" and status.busy == true then
    return "Tandem: working"
  end
  return "Tandem: " .. (STATE_LABELS[status.state] or tostring(status.state))
end

--- Asks the client attached to `bufnr` for its status and waits for the answer (at most
--- `timeout_ms`). Returns the Status, or nil and an error message.
function M.fetch(bufnr, timeout_ms)
  local _, client = current(bufnr)
  if client == nil then
    return nil, "no Tandem server is running (is this a file buffer, and was setup() called?)"
  end
  local response, err = util.client_call(client, "request_sync", "tandem/status", vim.empty_dict(),
    timeout_ms or 2000, bufnr)
  if response == nil then
    return nil, "no answer to tandem/status: " .. tostring(err or "the client has stopped")
  end
  if response.err ~= nil then
    return nil, "tandem/status failed: " .. tostring(response.err.message)
  end
  M.update(client.id, response.result)
  return response.result
end

--- Asks every client for its status without waiting (used once a server has started).
function M.refresh(client)
  util.client_call(client, "request", "tandem/status", vim.empty_dict(), function(err, result)
    if err == nil then
      M.update(client.id, result)
    elseif by_client[client.id] == nil then
      by_client[client.id] = false
      changed()
    end
  end)
end

--- The lines `:TandemStatus` prints for a Status.
function M.describe(status)
  local lines = {}
  local state = STATE_LABELS[status.state] or tostring(status.state)
  if status.busy == true then
    state = state .. ", working"
  end
  table.insert(lines, "state: " .. state)
  table.insert(lines, "server: " .. (is_set(status.server) and tostring(status.server) or "(unknown)"))
  if is_set(status.email) then
    table.insert(lines, "signed in as: " .. tostring(status.email))
  end
  if is_set(status.tier) then
    table.insert(lines, "tier: " .. tostring(status.tier))
  end
  local quota = quota_text(status.quota)
  if quota ~= nil then
    local resets = is_set(status.quota.resetsAt) and (", resets " .. tostring(status.quota.resetsAt)) or ""
    table.insert(lines, "quota: " .. quota .. resets)
  end
  if is_set(status.tokens) and is_set(status.tokens.remaining) and is_set(status.tokens.limit) then
    table.insert(lines, string.format("tokens: %s of %s left today", tostring(status.tokens.remaining),
      tostring(status.tokens.limit)))
  end
  if is_set(status.message) and status.message ~= "" then
    table.insert(lines, "message: " .. tostring(status.message))
  end
  return lines
end

return M
