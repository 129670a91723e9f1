--[[ The plug-in's side of the bridge protocol (docs/lightroom-bridge.md): handshake, register,
subscribe, then long-poll for messages, with exponential backoff and jitter after every failure
(the agent not running, restarting, a wrong secret) and a new handshake when the bridge no
longer knows this client. Messages go to the handlers the caller gives `run`. ]]

local LrHttp = import "LrHttp"
local LrTasks = import "LrTasks"
local LrApplication = import "LrApplication"
local LrPathUtils = import "LrPathUtils"
local Json = require "Json"
local Backoff = require "Backoff"
local Log = require "Log"

local BridgeClient = {}

BridgeClient.PROTOCOL_VERSION = 1
BridgeClient.PLUGIN_VERSION = "1.0"
BridgeClient.SECRET_HEADER = "X-Photonic-Bridge-Secret"

-- What the status menu shows; one table shared by every script of the plug-in.
local status = {
    state = "starting",
    clientId = nil,
    lastError = nil,
    failures = 0,
    connectedAt = nil,
    lastContactAt = nil,
    lastPongServerTime = nil,
    lightroomVersion = nil,
    catalog = nil,
    bridgeUrl = nil,
}
BridgeClient.status = status

local stopping = false
local settings = nil

local function now()
    return os.time()
end

-- A failure: `unknownClient` when the bridge answered that it does not know our client id.
local function failure(message, httpStatus)
    return { message = message, status = httpStatus }
end

local function isUnknownClient(err)
    local s = err and err.status
    return s == 400 or s == 404 or s == 410
end

local function headerList()
    return {
        { field = BridgeClient.SECRET_HEADER, value = settings.secret or "" },
        { field = "Content-Type", value = "application/json" },
    }
end

-- One HTTP call: the decoded JSON reply of a 2xx, else nil and a failure.
local function call(method, path, body, timeoutS)
    local url = settings.bridge_url .. path
    local reply, headers
    if method == "GET" then
        reply, headers = LrHttp.get(url, headerList(), timeoutS)
    else
        reply, headers = LrHttp.post(url, Json.encode(body), headerList(), "POST", timeoutS)
    end
    local httpStatus = headers and headers.status
    if not httpStatus then
        local why = headers and headers.error and (headers.error.name or headers.error.errorCode)
        return nil, failure("no answer from the bridge at " .. settings.bridge_url
            .. " (" .. tostring(why or "connection failed") .. ")")
    end
    local ok, decoded = pcall(Json.decode, reply or "")
    if not ok or type(decoded) ~= "table" then decoded = {} end
    if httpStatus >= 200 and httpStatus < 300 and ok then
        status.lastContactAt = now()
        return decoded
    end
    local message = type(decoded.error) == "string" and decoded.error or tostring(reply)
    return nil, failure(string.format("the bridge answered %d: %s", httpStatus, message), httpStatus)
end

--- Sends one message as this client: true, or false and a failure (`status` 409: the job is
--- no longer this client's).
function BridgeClient.send(message)
    if not status.clientId then return false, failure("not connected to the bridge") end
    local reply, err = call("POST", "/bridge/send", { client_id = status.clientId, message = message },
        30)
    if not reply then return false, err end
    return true
end

-- "13.2 [ 202402141005-bf1aeb84 ]" -> "13.2"
local function lightroomVersion()
    local version = tostring(LrApplication.versionString())
    return version:match("^%s*([%d%.]+)") or version
end

local function catalogName()
    local catalog = LrApplication.activeCatalog()
    return LrPathUtils.removeExtension(LrPathUtils.leafName(catalog:getPath()))
end

local function connect()
    status.state = "connecting"
    local reply, err = call("POST", "/bridge/handshake",
        { client_type = "lightroom", protocol_version = BridgeClient.PROTOCOL_VERSION }, 15)
    if not reply then return false, err end
    if type(reply.client_id) ~= "string" then
        return false, failure("the bridge's handshake reply has no client_id")
    end
    status.clientId = reply.client_id
    status.lightroomVersion = lightroomVersion()
    status.catalog = catalogName()
    local steps = {
        { type = "register", lightroom_version = status.lightroomVersion,
          catalog = status.catalog, plugin_version = BridgeClient.PLUGIN_VERSION },
        { type = "subscribe", channels = Json.array({ "jobs", "system" }) },
    }
    for _, message in ipairs(steps) do
        local ok, sendErr = BridgeClient.send(message)
        if not ok then
            status.clientId = nil
            return false, sendErr
        end
    end
    status.state = "connected"
    status.connectedAt = now()
    Log.info("bridge_connected", { client_id = status.clientId, url = settings.bridge_url,
        lightroom = status.lightroomVersion, catalog = status.catalog })
    return true
end

local function dispatch(messages, handlers)
    for _, message in ipairs(messages) do
        local kind = type(message) == "table" and message.type
        if kind == "pong" then
            status.lastPongServerTime = message.server_time
        elseif kind == "dropped" then
            Log.warn("bridge_dropped_messages", { count = message.count })
        end
        local handler = kind and handlers[kind]
        if handler then
            local ok, err = LrTasks.pcall(handler, message)
            if not ok then Log.error("handler_failed", { type = kind, error = err }) end
        end
    end
end

local function pollOnce(handlers)
    local timeout = settings.poll_timeout_s
    local path = string.format("/bridge/poll?client_id=%s&timeout=%s", status.clientId, timeout)
    local reply, err = call("GET", path, nil, timeout + 15)
    if not reply then return false, err end
    if type(reply.messages) == "table" then dispatch(reply.messages, handlers) end
    return true
end

local lastPingAt = 0

local function pingIfDue()
    if now() - lastPingAt < settings.ping_interval_s then return true end
    lastPingAt = now()
    return BridgeClient.send({ type = "ping" })
end

local function waitAfter(err)
    status.failures = status.failures + 1
    status.lastError = err.message
    status.state = "waiting to retry"
    if isUnknownClient(err) then status.clientId = nil end
    local delay = Backoff.delay(status.failures, settings.backoff_base_s, settings.backoff_cap_s)
    Log.warn("bridge_retry", { failures = status.failures, delay_s = string.format("%.2f", delay),
        error = err.message })
    LrTasks.sleep(delay)
end

--- The connection loop; returns after `stop`. `handlers` maps message types (job_assigned,
--- job_cancelled, ...) to functions; `currentSettings` reads the preferences.
function BridgeClient.run(currentSettings, handlers)
    stopping = false
    while not stopping do
        settings = currentSettings()
        status.bridgeUrl = settings.bridge_url
        local ok, err
        if status.clientId then
            ok, err = pollOnce(handlers)
            if ok then ok, err = pingIfDue() end
        else
            ok, err = connect()
        end
        if ok then
            status.failures = 0
            status.lastError = nil
        elseif not stopping then
            waitAfter(err)
        end
    end
    status.state = "stopped"
end

--- Ends the loop and tells the bridge this client is leaving (its jobs are handed back).
function BridgeClient.stop()
    stopping = true
    if status.clientId and settings then
        local clientId = status.clientId
        status.clientId = nil
        call("POST", "/bridge/disconnect", { client_id = clientId }, 5)
    end
end

--- A few lines for people: the state, the bridge, the last error.
function BridgeClient.describeStatus()
    local lines = { "State: " .. status.state }
    lines[#lines + 1] = "Bridge: " .. tostring(status.bridgeUrl or "not configured")
    if status.clientId then
        lines[#lines + 1] = "Client id: " .. status.clientId
        lines[#lines + 1] = "Registered as Lightroom " .. tostring(status.lightroomVersion)
            .. ", catalog " .. tostring(status.catalog)
    end
    if status.lastContactAt then
        lines[#lines + 1] = string.format("Last answer from the bridge: %d s ago",
            now() - status.lastContactAt)
    end
    if status.lastError then
        lines[#lines + 1] = string.format("Last error (%d failures in a row): %s",
            status.failures, status.lastError)
    end
    return table.concat(lines, "\n")
end

return BridgeClient
