--[[ LrInitPlugin: reads the installed settings, then starts two background tasks: the bridge
connection (handshake, register, subscribe, long-poll, with backoff) and the job loop. ]]

local LrFunctionContext = import "LrFunctionContext"
local LrTasks = import "LrTasks"
local Settings = require "Settings"
local BridgeClient = require "BridgeClient"
local JobRunner = require "JobRunner"
local Log = require "Log"

math.randomseed(os.time())
Settings.importInstalledFile(_PLUGIN.path)

local handlers = {
    job_assigned = JobRunner.assign,
    job_cancelled = JobRunner.cancel,
}

LrFunctionContext.postAsyncTaskWithContext("Photonic bridge", function(context)
    context:addFailureHandler(function(_, message)
        Log.error("bridge_task_failed", { error = message })
    end)
    BridgeClient.run(Settings.current, handlers)
end)

LrTasks.startAsyncTask(function()
    JobRunner.work(BridgeClient.send)
end, "Photonic jobs")

Log.info("plugin_started", { path = _PLUGIN.path })
