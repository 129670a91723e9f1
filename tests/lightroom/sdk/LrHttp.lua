-- Test stub of Lightroom's LrHttp on lua-socket: get and post with headers ({field, value}
-- lists) and a timeout, returning the body and a headers table with .status, or nil and
-- headers.error on a network failure. The socket is non-blocking and waits by yielding, so a
-- long poll does not stop the other tasks (as in Lightroom).
local socket = require "socket"
local socket_url = require "socket.url"
local LrTasks = require "LrTasks"

local LrHttp = {}

local function cooperativeSocket(timeoutS)
    local deadline = socket.gettime() + timeoutS
    local sock = assert(socket.tcp())
    local w = {}
    local function wait()
        if socket.gettime() > deadline then return false end
        LrTasks.sleep(0.005)
        return true
    end
    function w:settimeout() return 1 end
    function w:connect(host, port)
        sock:settimeout(math.max(0.1, math.min(timeoutS, 5)))
        local ok, err = sock:connect(host, port)
        sock:settimeout(0)
        return ok, err
    end
    function w:send(data, i, j)
        i = i or 1
        while true do
            local last, err, partial = sock:send(data, i, j)
            if last then return last end
            if err ~= "timeout" then return nil, err, partial end
            i = partial + 1
            if not wait() then return nil, "timeout", partial end
        end
    end
    function w:receive(pattern, prefix)
        local acc = prefix
        while true do
            local data, err, partial = sock:receive(pattern, acc)
            if data then return data end
            if err ~= "timeout" then return nil, err, partial end
            acc = partial
            if not wait() then return nil, "timeout", partial end
        end
    end
    function w:close() return sock:close() end
    function w:setoption(...) return sock:setoption(...) end
    function w:getfd() return sock:getfd() end
    function w:dirty() return sock:dirty() end
    return w
end

-- HTTP/1.1 by hand on the cooperative socket: socket.http cannot be used, because its
-- socket.protect is a C pcall, and Lua 5.1 cannot yield across it.
local function exchange(sock, method, parsed, body, headers)
    local path = (parsed.path or "/") .. (parsed.query and ("?" .. parsed.query) or "")
    local lines = { method .. " " .. path .. " HTTP/1.1",
        "Host: " .. parsed.host .. ":" .. parsed.port, "Connection: close" }
    for _, h in ipairs(headers or {}) do lines[#lines + 1] = h.field .. ": " .. h.value end
    if body then lines[#lines + 1] = "Content-Length: " .. #body end
    local ok, err = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
    if not ok then return nil, err end
    local statusLine, lineErr = sock:receive("*l")
    if not statusLine then return nil, lineErr end
    local code = tonumber(statusLine:match("^HTTP/%d%.%d (%d%d%d)"))
    if not code then return nil, "bad status line" end
    local result = { status = code }
    local length
    while true do
        local line, hErr = sock:receive("*l")
        if not line then return nil, hErr end
        if line == "" then break end
        local field, value = line:match("^([^:]+):%s*(.*)$")
        if field then
            result[#result + 1] = { field = field, value = value }
            if field:lower() == "content-length" then length = tonumber(value) end
        end
    end
    local reply, bErr
    if length == 0 then
        reply = ""
    elseif length then
        reply, bErr = sock:receive(length)
    else
        reply, bErr = sock:receive("*a")
    end
    if not reply then return nil, bErr end
    return reply, result
end

local function request(method, url, body, headers, timeoutS)
    local parsed = socket_url.parse(url)
    parsed.port = tonumber(parsed.port) or 80
    local sock = cooperativeSocket(timeoutS or 60)
    local reply, result = nil, "connection refused"
    local ok, err = sock:connect(parsed.host, parsed.port)
    if ok then
        reply, result = exchange(sock, method, parsed, body, headers)
    else
        result = err
    end
    sock:close()
    if not reply then
        local name = tostring(result)
        local errorCode = name == "timeout" and "timedOut" or "cannotConnectToHost"
        return nil, { error = { errorCode = errorCode, name = name } }
    end
    return reply, result
end

function LrHttp.get(url, headers, timeout)
    return request("GET", url, nil, headers, timeout)
end

function LrHttp.post(url, postBody, headers, method, timeout)
    return request(method or "POST", url, postBody or "", headers, timeout)
end

return LrHttp
