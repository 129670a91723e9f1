-- Test stub of Lightroom's LrFileUtils.
local LrFileUtils = {}

local function quote(path) return "'" .. path:gsub("'", "'\\''") .. "'" end

function LrFileUtils.exists(path)
    local f = io.open(path, "rb")
    if not f then return false end
    local _, _, code = f:read(1)
    f:close()
    if code == 21 then return "directory" end -- EISDIR
    return "file"
end

function LrFileUtils.readFile(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    return data
end

function LrFileUtils.createAllDirectories(path)
    return os.execute("mkdir -p " .. quote(path)) == 0
end

function LrFileUtils.delete(path)
    return os.remove(path) ~= nil
end

LrFileUtils.quote = quote

return LrFileUtils
