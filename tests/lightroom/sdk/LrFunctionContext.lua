-- Test stub of Lightroom's LrFunctionContext: contexts with cleanup and failure handlers.
local LrTasks = require "LrTasks"

local LrFunctionContext = {}

local function newContext()
    local ctx = { cleanup = {}, failure = {} }
    function ctx:addCleanupHandler(fn) self.cleanup[#self.cleanup + 1] = fn end
    function ctx:addFailureHandler(fn) self.failure[#self.failure + 1] = fn end
    return ctx
end

function LrFunctionContext.callWithContext(_, fn, ...)
    local ctx = newContext()
    local result = { LrTasks.pcall(fn, ctx, ...) }
    if not result[1] then
        for _, handler in ipairs(ctx.failure) do handler(false, result[2]) end
    end
    for _, handler in ipairs(ctx.cleanup) do handler(result[1], result[2]) end
    if not result[1] then error(result[2], 0) end
    return unpack(result, 2, table.maxn(result))
end

function LrFunctionContext.postAsyncTaskWithContext(name, fn)
    LrTasks.startAsyncTask(function()
        LrFunctionContext.callWithContext(name, fn)
    end, name)
end

return LrFunctionContext
