-- User commands for Tandem. Nothing starts until `require("tandem").setup{}` is called, so
-- installing the plugin alone never launches a process.

if vim.g.loaded_tandem ~= nil or vim.fn.has("nvim-0.7") ~= 1 then
  return
end
vim.g.loaded_tandem = true

local function command(name, callback, options)
  vim.api.nvim_create_user_command(name, callback, options)
end

command("TandemStatus", function()
  print(require("tandem").status_report())
end, { desc = "Show Tandem's state, account and quota, and the plugin's clients" })

command("TandemSignIn", function()
  require("tandem").sign_in()
end, { desc = "Sign in to Tandem with a code shown in the browser" })

command("TandemSignOut", function()
  require("tandem").sign_out()
end, { desc = "Sign out of Tandem: revoke and delete the saved key" })

command("TandemExplain", function(args)
  require("tandem").explain(args)
end, { range = true, desc = "Explain the selected lines, or the code at the cursor" })

command("TandemToggle", function()
  local enabled = require("tandem").toggle()
  vim.notify("[tandem] ghost text " .. (enabled and "on" or "off"))
end, { desc = "Turn Tandem's ghost text on or off" })

command("TandemRestart", function()
  require("tandem").restart()
end, { desc = "Restart the Tandem language server" })

command("TandemStop", function()
  require("tandem").stop()
end, { desc = "Stop the Tandem language server" })

command("TandemAttach", function()
  require("tandem").attach(0)
end, { desc = "Attach Tandem to the current buffer" })
