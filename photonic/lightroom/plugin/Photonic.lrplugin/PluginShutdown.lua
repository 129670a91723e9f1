--[[ LrShutdownPlugin: stops the job loop and says goodbye to the bridge, which hands any
running job back (it is not failed). ]]

local LrTasks = import "LrTasks"
local BridgeClient = require "BridgeClient"
local JobRunner = require "JobRunner"

JobRunner.stop()
LrTasks.startAsyncTask(function()
    BridgeClient.stop()
end, "Photonic disconnect")
