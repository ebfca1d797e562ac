-- User commands for Tandem. Nothing starts until `require("tandem").setup{}` is called, so
-- installing the plugin alone never launches a process.

if vim.g.loaded_tandem ~= nil or vim.fn.has("nvim-0.7") ~= 1 then
  return
end
vim.g.loaded_tandem = true

vim.api.nvim_create_user_command("TandemStatus", function()
  print(require("tandem").status())
end, { desc = "Show the Tandem language server status" })

vim.api.nvim_create_user_command("TandemRestart", function()
  require("tandem").restart()
end, { desc = "Restart the Tandem language server" })

vim.api.nvim_create_user_command("TandemStop", function()
  require("tandem").stop()
end, { desc = "Stop the Tandem language server" })

vim.api.nvim_create_user_command("TandemAttach", function()
  require("tandem").attach(0)
end, { desc = "Attach Tandem to the current buffer" })
