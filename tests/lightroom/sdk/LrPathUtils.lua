-- Test stub of Lightroom's LrPathUtils (POSIX paths only).
local LrPathUtils = {}

function LrPathUtils.child(dir, name)
    if dir:sub(-1) == "/" then return dir .. name end
    return dir .. "/" .. name
end

function LrPathUtils.leafName(path) return (path:gsub("/+$", ""):match("([^/]*)$")) end

function LrPathUtils.parent(path) return path:gsub("/+$", ""):match("^(.*)/[^/]*$") end

function LrPathUtils.extension(path) return LrPathUtils.leafName(path):match("%.([^.]*)$") or "" end

function LrPathUtils.removeExtension(path) return (path:gsub("%.[^./]*$", "")) end

function LrPathUtils.addExtension(path, ext) return path .. "." .. ext end

function LrPathUtils.replaceExtension(path, ext)
    return LrPathUtils.addExtension(LrPathUtils.removeExtension(path), ext)
end

function LrPathUtils.standardizePath(path) return path end

function LrPathUtils.getStandardFilePath(which)
    assert(which == "temp", "stub LrPathUtils.getStandardFilePath knows only 'temp'")
    return os.getenv("TMPDIR") or "/tmp"
end

return LrPathUtils
