--[[ Library > Plug-in Extras > Photonic: Connection status. ]]

local LrDialogs = import "LrDialogs"
local BridgeClient = require "BridgeClient"
local JobRunner = require "JobRunner"

LrDialogs.message("Photonic: Connection status",
    BridgeClient.describeStatus() .. "\n" .. JobRunner.describe(), "info")
