--[[ Runs Photonic.lrplugin under plain lua5.1 the way Lightroom would: the stub SDK under
tests/lightroom/sdk on the path, `import` for SDK modules, _PLUGIN describing the plug-in,
Info.lua read and its LrInitPlugin script run, then the task scheduler until the process is
killed — or, with $PHOTONIC_STUB_EXIT_AFTER_JOBS=N, until N jobs have finished.

    PHOTONIC_PLUGIN_DIR=/path/to/Photonic.lrplugin lua5.1 tests/lightroom/run_plugin.lua ]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local pluginDir = os.getenv("PHOTONIC_PLUGIN_DIR")
    or (here .. "/../../photonic/lightroom/plugin/Photonic.lrplugin")

package.path = here .. "/sdk/?.lua;" .. pluginDir .. "/?.lua;" .. package.path

function import(name) -- luacheck: ignore (a global, as in Lightroom)
    return require(name)
end

_PLUGIN = { id = nil, path = pluginDir, enabled = true } -- luacheck: ignore

local info = dofile(pluginDir .. "/Info.lua")
_PLUGIN.id = info.LrToolkitIdentifier
dofile(pluginDir .. "/" .. info.LrInitPlugin)

local exitAfter = tonumber(os.getenv("PHOTONIC_STUB_EXIT_AFTER_JOBS") or "")
local stats = require("JobRunner").stats
require("LrTasks").runScheduler(function()
    return exitAfter ~= nil and stats.finished >= exitAfter
end)
if exitAfter then
    io.stdout:write(string.format("finished %d jobs\n", stats.finished))
end
