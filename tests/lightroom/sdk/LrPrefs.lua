-- Test stub of Lightroom's LrPrefs: one table per plug-in id, starting from the key=value lines
-- of the file named by $PHOTONIC_STUB_PREFS (when set), kept in memory like Lightroom's store.
local LrPrefs = {}
local byPlugin = {}

local function initial()
    local values = {}
    local path = os.getenv("PHOTONIC_STUB_PREFS")
    local f = path and io.open(path, "r")
    if not f then return values end
    for line in f:lines() do
        local k, v = line:match("^([%w_]+)=(.*)$")
        if k then values[k] = tonumber(v) or v end
    end
    f:close()
    return values
end

function LrPrefs.prefsForPlugin(id)
    id = id or "default"
    if not byPlugin[id] then byPlugin[id] = initial() end
    return byPlugin[id]
end

return LrPrefs
