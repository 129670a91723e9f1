--[[ The plug-in's one logger (Lightroom writes it to Photonic.log in its logs folder);
messages are key=value, like the agent's. ]]

local LrLogger = import "LrLogger"

local logger = LrLogger("Photonic")
logger:enable("logfile")

local Log = {}

local function format(event, fields)
    local parts = { event }
    if fields then
        local keys = {}
        for k in pairs(fields) do keys[#keys + 1] = k end
        table.sort(keys)
        for _, k in ipairs(keys) do
            local v = tostring(fields[k])
            if v:find("[%s\"=]") then v = string.format("%q", v) end
            parts[#parts + 1] = k .. "=" .. v
        end
    end
    return table.concat(parts, " ")
end

function Log.info(event, fields) logger:info(format(event, fields)) end

function Log.warn(event, fields) logger:warn(format(event, fields)) end

function Log.error(event, fields) logger:error(format(event, fields)) end

return Log
