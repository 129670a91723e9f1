-- Test stub of Lightroom's LrTasks: cooperative tasks on coroutines and a small scheduler that
-- run_plugin.lua drives. A task yields the time (socket.gettime) at which it wants to resume.
local socket = require "socket"

local LrTasks = {}
local tasks = {}

local function now() return socket.gettime() end

function LrTasks.startAsyncTask(fn, name)
    tasks[#tasks + 1] = { co = coroutine.create(fn), wakeAt = 0, name = name or "task" }
end

function LrTasks.canYield()
    return coroutine.running() ~= nil
end

function LrTasks.sleep(seconds)
    assert(coroutine.running(), "LrTasks.sleep called outside a task")
    coroutine.yield(now() + (seconds or 0))
end

function LrTasks.yield()
    if coroutine.running() then coroutine.yield(now()) end
end

local function pack(...) return { n = select("#", ...), ... } end

-- Like Lightroom's: a pcall the function may yield inside (Lua 5.1's pcall cannot); the
-- function runs in its own coroutine whose yields are passed on to the scheduler.
function LrTasks.pcall(fn, ...)
    local co = coroutine.create(fn)
    local res = pack(coroutine.resume(co, ...))
    while true do
        if not res[1] then return false, res[2] end
        if coroutine.status(co) == "dead" then return unpack(res, 1, res.n) end
        local back = pack(coroutine.yield(unpack(res, 2, res.n)))
        res = pack(coroutine.resume(co, unpack(back, 1, back.n)))
    end
end

--- Runs the tasks until none is left or stop() is true. A task's error is printed (Lightroom
--- shows a dialog) and the task ends.
function LrTasks.runScheduler(stop)
    while #tasks > 0 and not (stop and stop()) do
        local soonest = math.huge
        local t = now()
        for i = #tasks, 1, -1 do
            local task = tasks[i]
            if task.wakeAt <= t then
                local ok, wakeAt = coroutine.resume(task.co)
                if not ok then
                    io.stderr:write("TASK ERROR [" .. task.name .. "] " .. tostring(wakeAt) .. "\n")
                    io.stderr:flush()
                    table.remove(tasks, i)
                elseif coroutine.status(task.co) == "dead" then
                    table.remove(tasks, i)
                else
                    task.wakeAt = tonumber(wakeAt) or now()
                end
            end
            if tasks[i] == task then soonest = math.min(soonest, task.wakeAt) end
        end
        local pause = math.max(0, math.min(soonest - now(), 0.05))
        if pause > 0 then socket.sleep(pause) end
    end
end

return LrTasks
