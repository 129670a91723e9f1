-- Test stub of Lightroom's LrDialogs: a dialog is a line on stdout.
local LrDialogs = {}

function LrDialogs.message(title, message, style)
    io.stdout:write(string.format("DIALOG [%s] %s: %s\n", style or "info", title, message or ""))
    io.stdout:flush()
end

function LrDialogs.showError(message)
    LrDialogs.message("Error", message, "critical")
end

return LrDialogs
