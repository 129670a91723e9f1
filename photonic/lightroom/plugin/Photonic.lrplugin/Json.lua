--[[ A small JSON encoder and decoder for the bridge's messages (Lightroom ships no JSON library).

Plain Lua 5.1. Objects decode to tables, arrays to sequences with a metatable that marks them as
arrays (so an empty array encodes back as []), null to Json.null. Encoding a table with keys
1..n only (or marked as an array) gives an array; any other table gives an object whose keys
must be strings (numbers are written as their text). ]]

local Json = {}

Json.null = setmetatable({}, { __tostring = function() return "null" end })

local arrayMeta = { __jsontype = "array" }
local objectMeta = { __jsontype = "object" }

--- Marks t as a JSON array (an empty table would otherwise encode as an object).
function Json.array(t)
    return setmetatable(t or {}, arrayMeta)
end

--- Marks t as a JSON object (an empty table encodes as {} without it too).
function Json.object(t)
    return setmetatable(t or {}, objectMeta)
end

-- Encoding --------------------------------------------------------------------------------

local escapes = {
    ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
    ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encodeString(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
end

local function isArray(t)
    local meta = getmetatable(t)
    if meta == arrayMeta then return true end
    if meta == objectMeta then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    if n == 0 then return false end
    for i = 1, n do
        if t[i] == nil then return false end
    end
    return true
end

local encodeValue

local function encodeNumber(n)
    if n ~= n or n == math.huge or n == -math.huge then
        error("Json.encode: " .. tostring(n) .. " has no JSON form")
    end
    if n == math.floor(n) and math.abs(n) < 1e15 then
        return string.format("%d", n)
    end
    return string.format("%.17g", n)
end

local function encodeTable(t, seen)
    if seen[t] then error("Json.encode: a table contains itself") end
    seen[t] = true
    local parts = {}
    if isArray(t) then
        for i = 1, #t do parts[i] = encodeValue(t[i], seen) end
        seen[t] = nil
        return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(t) do
        local kind = type(k)
        if kind ~= "string" and kind ~= "number" then
            error("Json.encode: an object key must be a string, not a " .. kind)
        end
        keys[#keys + 1] = tostring(k)
    end
    table.sort(keys) -- a stable output makes messages comparable in logs and tests
    for i, k in ipairs(keys) do
        local v = t[k]
        if v == nil then v = t[tonumber(k)] end
        parts[i] = encodeString(k) .. ":" .. encodeValue(v, seen)
    end
    seen[t] = nil
    return "{" .. table.concat(parts, ",") .. "}"
end

encodeValue = function(v, seen)
    local kind = type(v)
    if v == nil or v == Json.null then return "null" end
    if kind == "boolean" then return v and "true" or "false" end
    if kind == "number" then return encodeNumber(v) end
    if kind == "string" then return encodeString(v) end
    if kind == "table" then return encodeTable(v, seen) end
    error("Json.encode: a " .. kind .. " has no JSON form")
end

--- The JSON text of a Lua value.
function Json.encode(v)
    return encodeValue(v, {})
end

-- Decoding --------------------------------------------------------------------------------

local function decodeError(text, pos, what)
    local line = 1
    for _ in text:sub(1, pos - 1):gmatch("\n") do line = line + 1 end
    error(string.format("Json.decode: %s at character %d (line %d)", what, pos, line), 0)
end

local function skipSpace(text, pos)
    return text:find("[^ \t\r\n]", pos) or #text + 1
end

-- The UTF-8 bytes of a code point.
local function utf8Char(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then
        return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    end
    if cp < 0x10000 then
        return string.char(0xE0 + math.floor(cp / 0x1000),
            0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
        0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local simpleEscapes = {
    ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function readHex4(text, pos)
    local hex = text:sub(pos, pos + 3)
    if not hex:find("^%x%x%x%x$") then decodeError(text, pos, "a bad \\u escape") end
    return tonumber(hex, 16)
end

-- A \u escape starting at pos (just after the "u"): the UTF-8 text and the next position.
local function decodeUnicode(text, pos)
    local cp = readHex4(text, pos)
    pos = pos + 4
    if cp >= 0xD800 and cp <= 0xDBFF then
        if text:sub(pos, pos + 1) ~= "\\u" then
            decodeError(text, pos, "a lone high surrogate")
        end
        local low = readHex4(text, pos + 2)
        if low < 0xDC00 or low > 0xDFFF then decodeError(text, pos, "a bad low surrogate") end
        cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
        pos = pos + 6
    elseif cp >= 0xDC00 and cp <= 0xDFFF then
        decodeError(text, pos - 4, "a lone low surrogate")
    end
    return utf8Char(cp), pos
end

local function decodeString(text, pos)
    local parts = {}
    local i = pos + 1
    while true do
        local stop = text:find('["\\%z\1-\31]', i) -- JSON forbids raw bytes below 0x20
        if not stop then decodeError(text, pos, "an unterminated string") end
        parts[#parts + 1] = text:sub(i, stop - 1)
        local c = text:sub(stop, stop)
        if c == '"' then return table.concat(parts), stop + 1 end
        if c ~= "\\" then decodeError(text, stop, "a control character in a string") end
        local e = text:sub(stop + 1, stop + 1)
        if e == "u" then
            parts[#parts + 1], i = decodeUnicode(text, stop + 2)
        elseif simpleEscapes[e] then
            parts[#parts + 1] = simpleEscapes[e]
            i = stop + 2
        else
            decodeError(text, stop, "a bad escape")
        end
    end
end

local function decodeNumber(text, pos)
    local i = pos
    if text:sub(i, i) == "-" then i = i + 1 end
    local intEnd = select(2, text:find("^%d+", i))
    if not intEnd or (text:sub(i, i) == "0" and intEnd > i) then
        decodeError(text, pos, "a bad number")
    end
    i = intEnd + 1
    if text:sub(i, i) == "." then
        local fracEnd = select(2, text:find("^%d+", i + 1))
        if not fracEnd then decodeError(text, pos, "a bad number") end
        i = fracEnd + 1
    end
    if text:find("^[eE]", i) then
        local expEnd = select(2, text:find("^[-+]?%d+", i + 1))
        if not expEnd then decodeError(text, pos, "a bad number") end
        i = expEnd + 1
    end
    return tonumber(text:sub(pos, i - 1)), i
end

local decodeValue

local function decodeArray(text, pos)
    local result = Json.array({})
    pos = skipSpace(text, pos + 1)
    if text:sub(pos, pos) == "]" then return result, pos + 1 end
    while true do
        result[#result + 1], pos = decodeValue(text, pos)
        pos = skipSpace(text, pos)
        local c = text:sub(pos, pos)
        if c == "]" then return result, pos + 1 end
        if c ~= "," then decodeError(text, pos, "',' or ']' expected") end
        pos = skipSpace(text, pos + 1)
    end
end

local function decodeObject(text, pos)
    local result = Json.object({})
    pos = skipSpace(text, pos + 1)
    if text:sub(pos, pos) == "}" then return result, pos + 1 end
    while true do
        if text:sub(pos, pos) ~= '"' then decodeError(text, pos, "a key string expected") end
        local key
        key, pos = decodeString(text, pos)
        pos = skipSpace(text, pos)
        if text:sub(pos, pos) ~= ":" then decodeError(text, pos, "':' expected") end
        result[key], pos = decodeValue(text, skipSpace(text, pos + 1))
        pos = skipSpace(text, pos)
        local c = text:sub(pos, pos)
        if c == "}" then return result, pos + 1 end
        if c ~= "," then decodeError(text, pos, "',' or '}' expected") end
        pos = skipSpace(text, pos + 1)
    end
end

local literals = { ["true"] = true, ["false"] = false }

decodeValue = function(text, pos)
    pos = skipSpace(text, pos)
    local c = text:sub(pos, pos)
    if c == "{" then return decodeObject(text, pos) end
    if c == "[" then return decodeArray(text, pos) end
    if c == '"' then return decodeString(text, pos) end
    if c == "-" or c:find("%d") then return decodeNumber(text, pos) end
    for word, value in pairs(literals) do
        if text:sub(pos, pos + #word - 1) == word then return value, pos + #word end
    end
    if text:sub(pos, pos + 3) == "null" then return Json.null, pos + 4 end
    decodeError(text, pos, c == "" and "unexpected end of text" or "unexpected '" .. c .. "'")
end

--- The Lua value of a JSON text; raises an error naming the position of the first problem.
function Json.decode(text)
    if type(text) ~= "string" then error("Json.decode: expected a string, got " .. type(text)) end
    local value, pos = decodeValue(text, 1)
    pos = skipSpace(text, pos)
    if pos <= #text then decodeError(text, pos, "trailing text") end
    return value
end

return Json
