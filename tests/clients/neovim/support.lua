-- What the two headless Neovim tests share: failing with a message, the environment,
-- and this run's part of Neovim's LSP log. Loaded with `dofile` from beside the test.

local M = {}

--- Per-step timeout, `TANDEM_TEST_TIMEOUT_MS` (default 20 s).
M.TIMEOUT_MS = tonumber(os.getenv("TANDEM_TEST_TIMEOUT_MS") or "") or 20000
--- The suggestion the provider answers with; empty means none is expected.
M.EXPECTED_TEXT = os.getenv("EXPECTED_TEXT") or ""

--- A logger writing `[name] message` lines to stderr.
function M.logger(name)
  return function(message)
    io.stderr:write("[" .. name .. "] " .. message .. "\n")
  end
end

--- Fails the test with `message` (caught by the test's runner, which reports it).
function M.fail(message)
  error({ tandem_failure = message }, 2)
end

function M.check(condition, message)
  if not condition then
    M.fail(message)
  end
end

--- The variable's value, or nil when it is unset or empty.
function M.nonempty_env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return nil
  end
  return value
end

--- The last `max_lines` lines written to `path` after byte `from`: the LSP log is shared by every
--- Neovim run, and only this run's part is of interest.
function M.read_tail(path, from, max_lines)
  local file = io.open(path, "r")
  if file == nil then
    return "<no log at " .. path .. ">"
  end
  if from > 0 then
    file:seek("set", from)
  end
  local lines = {}
  for line in file:lines() do
    table.insert(lines, line)
    if #lines > max_lines then
      table.remove(lines, 1)
    end
  end
  file:close()
  if #lines == 0 then
    return "<nothing logged by this run>"
  end
  return table.concat(lines, "\n")
end

return M
