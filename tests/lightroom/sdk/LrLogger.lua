-- Test stub of Lightroom's LrLogger: every enabled logger writes to stderr, one line a message.
local function new(name)
    local logger = { enabled = false }
    local function write(level, ...)
        local parts = {}
        for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
        io.stderr:write(string.format("%s %s %s\n", name, level, table.concat(parts, " ")))
        io.stderr:flush()
    end
    function logger:enable(_) self.enabled = true end
    for _, level in ipairs({ "trace", "debug", "info", "warn", "error", "fatal" }) do
        logger[level] = function(self, ...) if self.enabled then write(level:upper(), ...) end end
    end
    return logger
end

return setmetatable({}, { __call = function(_, name) return new(name) end })
