--[[ The bridge's address and secret, kept in the plug-in's preferences. `photonic lightroom
install-plugin` cannot reach Lightroom's preference store, so it writes photonic-bridge.json
next to Info.lua; at every start its values are copied into the preferences (a reinstall with a
new secret takes effect on the next start). ]]

local LrPrefs = import "LrPrefs"
local LrPathUtils = import "LrPathUtils"
local LrFileUtils = import "LrFileUtils"
local Json = require "Json"
local Log = require "Log"

local Settings = {}

Settings.INSTALLED_FILE = "photonic-bridge.json"

-- Keys copied from the installed file, with their expected Lua types.
local KEYS = {
    bridge_url = "string",
    secret = "string",
    poll_timeout_s = "number",
    backoff_base_s = "number",
    backoff_cap_s = "number",
    ping_interval_s = "number",
}

local DEFAULTS = {
    bridge_url = "http://127.0.0.1:7777",
    poll_timeout_s = 25,
    backoff_base_s = 1,
    backoff_cap_s = 60,
    ping_interval_s = 60,
}

local function prefs()
    return LrPrefs.prefsForPlugin(_PLUGIN and _PLUGIN.id or "com.photonic.bridge")
end

--- Copies photonic-bridge.json (when the installer left one) into the preferences.
function Settings.importInstalledFile(pluginPath)
    local path = LrPathUtils.child(pluginPath, Settings.INSTALLED_FILE)
    if not LrFileUtils.exists(path) then return false end
    local ok, values = pcall(function() return Json.decode(LrFileUtils.readFile(path)) end)
    if not ok or type(values) ~= "table" then
        Log.warn("settings_unreadable", { path = path, error = values })
        return false
    end
    local p = prefs()
    for key, kind in pairs(KEYS) do
        if type(values[key]) == kind then p[key] = values[key] end
    end
    Log.info("settings_imported", { path = path, bridge_url = p.bridge_url })
    return true
end

--- The current settings: preferences over defaults.
function Settings.current()
    local p = prefs()
    local result = {}
    for key in pairs(KEYS) do
        local value = p[key]
        if value == nil then value = DEFAULTS[key] end
        result[key] = value
    end
    result.bridge_url = result.bridge_url:gsub("/+$", "")
    return result
end

return Settings
